"""The OpenAI endpoints the gateway serves, and how each one calls a provider."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from llmops.gateway import validation
from llmops.providers.base import Payload, Provider, ProviderResult


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    kind: str  # chat | completion | embedding
    check: Callable[[Payload], None]
    streams: bool = True

    async def call(self, provider: Provider, payload: Payload) -> ProviderResult:
        if self.kind == "chat":
            return await provider.chat(payload)
        if self.kind == "completion":
            return await provider.complete(payload)
        return await provider.embed(payload)

    def stream(self, provider: Provider, payload: Payload) -> AsyncIterator[bytes]:
        if self.kind == "chat":
            return provider.stream_chat(payload)
        return provider.stream_complete(payload)


CHAT = Endpoint("chat.completions", "chat", validation.check_chat)
COMPLETIONS = Endpoint("completions", "completion", validation.check_completion)
EMBEDDINGS = Endpoint("embeddings", "embedding", validation.check_embedding, streams=False)
