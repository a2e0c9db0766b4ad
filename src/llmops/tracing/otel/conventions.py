"""The OpenTelemetry GenAI semantic conventions, both ways: a trace's span attributes for export, and
the trace fields read back from an ingested span's attributes.

Out (:func:`span_attributes`): ``gen_ai.*`` (operation, provider, request and response model, usage,
finish reasons, request parameters), ``server.address``/``server.port``, ``error.type``, and what only
llmops knows as ``llmops.*`` (trace id, key, deployment, cost, cache, prompt, guardrails).

In (:func:`model_call`): the GenAI conventions (current and older names, as OpenLLMetry writes them)
and OpenInference's (``llm.model_name``, ``llm.token_count.*``, ``llm.input_messages.*``,
``input.value``/``output.value``). Plain Python: no protobuf here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

AttributeValue = str | bool | int | float | list[str] | list[int] | list[float] | list[bool]

OPERATIONS = {"chat.completions": "chat", "completions": "text_completion", "embeddings": "embeddings"}
# request fields of an OpenAI body -> their GenAI attribute
_REQUEST_PARAMETERS = (
    ("temperature", "gen_ai.request.temperature"),
    ("max_tokens", "gen_ai.request.max_tokens"),
    ("max_completion_tokens", "gen_ai.request.max_tokens"),
    ("top_p", "gen_ai.request.top_p"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
    ("seed", "gen_ai.request.seed"),
    ("n", "gen_ai.request.choice.count"),
    ("stop", "gen_ai.request.stop_sequences"),
    ("dimensions", "gen_ai.embeddings.dimension.count"),
)
_LLMOPS_COLUMNS = (  # trace column -> attribute (when the column has a value)
    ("id", "llmops.trace_id"),
    ("endpoint", "llmops.endpoint"),
    ("api_key_id", "llmops.api_key_id"),
    ("deployment", "llmops.deployment"),
    ("cost", "llmops.cost"),
    ("cache_status", "llmops.cache_status"),
    ("prompt_name", "llmops.prompt.name"),
    ("prompt_version", "llmops.prompt.version"),
    ("prompt_label", "llmops.prompt.label"),
    ("experiment", "llmops.experiment"),
    ("variant", "llmops.variant"),
    ("guardrail", "llmops.guardrail"),
    ("status_code", "llmops.status_code"),
    ("ttft_ms", "llmops.ttft_ms"),
    ("usage_source", "llmops.usage_source"),
)
# operations of the GenAI conventions that are not a call to a model (agents and tools)
_NOT_MODEL_CALLS = frozenset({"create_agent", "invoke_agent", "execute_tool"})
_MODEL_KINDS = frozenset({"LLM", "EMBEDDING"})  # OpenInference span kinds of a model call


def operation_of(endpoint: str) -> str:
    return OPERATIONS.get(endpoint, endpoint)


def span_name(endpoint: str, model: str) -> str:
    """``{operation} {model}``, as the GenAI conventions name a model call's span."""
    return f"{operation_of(endpoint)} {model}".strip()


def span_attributes(
    trace: Mapping[str, Any],
    request: Mapping[str, Any] | None,
    address: tuple[str, int | None] | None = None,
    *,
    content: bool = False,
) -> dict[str, AttributeValue]:
    """The span attributes of a stored trace (``trace``: column -> value; ``request``: its body)."""
    attributes: dict[str, AttributeValue] = {"gen_ai.operation.name": operation_of(trace["endpoint"])}
    _put(attributes, "gen_ai.provider.name", trace.get("provider"))
    _put(attributes, "gen_ai.system", trace.get("provider"))
    _put(attributes, "gen_ai.request.model", trace.get("requested_model") or None)
    _put(attributes, "gen_ai.response.model", trace.get("upstream_model"))
    _put(attributes, "gen_ai.usage.input_tokens", trace.get("prompt_tokens"))
    _put(attributes, "gen_ai.usage.output_tokens", trace.get("completion_tokens"))
    if trace.get("finish_reason"):
        attributes["gen_ai.response.finish_reasons"] = [str(trace["finish_reason"])]
    if trace.get("stream"):
        attributes["gen_ai.request.stream"] = True
    if request:
        for name, attribute in _REQUEST_PARAMETERS:
            _put(attributes, attribute, _parameter(request.get(name)))
    if address is not None:
        attributes["server.address"] = address[0]
        _put(attributes, "server.port", address[1])
    if trace.get("status_code", 200) >= 400:
        attributes["error.type"] = str(trace.get("error_type") or trace["status_code"])
    for column, attribute in _LLMOPS_COLUMNS:
        _put(attributes, attribute, trace.get(column))
    if content:
        _put_content(attributes, trace, request)
    return attributes


def _put(attributes: dict[str, AttributeValue], name: str, value: Any) -> None:
    if value is not None and value != "":
        attributes[name] = value


def _parameter(value: Any) -> AttributeValue | None:
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return [value] if value else None
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return [str(item) for item in value]
    return None


def _put_content(
    attributes: dict[str, AttributeValue], trace: Mapping[str, Any], request: Mapping[str, Any] | None
) -> None:
    """``gen_ai.input.messages`` / ``gen_ai.output.messages`` (JSON text), opt-in as the conventions say."""
    if request is not None:
        messages = request.get("messages")
        if isinstance(messages, list):
            attributes["gen_ai.input.messages"] = orjson.dumps(
                [_semconv_message(message) for message in messages if isinstance(message, dict)]
            ).decode()
        elif request.get("prompt") is not None or request.get("input") is not None:
            text = request.get("prompt") if request.get("prompt") is not None else request.get("input")
            parts = [
                {"type": "text", "content": text if isinstance(text, str) else orjson.dumps(text).decode()}
            ]
            attributes["gen_ai.input.messages"] = orjson.dumps([{"role": "user", "parts": parts}]).decode()
    if trace.get("response_text") is not None:
        output = {
            "role": "assistant",
            "parts": [{"type": "text", "content": trace["response_text"]}],
            "finish_reason": trace.get("finish_reason") or "stop",
        }
        attributes["gen_ai.output.messages"] = orjson.dumps([output]).decode()


def _semconv_message(message: Mapping[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts
        parts = [
            {"type": "text", "content": part.get("text", "")}
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        ]
    else:
        parts = [{"type": "text", "content": "" if content is None else str(content)}]
    return {"role": str(message.get("role", "user")), "parts": parts}


# ---- in: an ingested span's attributes -> a trace ------------------------------------------------


@dataclass(slots=True)
class ModelCall:
    """What an ingested span says about one call to a model (the fields of its trace)."""

    model: str
    provider: str | None = None
    response_model: str | None = None
    operation: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    stream: bool = False
    cost: float | None = None
    error_type: str | None = None
    request: dict[str, Any] | None = None
    response_text: str | None = None
    content_keys: set[str] = field(default_factory=set)  # the attributes that held messages


def is_model_call(attributes: Mapping[str, Any]) -> bool:
    if attributes.get("gen_ai.operation.name") in _NOT_MODEL_CALLS:
        return False
    kind = attributes.get("openinference.span.kind")
    if isinstance(kind, str) and kind.upper() not in _MODEL_KINDS:
        return False
    return _model_name(attributes) is not None


def _openinference_operation(attributes: Mapping[str, Any]) -> str | None:
    kind = attributes.get("openinference.span.kind")
    return "embeddings" if isinstance(kind, str) and kind.upper() == "EMBEDDING" else None


def model_call(attributes: Mapping[str, Any], *, content: bool = True) -> ModelCall | None:
    """The model call a span describes, or None when it is another kind of span (an agent step,
    a tool, a retriever, a web request). ``content``: keep the messages (request, response text)."""
    if not is_model_call(attributes):
        return None
    model = _model_name(attributes)
    assert model is not None
    call = ModelCall(
        model=model,
        provider=_text(
            attributes, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "llm.vendor"
        ),
        response_model=_text(attributes, "gen_ai.response.model", "llm.response.model"),
        operation=_text(attributes, "gen_ai.operation.name", "llm.request.type")
        or _openinference_operation(attributes),
        prompt_tokens=_integer(
            attributes,
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "llm.token_count.prompt",
            "llm.usage.prompt_tokens",
        ),
        completion_tokens=_integer(
            attributes,
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
            "llm.usage.completion_tokens",
        ),
        stream=attributes.get("gen_ai.request.stream") is True or attributes.get("llm.is_streaming") is True,
        cost=_number(attributes, "gen_ai.usage.cost", "llm.cost.total", "llmops.cost"),
        error_type=_text(attributes, "error.type"),
    )
    call.finish_reason = _finish_reason(attributes)
    _read_content(call, attributes, content)
    return call


def _model_name(attributes: Mapping[str, Any]) -> str | None:
    """The model asked for; OpenInference names an EMBEDDING span's model ``embedding.model_name``."""
    return _text(
        attributes,
        "gen_ai.request.model",
        "llm.model_name",
        "embedding.model_name",
        "gen_ai.response.model",
        "llm.request.model",
    )


def _text(attributes: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _integer(attributes: Mapping[str, Any], *names: str) -> int | None:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) and 0 <= value < 2**31:
            return value
        if isinstance(value, float) and value.is_integer() and 0 <= value < 2**31:
            return int(value)
    return None


def _number(attributes: Mapping[str, Any], *names: str) -> float | None:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:  # not NaN
            if abs(value) < 1e12:
                return float(value)
    return None


def _finish_reason(attributes: Mapping[str, Any]) -> str | None:
    reasons = attributes.get("gen_ai.response.finish_reasons")
    if isinstance(reasons, list) and reasons and isinstance(reasons[0], str):
        return reasons[0][:40]
    if isinstance(reasons, str) and reasons:
        return reasons[:40]
    reason = _text(
        attributes, "gen_ai.completion.0.finish_reason", "llm.output_messages.0.message.finish_reason"
    )
    return reason[:40] if reason else None


# attribute names that hold what users and models wrote (messages, documents, tool arguments, the
# inputs and outputs of workflow steps): kept out of a model call's attributes (they become its request
# and response), and out of everything stored when ``trace_content`` is off
_CONTENT_PREFIXES = (
    "gen_ai.prompt.",
    "gen_ai.completion.",
    "llm.input_messages.",
    "llm.output_messages.",
    "llm.prompts.",
    "llm.prompt_template.variables",
    "retrieval.documents.",
    "reranker.input_documents.",
    "reranker.output_documents.",
    "embedding.embeddings.",
)
_CONTENT_NAMES = frozenset(
    {
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "gen_ai.system_instructions",
        "gen_ai.prompt",  # older GenAI conventions (an event's attribute)
        "gen_ai.completion",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "input.value",
        "output.value",
        "llm.prompts",
        "reranker.query",
        "traceloop.entity.input",  # OpenLLMetry's workflow and task spans
        "traceloop.entity.output",
    }
)


def is_content(name: str) -> bool:
    return name in _CONTENT_NAMES or name.startswith(_CONTENT_PREFIXES)


def without_content(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in attributes.items() if not is_content(name)}


def _read_content(call: ModelCall, attributes: Mapping[str, Any], keep: bool) -> None:
    call.content_keys = {name for name in attributes if is_content(name)}
    if not keep:
        return
    messages = (
        _semconv_messages(attributes.get("gen_ai.input.messages"))
        or _indexed_messages(attributes, "gen_ai.prompt.", ".role", ".content")
        or _indexed_messages(attributes, "llm.input_messages.", ".message.role", ".message.content")
    )
    system = attributes.get("gen_ai.system_instructions")
    if messages and isinstance(system, str) and system:
        messages.insert(0, {"role": "system", "content": _joined_text(system)})
    if messages:
        call.request = {"model": call.model, "messages": messages}
    elif isinstance(attributes.get("input.value"), str):
        call.request = {"model": call.model, "input": attributes["input.value"]}
    if call.request is not None:
        for name, attribute in _REQUEST_PARAMETERS:
            value = attributes.get(attribute)
            if value is not None and name not in call.request and name != "max_completion_tokens":
                call.request[name] = value
        for name, value in _invocation_parameters(attributes).items():
            call.request.setdefault(name, value)
    outputs = (
        _semconv_messages(attributes.get("gen_ai.output.messages"))
        or _indexed_messages(attributes, "gen_ai.completion.", ".role", ".content")
        or _indexed_messages(attributes, "llm.output_messages.", ".message.role", ".message.content")
    )
    if outputs:
        call.response_text = "".join(str(message.get("content") or "") for message in outputs[:1])
    elif isinstance(attributes.get("output.value"), str):
        call.response_text = attributes["output.value"]


def _invocation_parameters(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """OpenInference's ``llm.invocation_parameters`` (JSON text): the request's parameters."""
    text = attributes.get("llm.invocation_parameters")
    if not isinstance(text, str):
        return {}
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {name: value[name] for name, _ in _REQUEST_PARAMETERS if name in value}


def _semconv_messages(value: Any) -> list[dict[str, Any]]:
    """``gen_ai.input.messages``/``output.messages``: JSON text (or already a list) of
    ``{"role", "parts": [{"type": "text", "content"}...]}`` -> OpenAI-shaped messages."""
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return [{"role": "user", "content": value}] if value else []
    if not isinstance(value, list):
        return []
    messages = []
    for item in value:
        if not isinstance(item, dict):
            continue
        content = item.get("content")
        text = _joined_text(item.get("parts")) if "parts" in item else _joined_text(content)
        messages.append({"role": str(item.get("role") or "user"), "content": text})
    return messages


def _joined_text(parts: Any) -> str:
    """The text of message parts (a list of ``{"type": "text", "content"}``, JSON text of one, or text)."""
    if isinstance(parts, str):
        text = parts
        if not text.lstrip().startswith("["):
            return text
        try:
            parts = orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
    if not isinstance(parts, list):
        return ""
    texts = []
    for part in parts:
        if isinstance(part, dict):
            content = part.get("content", part.get("text"))
            if isinstance(content, str):
                texts.append(content)
        elif isinstance(part, str):
            texts.append(part)
    return "".join(texts)


def _indexed_messages(
    attributes: Mapping[str, Any], prefix: str, role: str, content: str
) -> list[dict[str, Any]]:
    """``prefix.0.role``, ``prefix.0.content``, ``prefix.1...`` (OpenLLMetry, OpenInference)."""
    messages = []
    index = 0
    while True:
        text = attributes.get(f"{prefix}{index}{content}")
        who = attributes.get(f"{prefix}{index}{role}")
        if text is None and who is None:
            break
        messages.append({"role": str(who or "user"), "content": text if isinstance(text, str) else ""})
        index += 1
    return messages
