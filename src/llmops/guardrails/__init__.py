"""Guardrails: checks on prompts and answers on the gateway path (PII, injection, secrets, toxicity,
topics, words, patterns, JSON, length, an LLM judge), each a :class:`Guardrail` found by name.

Importing this package imports no classifier; built-in kinds load on first use.
"""

from llmops.guardrails.base import (
    CheckContext,
    Finding,
    Guardrail,
    GuardrailError,
    GuardrailUnavailable,
    Verdict,
)
from llmops.guardrails.config import GuardrailConfig
from llmops.guardrails.registry import GuardrailRegistry, guardrail

__all__ = [
    "CheckContext",
    "Finding",
    "Guardrail",
    "GuardrailConfig",
    "GuardrailError",
    "GuardrailRegistry",
    "GuardrailUnavailable",
    "Verdict",
    "guardrail",
]
