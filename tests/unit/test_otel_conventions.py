"""W3C traceparent parsing, the GenAI attributes of an exported trace, and the model call read back
from the attributes OpenTelemetry GenAI, OpenLLMetry and OpenInference instrumentations write."""

from __future__ import annotations

import orjson
import pytest

from llmops.ids import new_id
from llmops.tracing.otel import gateway_span_id, link_caller, parse_traceparent
from llmops.tracing.otel.conventions import model_call, span_attributes, span_name
from llmops.tracing.otel.tree import nest
from llmops.tracing.record import TraceRecord

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "header",
    [
        f"00-{TRACE}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}-00",
        f"  00-{TRACE}-{PARENT}-01 ",  # optional white space around the value
        f"01-{TRACE}-{PARENT}-01-future-fields",  # a later version may append fields
        f"01-{TRACE}-{PARENT}-01",
    ],
)
def test_valid_traceparent(header: str) -> None:
    assert parse_traceparent(header) == (TRACE, PARENT)
    assert parse_traceparent(header.encode()) == (TRACE, PARENT)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"ff-{TRACE}-{PARENT}-01",  # version ff is invalid
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE.upper()}-{PARENT}-01",  # upper-case hex
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE[:-1]}-{PARENT}-01",
        f"00-{TRACE}-{PARENT}0-01",
        f"00-{TRACE}-{PARENT}-1",
        f"0-{TRACE}-{PARENT}-01",
        f"00-{TRACE[:-1]}g-{PARENT}-01",
        f"00_{TRACE}_{PARENT}_01",
    ],
)
def test_invalid_traceparent_is_ignored(header: str) -> None:
    assert parse_traceparent(header) is None


def test_non_ascii_traceparent_is_ignored() -> None:
    assert parse_traceparent("00-é".encode()) is None


def test_link_caller_makes_the_trace_a_child() -> None:
    record = TraceRecord(
        id=new_id(), started_at=0.0, endpoint="chat.completions", requested_model="m", stream=False
    )
    assert link_caller(record, f"00-{TRACE}-{PARENT}-01".encode())
    assert (record.otel_trace_id, record.otel_parent_span_id) == (TRACE, PARENT)
    assert record.otel_span_id == gateway_span_id(record.id) == record.id[-16:]
    other = TraceRecord(
        id=new_id(), started_at=0.0, endpoint="chat.completions", requested_model="m", stream=False
    )
    assert not link_caller(other, b"00-nonsense")
    assert other.otel_trace_id is other.otel_span_id is other.otel_parent_span_id is None


def test_gateway_span_id_is_never_zero() -> None:
    assert gateway_span_id("1" * 16 + "0" * 16) != "0" * 16


def _trace(**values: object) -> dict[str, object]:
    trace: dict[str, object] = {
        "id": new_id(),
        "endpoint": "chat.completions",
        "requested_model": "gpt-x",
        "upstream_model": "gpt-x-2025",
        "provider": "openai",
        "deployment": "gpt-x#0",
        "prompt_tokens": 12,
        "completion_tokens": 5,
        "finish_reason": "stop",
        "status_code": 200,
        "error_type": None,
        "cost": 0.0012,
        "cache_status": "miss",
        "prompt_name": "support",
        "prompt_version": 3,
        "api_key_id": "key_1",
        "guardrail": "|pii:redact|",
        "stream": False,
        "response_text": "hello",
    }
    trace.update(values)
    return trace


def test_span_attributes_follow_the_genai_conventions() -> None:
    trace = _trace()
    request = {
        "model": "gpt-x",
        "temperature": 0.2,
        "max_tokens": 50,
        "top_p": 0.9,
        "stop": "END",
        "messages": [],
    }
    attributes = span_attributes(trace, request, ("api.example.com", 443))
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.system"] == attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-x"
    assert attributes["gen_ai.response.model"] == "gpt-x-2025"
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["gen_ai.usage.output_tokens"] == 5
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["gen_ai.request.temperature"] == 0.2
    assert attributes["gen_ai.request.max_tokens"] == 50
    assert attributes["gen_ai.request.top_p"] == 0.9
    assert attributes["gen_ai.request.stop_sequences"] == ["END"]
    assert (attributes["server.address"], attributes["server.port"]) == ("api.example.com", 443)
    assert attributes["llmops.trace_id"] == trace["id"]
    assert attributes["llmops.api_key_id"] == "key_1"
    assert attributes["llmops.deployment"] == "gpt-x#0"
    assert attributes["llmops.cost"] == 0.0012
    assert attributes["llmops.cache_status"] == "miss"
    assert (attributes["llmops.prompt.name"], attributes["llmops.prompt.version"]) == ("support", 3)
    assert attributes["llmops.guardrail"] == "|pii:redact|"
    assert "error.type" not in attributes
    assert "gen_ai.input.messages" not in attributes  # content is opt-in
    assert span_name("chat.completions", "gpt-x") == "chat gpt-x"
    assert span_name("completions", "m") == "text_completion m"
    assert span_name("embeddings", "m") == "embeddings m"


def test_span_attributes_of_an_error_and_content() -> None:
    trace = _trace(status_code=429, error_type="rate_limit_error", finish_reason=None)
    request = {"messages": [{"role": "user", "content": "hi"}]}
    attributes = span_attributes(trace, request, None, content=True)
    assert attributes["error.type"] == "rate_limit_error"
    assert "gen_ai.response.finish_reasons" not in attributes
    assert "server.address" not in attributes
    messages = orjson.loads(str(attributes["gen_ai.input.messages"]))
    assert messages == [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
    output = orjson.loads(str(attributes["gen_ai.output.messages"]))
    assert output[0]["parts"][0]["content"] == "hello"
    assert span_attributes(_trace(endpoint="embeddings"), None)["gen_ai.operation.name"] == "embeddings"


def test_model_call_from_the_current_genai_conventions() -> None:
    attributes = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 20,
        "gen_ai.usage.output_tokens": 7,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.request.temperature": 0.5,
        "gen_ai.input.messages": orjson.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "Hello"}]}]
        ).decode(),
        "gen_ai.output.messages": orjson.dumps(
            [{"role": "assistant", "parts": [{"type": "text", "content": "Hi!"}]}]
        ).decode(),
    }
    call = model_call(attributes)
    assert call is not None
    assert (call.model, call.provider, call.response_model) == ("gpt-4o", "openai", "gpt-4o-2024-08-06")
    assert (call.prompt_tokens, call.completion_tokens, call.finish_reason) == (20, 7, "stop")
    assert call.request == {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0.5,
    }
    assert call.response_text == "Hi!"
    assert call.content_keys == {"gen_ai.input.messages", "gen_ai.output.messages"}
    without = model_call(attributes, content=False)
    assert without is not None
    assert (without.request, without.response_text) == (None, None)


def test_model_call_from_openllmetry_attributes() -> None:
    attributes = {
        "gen_ai.system": "Anthropic",
        "gen_ai.request.model": "claude-x",
        "llm.request.type": "chat",
        "gen_ai.usage.prompt_tokens": 11,
        "gen_ai.usage.completion_tokens": 3,
        "gen_ai.prompt.0.role": "system",
        "gen_ai.prompt.0.content": "Be brief.",
        "gen_ai.prompt.1.role": "user",
        "gen_ai.prompt.1.content": "Why?",
        "gen_ai.completion.0.role": "assistant",
        "gen_ai.completion.0.content": "Because.",
        "gen_ai.completion.0.finish_reason": "end_turn",
        "llm.is_streaming": True,
    }
    call = model_call(attributes)
    assert call is not None
    assert (call.model, call.provider, call.prompt_tokens, call.completion_tokens) == (
        "claude-x",
        "Anthropic",
        11,
        3,
    )
    assert call.request is not None
    assert call.request["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Why?"},
    ]
    assert (call.response_text, call.finish_reason, call.stream) == ("Because.", "end_turn", True)


def test_model_call_from_openinference_attributes() -> None:
    attributes = {
        "openinference.span.kind": "LLM",
        "llm.model_name": "llama-3",
        "llm.provider": "ollama",
        "llm.token_count.prompt": 30,
        "llm.token_count.completion": 9,
        "llm.input_messages.0.message.role": "user",
        "llm.input_messages.0.message.content": "Name a colour",
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.content": "Teal",
        "input.value": '{"messages": []}',
        "output.value": "Teal",
    }
    call = model_call(attributes)
    assert call is not None
    assert (call.model, call.provider, call.prompt_tokens, call.completion_tokens) == (
        "llama-3",
        "ollama",
        30,
        9,
    )
    assert call.request == {"model": "llama-3", "messages": [{"role": "user", "content": "Name a colour"}]}
    assert call.response_text == "Teal"
    plain = model_call(
        {"openinference.span.kind": "LLM", "llm.model_name": "m", "input.value": "hi", "output.value": "yo"}
    )
    assert plain is not None
    assert (plain.request, plain.response_text) == ({"model": "m", "input": "hi"}, "yo")


def test_model_call_from_an_openinference_embedding_span() -> None:
    attributes = {
        "openinference.span.kind": "EMBEDDING",
        "embedding.model_name": "text-embedding-3-small",
        "llm.token_count.prompt": 6,
        "embedding.embeddings.0.embedding.text": "hello",
        "embedding.embeddings.0.embedding.vector": [0.1, 0.2],
    }
    call = model_call(attributes)
    assert call is not None
    assert (call.model, call.operation, call.prompt_tokens) == ("text-embedding-3-small", "embeddings", 6)
    assert call.content_keys == {
        "embedding.embeddings.0.embedding.text",
        "embedding.embeddings.0.embedding.vector",
    }


@pytest.mark.parametrize(
    "attributes",
    [
        {},
        {"http.route": "/ask"},
        {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": "gpt-4o"},
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
        {"openinference.span.kind": "CHAIN", "llm.model_name": "gpt-4o"},
        {"openinference.span.kind": "TOOL"},
    ],
)
def test_other_spans_are_not_model_calls(attributes: dict[str, object]) -> None:
    assert model_call(attributes) is None


def test_nest_hangs_children_under_parents_and_cuts_cycles() -> None:
    def node(span: str, parent: str | None, at: int) -> dict[str, object]:
        return {"span_id": span, "parent_span_id": parent, "started_at": at, "children": []}

    roots = nest(
        [node("c", "a", 2), node("a", None, 0), node("b", "a", 1), node("x", "y", 5), node("y", "x", 6)]
    )
    assert [root["span_id"] for root in roots] == ["a", "x"]
    assert [child["span_id"] for child in roots[0]["children"]] == ["b", "c"]
    assert [child["span_id"] for child in roots[1]["children"]] == ["y"]
    orphan = nest([node("d", "missing", 0)])
    assert [root["span_id"] for root in orphan] == ["d"]
