"""How evaluation code calls a model: one chat request in, one answer (or an error) out.

The runner builds the caller from the gateway (so calls are traced, cached when asked, cost-accounted
and retried like any request); judges and other model-graded scorers receive the same caller, which
keeps them testable with a plain async function.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    params: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, seed, ...


@dataclass(frozen=True)
class ChatResult:
    text: str | None
    latency_ms: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    trace_id: str | None = None
    error: str | None = None  # set when the call failed after its retries; text is then None


ModelCaller = Callable[[ChatRequest], Awaitable[ChatResult]]
