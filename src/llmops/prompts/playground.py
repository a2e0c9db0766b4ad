"""The playground: one conversation against several models and parameter sets, side by side.

A run is a matrix: a conversation (a prompt version rendered with variables, or raw messages) ×
models × parameter sets. Every cell is one request through :meth:`Gateway.handle`, the gateway's own
code path (routing, failover, cache, limits, tracing), at most ``max_concurrency`` at a time. Each
trace is annotated with the prompt version (when a prompt is used) and ``attributes.playground`` set
to the run id, and its id is chosen here so that a failed cell points at its trace too.

A failed cell carries its error and never fails the others. A bad run (no model, too many cells, a
reserved parameter) is a :class:`PlaygroundError` (an :class:`InvalidPrompt`: a 400 to the REST API).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from llmops.gateway.auth import ANONYMOUS, Principal
from llmops.gateway.endpoints import CHAT, COMPLETIONS, Endpoint
from llmops.gateway.errors import GatewayError
from llmops.gateway.service import Gateway, StreamReply
from llmops.ids import new_id
from llmops.prompts.services import DEFAULT_LABEL, InvalidPrompt, PromptService, Reference, parse_reference
from llmops.tracing.record import TraceRecord

MAX_CELLS = 32
MAX_CONCURRENCY = 16
RESERVED_PARAMETERS = frozenset({"model", "messages", "prompt", "stream", "stream_options"})

log = logging.getLogger("llmops.playground")


class PlaygroundError(InvalidPrompt):
    """A run that cannot start: no model, too many cells, a parameter the playground sets itself."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """What every cell sends, apart from the model and the parameters."""

    endpoint: Endpoint
    fields: dict[str, Any]  # {"messages": [...]} or {"prompt": "..."}
    prompt: dict[str, Any] | None = None  # {"name", "version", "label"} when a prompt version was rendered
    model: str | None = None  # the prompt's default model
    parameters: dict[str, Any] = field(default_factory=dict)  # the prompt's default parameters

    def annotations(self) -> dict[str, Any]:
        if self.prompt is None:
            return {}
        return {
            "prompt_name": self.prompt["name"],
            "prompt_version": self.prompt["version"],
            "prompt_label": self.prompt["label"],
        }


def from_prompt(
    prompts: PromptService, reference: Reference | str, variables: Mapping[str, Any] | None
) -> Conversation:
    """Render a prompt version (``NAME``, ``NAME@LABEL``, ``NAME#N``): chat prompts to the chat endpoint,
    text prompts to the completions endpoint. Blocking (reads the registry)."""
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    version, rendered = prompts.render(ref, dict(variables or {}))
    label = ref.label
    if label is None and ref.version is None and DEFAULT_LABEL in version.labels:
        label = DEFAULT_LABEL
    about = {"name": version.name, "version": version.number, "label": label}
    content = version.content
    if rendered.text is not None:
        fields: dict[str, Any] = {"prompt": rendered.text}
        endpoint = COMPLETIONS
    else:
        fields, endpoint = {"messages": rendered.as_messages()}, CHAT
    return Conversation(endpoint, fields, about, content.model, dict(content.parameters))


def from_messages(messages: Sequence[Mapping[str, Any]]) -> Conversation:
    if not messages:
        raise PlaygroundError("give a prompt or at least one message")
    return Conversation(CHAT, {"messages": [dict(message) for message in messages]})


@dataclass(frozen=True, slots=True)
class Cell:
    """One model with one parameter set: its answer or its error, and what it cost."""

    model: str
    parameters: dict[str, Any]
    status: str  # ok | error
    status_code: int
    text: str | None
    finish_reason: str | None
    latency_ms: float
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None
    error: str | None
    trace_id: str


@dataclass(frozen=True, slots=True)
class PlaygroundRun:
    id: str
    conversation: Conversation
    cells: list[Cell]

    def as_dict(self) -> dict[str, Any]:
        fields = self.conversation.fields
        return {
            "id": self.id,
            "prompt": self.conversation.prompt,
            "endpoint": self.conversation.endpoint.name,
            "messages": fields.get("messages"),
            "text": fields.get("prompt"),
            "cells": [asdict(cell) for cell in self.cells],
        }


def plan(
    conversation: Conversation, models: Sequence[str], parameter_sets: Sequence[Mapping[str, Any]]
) -> list[tuple[str, dict[str, Any]]]:
    """The cells, models outer and parameter sets inner; each set over the prompt's default parameters."""
    chosen = list(dict.fromkeys(models)) or ([conversation.model] if conversation.model else [])
    if not chosen:
        raise PlaygroundError("no model: name one or more (the prompt declares no default model)")
    sets = [dict(parameters) for parameters in parameter_sets] or [{}]
    for parameters in sets:
        reserved = sorted(RESERVED_PARAMETERS.intersection(parameters))
        if reserved:
            raise PlaygroundError(f"parameters cannot set {reserved[0]!r}: the playground sets it")
    if len(chosen) * len(sets) > MAX_CELLS:
        raise PlaygroundError(
            f"{len(chosen)} models x {len(sets)} parameter sets is {len(chosen) * len(sets)} cells;"
            f" at most {MAX_CELLS} per run"
        )
    return [(model, {**conversation.parameters, **parameters}) for model in chosen for parameters in sets]


async def run_playground(
    gateway: Gateway,
    conversation: Conversation,
    models: Sequence[str],
    parameter_sets: Sequence[Mapping[str, Any]] = (),
    *,
    max_concurrency: int = 4,
    principal: Principal = ANONYMOUS,
    use_cache: bool = False,
) -> PlaygroundRun:
    """Every cell through the gateway, at most ``max_concurrency`` at once; cells in :func:`plan`'s order."""
    if not 1 <= max_concurrency <= MAX_CONCURRENCY:
        raise PlaygroundError(f"max_concurrency must be between 1 and {MAX_CONCURRENCY}")
    cells = plan(conversation, models, parameter_sets)
    run_id = new_id()
    gate = asyncio.Semaphore(max_concurrency)
    # no-cache: every cell asks its model (still stored for clients that use the cache)
    directive = None if use_cache else b"no-cache"

    async def one(model: str, parameters: dict[str, Any]) -> Cell:
        async with gate:
            return await _cell(gateway, conversation, model, parameters, run_id, principal, directive)

    answered = await asyncio.gather(*(one(model, parameters) for model, parameters in cells))
    return PlaygroundRun(run_id, conversation, list(answered))


async def _cell(
    gateway: Gateway,
    conversation: Conversation,
    model: str,
    parameters: dict[str, Any],
    run_id: str,
    principal: Principal,
    directive: bytes | None,
) -> Cell:
    trace_id = new_id()
    annotations = {**conversation.annotations(), "id": trace_id, "attributes": {"playground": run_id}}
    body = orjson.dumps({"model": model, **parameters, **conversation.fields})
    start = time.perf_counter()
    try:
        reply = await gateway.handle(
            conversation.endpoint, principal, body, directive, annotations=annotations
        )
        if isinstance(reply, StreamReply):  # unreachable: "stream" is a reserved parameter
            await _discard(reply)
            raise GatewayError(400, "the playground does not stream")
    except GatewayError as exc:
        return _failed(model, parameters, exc.status, exc.message, start, trace_id)
    except Exception as exc:  # boundary: one cell's unexpected failure is shown, the others go on
        log.exception("playground cell %s failed unexpectedly", model)
        return _failed(
            model, parameters, 500, f"internal error: {type(exc).__name__}: {exc}", start, trace_id
        )
    return _answered(model, parameters, reply.body, reply.trace, start, trace_id)


async def _discard(reply: StreamReply) -> None:
    async for _ in reply.chunks():
        pass


def _failed(
    model: str, parameters: dict[str, Any], status: int, message: str, start: float, trace_id: str
) -> Cell:
    latency = (time.perf_counter() - start) * 1000
    return Cell(model, parameters, "error", status, None, None, latency, None, None, None, message, trace_id)


def _answered(
    model: str,
    parameters: dict[str, Any],
    body: bytes,
    trace: TraceRecord | None,
    start: float,
    trace_id: str,
) -> Cell:
    data = orjson.loads(body)
    choices = data.get("choices") or [{}]
    first = choices[0]
    text = first.get("text") if "text" in first else (first.get("message") or {}).get("content")
    usage = data.get("usage") or {}
    if trace is not None:
        latency, prompt, completion, cost = (
            trace.latency_ms,
            trace.prompt_tokens,
            trace.completion_tokens,
            trace.cost,
        )
    else:
        latency = (time.perf_counter() - start) * 1000
        prompt, completion, cost = usage.get("prompt_tokens"), usage.get("completion_tokens"), None
    return Cell(
        model,
        parameters,
        "ok",
        200,
        text,
        first.get("finish_reason"),
        latency,
        prompt,
        completion,
        cost,
        None,
        trace_id,
    )
