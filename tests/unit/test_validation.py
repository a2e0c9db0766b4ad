"""Request body checks: OpenAI-style 400s naming the parameter, valid bodies untouched."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from llmops.gateway.errors import GatewayError
from llmops.gateway.validation import (
    check_chat,
    check_completion,
    check_embedding,
    model_name,
    parse_body,
)

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {"model": "m", "prompt": "Once upon"}
EMBEDDING = {"model": "m", "input": "text"}


def _rejected(check: Callable[[dict[str, Any]], None], body: dict[str, Any], param: str | None) -> str:
    with pytest.raises(GatewayError) as exc:
        check(body)
    error = exc.value
    assert error.status == 400
    assert error.param == param
    assert error.error_type == "invalid_request_error"
    shape = orjson.loads(error.body())["error"]
    assert shape["param"] == param
    assert shape["type"] == "invalid_request_error"
    assert shape["message"] == error.message
    assert "\n" not in error.message
    return error.message


# --- parse_body and model ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty"),
        (b"{not json", "not valid JSON"),
        (b'{"model": "m",}', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"text"', "JSON object"),
        (b"null", "JSON object"),
        (b"42", "JSON object"),
    ],
)
def test_parse_body_rejects(body: bytes, words: str) -> None:
    with pytest.raises(GatewayError) as exc:
        parse_body(body)
    assert exc.value.status == 400
    assert exc.value.param is None
    assert words in exc.value.message


def test_parse_body_accepts_objects() -> None:
    assert parse_body(b'{"model": "m", "x": [1, {"y": null}]}') == {"model": "m", "x": [1, {"y": None}]}
    assert parse_body('{"content": "héllo 🎉"}'.encode()) == {"content": "héllo 🎉"}


@pytest.mark.parametrize("body", [{}, {"model": ""}, {"model": 3}, {"model": None}, {"model": ["m"]}])
def test_model_required(body: dict[str, Any]) -> None:
    _rejected(model_name, body, "model")


def test_model_name() -> None:
    assert model_name({"model": "gpt-4o"}) == "gpt-4o"


# --- chat ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        CHAT,
        {**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        {**CHAT, "stream": False},
        {**CHAT, "n": 1, "max_tokens": 1, "max_completion_tokens": 100, "seed": -(2**63)},
        {**CHAT, "n": 128, "seed": 2**63 - 1},
        {**CHAT, "temperature": 0, "top_p": 1, "presence_penalty": -2, "frequency_penalty": 2.0},
        {**CHAT, "temperature": 2, "top_p": 0.0},
        {**CHAT, "temperature": None, "n": None, "stop": None, "stream_options": None},
        {**CHAT, "stop": "\n"},
        {**CHAT, "stop": ["a", "b"]},
        {**CHAT, "stop": []},
        {**CHAT, "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto"},
        {**CHAT, "response_format": {"type": "json_object"}},
        {**CHAT, "unknown_new_param": {"anything": True}},
        {
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": "x"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
                {"role": "assistant", "content": None, "tool_calls": [{"id": "c"}]},
                {"role": "tool", "content": "42", "tool_call_id": "c"},
                {"role": "function", "name": "f", "content": "x"},
            ],
        },
    ],
)
def test_valid_chat_bodies_pass_untouched(body: dict[str, Any]) -> None:
    before = copy.deepcopy(body)
    check_chat(body)
    assert body == before


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": None}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": {"role": "user"}}, "messages"),
        ({"messages": ["hi"]}, "messages[0]"),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]},
            "messages[1].role",
        ),
        ({"messages": [{"content": "no role"}]}, "messages[0].role"),
        ({"messages": [{"role": "User", "content": "x"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": 42}]}, "messages[0].content"),
        ({"messages": [{"role": "user", "content": {"text": "x"}}]}, "messages[0].content"),
        ({"n": True}, "n"),
        ({"n": False}, "n"),
        ({"n": 0}, "n"),
        ({"n": 129}, "n"),
        ({"n": 1.5}, "n"),
        ({"n": "2"}, "n"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"max_completion_tokens": -5}, "max_completion_tokens"),
        ({"seed": 2**63}, "seed"),
        ({"seed": 1.0}, "seed"),
        ({"temperature": 3}, "temperature"),
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"temperature": True}, "temperature"),
        ({"top_p": 1.01}, "top_p"),
        ({"presence_penalty": -2.5}, "presence_penalty"),
        ({"frequency_penalty": 3}, "frequency_penalty"),
        ({"stop": [1, 2]}, "stop"),
        ({"stop": ["a", 2]}, "stop"),
        ({"stop": 5}, "stop"),
        ({"stop": {"a": 1}}, "stop"),
        ({"stream": "yes"}, "stream"),
        ({"stream": 1}, "stream"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"stream": False, "stream_options": {"include_usage": True}}, "stream_options"),
        ({"stream": True, "stream_options": "usage"}, "stream_options"),
        ({"tools": {"type": "function"}}, "tools"),
        ({"response_format": "json"}, "response_format"),
        ({"response_format": {"schema": {}}}, "response_format"),
    ],
)
def test_invalid_chat_bodies(change: dict[str, Any], param: str) -> None:
    _rejected(check_chat, {**CHAT, **change}, param)


def test_chat_messages_missing() -> None:
    assert "non-empty list" in _rejected(check_chat, {"model": "m"}, "messages")


def test_chat_error_messages_say_what_was_wrong() -> None:
    assert "got True" in _rejected(check_chat, {**CHAT, "n": True}, "n")
    assert "between 1 and 128" in _rejected(check_chat, {**CHAT, "n": 0}, "n")
    assert "between 0 and 2, got 3" in _rejected(check_chat, {**CHAT, "temperature": 3}, "temperature")
    assert "'robot'" in _rejected(
        check_chat, {**CHAT, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"
    )
    assert "at least 1" in _rejected(check_chat, {**CHAT, "max_tokens": 0}, "max_tokens")


# --- completions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    ["Once upon", "", ["a", "b"], [""], [1, 2, 3], [[1, 2], [3]]],
)
def test_valid_prompts(prompt: Any) -> None:
    check_completion({**COMPLETION, "prompt": prompt})


@pytest.mark.parametrize(
    "prompt",
    [None, 5, [], ["a", 1], [1, "a"], [[1], []], [[1], ["a"]], [True, False], [[1], 2], {"text": "x"}, [1.5]],
)
def test_invalid_prompts(prompt: Any) -> None:
    _rejected(check_completion, {**COMPLETION, "prompt": prompt}, "prompt")


def test_prompt_missing() -> None:
    _rejected(check_completion, {"model": "m"}, "prompt")


def test_completion_sampling_checked() -> None:
    _rejected(check_completion, {**COMPLETION, "n": True}, "n")
    _rejected(check_completion, {**COMPLETION, "temperature": 3}, "temperature")
    _rejected(check_completion, {**COMPLETION, "stop": [1]}, "stop")
    _rejected(check_completion, {**COMPLETION, "stream_options": {}}, "stream_options")
    check_completion({**COMPLETION, "stream": True, "stream_options": {"include_usage": True}, "echo": True})


# --- embeddings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"input": "text"},
        {"input": ["a", "b"]},
        {"input": [1, 2]},
        {"input": [[1, 2], [3]]},
        {"encoding_format": "float"},
        {"encoding_format": "base64"},
        {"dimensions": 1},
        {"dimensions": 3072, "user": "u"},
    ],
)
def test_valid_embedding_bodies(change: dict[str, Any]) -> None:
    check_embedding({**EMBEDDING, **change})


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"input": ""}, "input"),
        ({"input": []}, "input"),
        ({"input": None}, "input"),
        ({"input": 5}, "input"),
        ({"input": ["a", ""]}, "input"),
        ({"input": ["a", 1]}, "input"),
        ({"input": [[]]}, "input"),
        ({"input": [True]}, "input"),
        ({"input": {"text": "x"}}, "input"),
        ({"encoding_format": "int8"}, "encoding_format"),
        ({"encoding_format": 1}, "encoding_format"),
        ({"dimensions": 0}, "dimensions"),
        ({"dimensions": True}, "dimensions"),
        ({"dimensions": "8"}, "dimensions"),
    ],
)
def test_invalid_embedding_bodies(change: dict[str, Any], param: str) -> None:
    _rejected(check_embedding, {**EMBEDDING, **change}, param)


def test_embedding_input_missing() -> None:
    _rejected(check_embedding, {"model": "m"}, "input")
