"""Cache keys: which requests are the same question, and which semantic scope a request belongs to."""

from __future__ import annotations

from typing import Any

import pytest

from llmops.gateway.cache.keys import conversation_text, exact_key, is_deterministic, semantic_scope

BASE: dict[str, Any] = {
    "model": "gpt-x",
    "messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is a cache?"},
    ],
    "temperature": 0,
}

# every field a client can send that may change the answer, with a value that differs from BASE
ANSWER_CHANGING: list[tuple[str, Any]] = [
    ("model", "gpt-y"),
    ("messages", [{"role": "user", "content": "What is a key?"}]),
    ("temperature", 0.5),
    ("top_p", 0.9),
    ("max_tokens", 10),
    ("max_completion_tokens", 10),
    ("stop", ["\n"]),
    ("seed", 7),
    ("n", 2),
    ("presence_penalty", 0.5),
    ("frequency_penalty", 0.5),
    ("logit_bias", {"50256": -100}),
    ("logprobs", True),
    ("top_logprobs", 2),
    ("response_format", {"type": "json_object"}),
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    ("tool_choice", "none"),
    ("parallel_tool_calls", False),
    ("reasoning_effort", "low"),
    ("prediction", {"type": "content", "content": "x"}),
    ("some_future_parameter", 1),
]


def key(payload: dict[str, Any], tenant: str = "key_a", endpoint: str = "chat.completions") -> str:
    return exact_key(endpoint, tenant, payload)


def test_key_order_does_not_matter() -> None:
    reordered = {"temperature": 0, "messages": list(BASE["messages"]), "model": "gpt-x"}
    nested = {
        **BASE,
        "response_format": {"type": "json_schema", "json_schema": {"name": "a", "strict": True}},
    }
    nested_reordered = {
        **BASE,
        "response_format": {"json_schema": {"strict": True, "name": "a"}, "type": "json_schema"},
    }
    assert key(reordered) == key(BASE)
    assert key(nested) == key(nested_reordered)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user", "alice"),
        ("stream", True),
        ("stream_options", {"include_usage": True}),
        ("metadata", {"run": "1"}),
        ("store", True),
    ],
)
def test_delivery_and_caller_fields_are_ignored(field: str, value: Any) -> None:
    assert key({**BASE, field: value}) == key(BASE)


@pytest.mark.parametrize(("field", "value"), ANSWER_CHANGING, ids=[field for field, _ in ANSWER_CHANGING])
def test_every_answer_changing_field_is_in_the_key(field: str, value: Any) -> None:
    assert key({**BASE, field: value}) != key(BASE)


def test_whole_numbers_are_one_number() -> None:
    assert key({**BASE, "temperature": 0.0}) == key({**BASE, "temperature": 0})
    assert key({**BASE, "max_tokens": 24.0}) == key({**BASE, "max_tokens": 24})
    assert key({**BASE, "temperature": 0.25}) != key({**BASE, "temperature": 0.0})


def test_tenants_and_endpoints_never_share_a_key() -> None:
    assert key(BASE, tenant="key_a") != key(BASE, tenant="key_b")
    assert key(BASE, endpoint="chat.completions") != key(BASE, endpoint="completions")


def test_semantic_scope_leaves_out_the_conversation_only() -> None:
    other_question = {**BASE, "messages": [BASE["messages"][0], {"role": "user", "content": "Why?"}]}
    scope = semantic_scope("chat.completions", "key_a", BASE)
    assert semantic_scope("chat.completions", "key_a", other_question) == scope
    assert semantic_scope("chat.completions", "key_a", {**BASE, "user": "bob", "stream": True}) == scope
    assert semantic_scope("chat.completions", "key_b", BASE) != scope  # tenant
    assert semantic_scope("chat.completions", "key_a", {**BASE, "model": "gpt-y"}) != scope
    assert semantic_scope("chat.completions", "key_a", {**BASE, "max_tokens": 5}) != scope
    other_system = {**BASE, "messages": [{"role": "system", "content": "Be verbose."}, BASE["messages"][1]]}
    assert semantic_scope("chat.completions", "key_a", other_system) != scope
    developer = {**BASE, "messages": [{"role": "developer", "content": "Be verbose."}, BASE["messages"][1]]}
    assert semantic_scope("chat.completions", "key_a", developer) != scope


def test_conversation_text_is_what_gets_embedded() -> None:
    multi = {
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": [{"type": "text", "text": "What is a cache?"}]},
        ]
    }
    assert conversation_text(multi) == "user: Hi\nassistant: Hello!\nuser: What is a cache?"
    assert conversation_text({"prompt": "Once upon a time"}) == "Once upon a time"
    assert conversation_text({"prompt": [1, 2, 3]}) is None
    assert conversation_text({"messages": [{"role": "system", "content": "only a system prompt"}]}) is None
    tool_round = {
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function"}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ]
    }
    assert conversation_text(tool_round) is None


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"temperature": 0}, True),
        ({"temperature": 0.0}, True),
        ({"seed": 1, "temperature": 1.2}, True),
        ({"seed": 0}, True),
        ({}, False),
        ({"temperature": 0.7}, False),
        ({"seed": None, "temperature": 1}, False),
    ],
)
def test_deterministic_means_temperature_zero_or_a_seed(payload: dict[str, Any], expected: bool) -> None:
    assert is_deterministic(payload) is expected
