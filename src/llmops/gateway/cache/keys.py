"""What makes two requests the same question: canonical cache keys and semantic scopes.

The exact key is a hash of the endpoint, the tenant and every request field that can change the
answer, serialised with sorted keys (so key order never matters), top-level whole numbers written alike
(``"temperature": 0`` and ``0.0`` are one question). Fields that only change how the
answer is delivered or who asked (``stream``, ``stream_options``, ``user``, ``metadata``, ``store``)
are left out, so a streaming and a non-streaming client share an entry.

The semantic scope is the same hash without the conversation itself: two requests may share an
answer only with the same model, parameters, system prompt and tenant. The conversation text (what
gets embedded) is the non-system messages, or the prompt.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from llmops.providers.base import Payload
from llmops.providers.tokens import content_text

IGNORED_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store"})
_CONVERSATION_FIELDS = frozenset({"messages", "prompt", "input"})


def _digest(value: Any) -> str:
    return hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS), digest_size=20).hexdigest()


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def answer_fields(payload: Payload) -> dict[str, Any]:
    return {key: _number(value) for key, value in payload.items() if key not in IGNORED_FIELDS}


def exact_key(endpoint: str, tenant: str, payload: Payload) -> str:
    return _digest([endpoint, tenant, answer_fields(payload)])


def semantic_scope(endpoint: str, tenant: str, payload: Payload) -> str:
    fields = {key: value for key, value in answer_fields(payload).items() if key not in _CONVERSATION_FIELDS}
    messages = payload.get("messages")
    system = (
        [
            message
            for message in messages
            if isinstance(message, dict) and message.get("role") in ("system", "developer")
        ]
        if isinstance(messages, list)
        else []
    )
    return _digest([endpoint, tenant, fields, system])


def conversation_text(payload: Payload) -> str | None:
    """The text a semantic lookup embeds; None when the request has none worth comparing."""
    messages = payload.get("messages")
    if isinstance(messages, list):
        lines = []
        for message in messages:
            if not isinstance(message, dict) or message.get("role") in ("system", "developer"):
                continue
            if message.get("tool_calls") or message.get("role") == "tool":
                return None  # tool round-trips are exact by nature
            lines.append(f"{message.get('role')}: {content_text(message.get('content'))}")
        return "\n".join(lines) or None
    prompt = payload.get("prompt")
    return prompt if isinstance(prompt, str) and prompt else None


def is_deterministic(payload: Payload) -> bool:
    """Temperature 0 or a seed: the upstream is asked for the same answer every time."""
    temperature = payload.get("temperature")
    return temperature == 0 or payload.get("seed") is not None
