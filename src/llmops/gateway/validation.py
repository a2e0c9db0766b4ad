"""Checks on request bodies: only the fields the gateway relies on, with OpenAI-style 400s.

Everything else in the body is passed to the provider untouched, so new OpenAI parameters
work through the gateway without a release.
"""

from __future__ import annotations

from typing import Any

import orjson

from llmops.gateway.errors import bad_request

Payload = dict[str, Any]

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def parse_body(body: bytes) -> Payload:
    if not body:
        raise bad_request("request body is empty; expected a JSON object")
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise bad_request("request body must be a JSON object")
    return payload


def model_name(payload: Payload) -> str:
    model = payload.get("model")
    if not isinstance(model, str) or not model:
        raise bad_request("you must provide a model parameter", "model")
    return model


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_int(payload: Payload, name: str, low: int, high: int | None = None) -> None:
    value = payload.get(name)
    if value is None:
        return
    if not _is_int(value) or value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise bad_request(f"{name} must be an integer {bound}, got {value!r}", name)


def _check_number(payload: Payload, name: str, low: float, high: float) -> None:
    value = payload.get(name)
    if value is not None and (not _is_number(value) or not low <= value <= high):
        raise bad_request(f"{name} must be a number between {low:g} and {high:g}, got {value!r}", name)


def _check_sampling(payload: Payload) -> None:
    stream = payload.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad_request("stream must be true or false", "stream")
    options = payload.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise bad_request("stream_options must be an object", "stream_options")
        if not stream:
            raise bad_request("stream_options is only allowed when stream is true", "stream_options")
    _check_int(payload, "n", 1, 128)
    _check_int(payload, "max_tokens", 1)
    _check_int(payload, "max_completion_tokens", 1)
    _check_int(payload, "seed", -(2**63), 2**63 - 1)
    _check_number(payload, "temperature", 0, 2)
    _check_number(payload, "top_p", 0, 1)
    _check_number(payload, "presence_penalty", -2, 2)
    _check_number(payload, "frequency_penalty", -2, 2)
    stop = payload.get("stop")
    if stop is not None and not isinstance(stop, str):
        if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
            raise bad_request("stop must be a string or a list of strings", "stop")


def check_chat(payload: Payload) -> None:
    messages = payload.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty list", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request(f"messages[{index}] must be an object", f"messages[{index}]")
        role = message.get("role")
        if role not in ROLES:
            raise bad_request(
                f"messages[{index}].role must be one of {', '.join(sorted(ROLES))}, got {role!r}",
                f"messages[{index}].role",
            )
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise bad_request(
                f"messages[{index}].content must be a string or a list", f"messages[{index}].content"
            )
    _check_sampling(payload)
    tools = payload.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise bad_request("tools must be a list", "tools")
    response_format = payload.get("response_format")
    if response_format is not None and not (isinstance(response_format, dict) and "type" in response_format):
        raise bad_request("response_format must be an object with a type", "response_format")


def _is_token_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(item) for item in value)


def check_completion(payload: Payload) -> None:
    prompt = payload.get("prompt")
    valid = (
        isinstance(prompt, str)
        or (isinstance(prompt, list) and bool(prompt) and all(isinstance(item, str) for item in prompt))
        or _is_token_array(prompt)
        or (isinstance(prompt, list) and bool(prompt) and all(_is_token_array(item) for item in prompt))
    )
    if not valid:
        raise bad_request("prompt must be a string, a list of strings, or token arrays", "prompt")
    _check_sampling(payload)


def check_embedding(payload: Payload) -> None:
    text = payload.get("input")
    valid = (
        (isinstance(text, str) and bool(text))
        or (isinstance(text, list) and bool(text) and all(isinstance(item, str) and item for item in text))
        or _is_token_array(text)
        or (isinstance(text, list) and bool(text) and all(_is_token_array(item) for item in text))
    )
    if not valid:
        raise bad_request("input must be a non-empty string, list of strings, or token arrays", "input")
    encoding = payload.get("encoding_format")
    if encoding is not None and encoding not in ("float", "base64"):
        raise bad_request("encoding_format must be float or base64", "encoding_format")
    _check_int(payload, "dimensions", 1)
