"""What a scorer sees and returns.

A scorer is a function (or a :class:`Scorer` subclass) that receives only the arguments it declares,
by name, from :class:`ScoreInput`: ``output``, ``expected``, ``input``, ``messages``, ``variables``,
``context``, ``row``, ``metadata``, ``trace``, ``latency_ms``, ``prompt_tokens``, ``completion_tokens``,
``cost``, and ``arg`` (the text after the colon of ``NAME:ARG`` on the command line). It returns a
number, a bool (1.0 / 0.0), None (not applicable: left out of the aggregates), or a :class:`Score`
carrying reasoning and the raw material it came from (a judge's whole answer).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Score:
    value: float | None
    reasoning: str | None = None
    raw: Any = None


@dataclass(frozen=True)
class ScoreInput:
    """One evaluated item, as scorers may ask for it."""

    output: str | None
    expected: Any = None
    input: str | None = None
    messages: list[dict[str, Any]] | None = None
    variables: dict[str, Any] | None = None
    context: str | None = None  # the row's `context` field (factual consistency with a context)
    row: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] | None = None
    trace: dict[str, Any] | None = None  # trace_id, model, status, ... when the output came from a call
    latency_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
