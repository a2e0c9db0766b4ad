"""Counting tokens offline: prompt size before a call (context windows), usage when an upstream gives none."""

from __future__ import annotations

from llmops.gateway.endpoints import Endpoint
from llmops.providers.base import Payload, Provider


def prompt_tokens(endpoint: Endpoint, provider: Provider, payload: Payload) -> int:
    """Tokens of the request's input with the deployment's tokenizer."""
    if endpoint.kind == "chat":
        return provider.context.tokens.count_messages(payload["messages"], provider.upstream_model)
    source = payload.get("prompt") if endpoint.kind == "completion" else payload.get("input")
    items = source if isinstance(source, list) else [source]
    if items and all(isinstance(item, int) for item in items):  # one prompt given as token ids
        return len(items)
    return sum(len(item) if isinstance(item, list) else provider.count_tokens(str(item)) for item in items)


def completion_tokens(provider: Provider, texts: list[str]) -> int:
    return sum(provider.count_tokens(text) for text in texts if text)
