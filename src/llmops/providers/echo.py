"""The ``echo`` provider: answers with the last user message, deterministically.

For tests and demos: no model, no network. It honours ``n``, ``max_tokens`` (counted in
words), ``stop``, streaming and ``stream_options.include_usage``; embeddings are unit vectors
derived from a hash of the text. ``params.delay_seconds`` adds a fixed delay per request, to
stand in for a slow model; ``params.reply`` replaces the echoed text with a fixed answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from llmops.ids import new_id
from llmops.providers.base import SSE_DONE, Payload, Provider, ProviderResult, sse_event
from llmops.providers.tokens import content_text


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def _apply_limits(text: str, payload: Payload) -> tuple[str, str]:
    """Cut the reply at the first stop sequence, then at max_tokens words."""
    finish_reason = "stop"
    stops = payload.get("stop")
    for stop in [stops] if isinstance(stops, str) else stops or []:
        if stop and stop in text:
            text = text[: text.index(stop)]
    limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
    words = text.split(" ")
    if limit is not None and len(words) > limit:
        text, finish_reason = " ".join(words[:limit]), "length"
    return text, finish_reason


class EchoProvider(Provider):
    name = "echo"

    async def _delay(self) -> None:
        delay = float(self.config.params.get("delay_seconds", 0))
        if delay > 0:
            await asyncio.sleep(delay)

    def _reply(self, source: str, payload: Payload) -> tuple[str, str]:
        return _apply_limits(str(self.config.params.get("reply", source)), payload)

    def _usage(self, prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    async def chat(self, payload: Payload) -> ProviderResult:
        await self._delay()
        messages = payload["messages"]
        text, finish_reason = self._reply(_last_user_text(messages), payload)
        n = payload.get("n") or 1
        choices = [
            {
                "index": index,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
            for index in range(n)
        ]
        prompt_tokens = self.context.tokens.count_messages(messages)
        return ProviderResult.from_data(
            {
                "id": f"chatcmpl-{new_id()}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.upstream_model,
                "choices": choices,
                "usage": self._usage(prompt_tokens, n * self.count_tokens(text)),
            }
        )

    async def stream_chat(self, payload: Payload) -> AsyncIterator[bytes]:
        await self._delay()
        messages = payload["messages"]
        text, finish_reason = self._reply(_last_user_text(messages), payload)
        n = payload.get("n") or 1
        base = {
            "id": f"chatcmpl-{new_id()}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.upstream_model,
        }

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            return sse_event({**base, "choices": [choice]})

        for index in range(n):
            yield chunk(index, {"role": "assistant", "content": ""})
            for position, word in enumerate(text.split(" ") if text else []):
                yield chunk(index, {"content": word if position == 0 else " " + word})
            yield chunk(index, {}, finish_reason)
        if (payload.get("stream_options") or {}).get("include_usage"):
            prompt_tokens = self.context.tokens.count_messages(messages)
            usage = self._usage(prompt_tokens, n * self.count_tokens(text))
            yield sse_event({**base, "choices": [], "usage": usage})
        yield SSE_DONE

    async def complete(self, payload: Payload) -> ProviderResult:
        await self._delay()
        prompts = payload["prompt"] if isinstance(payload["prompt"], list) else [payload["prompt"]]
        n = payload.get("n") or 1
        choices = []
        completion_tokens = 0
        for prompt_index, prompt in enumerate(prompts):
            text, finish_reason = self._reply(str(prompt), payload)
            completion_tokens += n * self.count_tokens(text)
            for copy in range(n):
                choices.append(
                    {
                        "index": prompt_index * n + copy,
                        "text": text,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                )
        prompt_tokens = sum(self.count_tokens(str(prompt)) for prompt in prompts)
        return ProviderResult.from_data(
            {
                "id": f"cmpl-{new_id()}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": self.upstream_model,
                "choices": choices,
                "usage": self._usage(prompt_tokens, completion_tokens),
            }
        )

    async def stream_complete(self, payload: Payload) -> AsyncIterator[bytes]:
        result = await self.complete(payload)
        base = {key: result.data[key] for key in ("id", "object", "created", "model")}
        for choice in result.data["choices"]:
            for position, word in enumerate(choice["text"].split(" ") if choice["text"] else []):
                text = word if position == 0 else " " + word
                yield sse_event(
                    {**base, "choices": [{"index": choice["index"], "text": text, "finish_reason": None}]}
                )
            finish = {"index": choice["index"], "text": "", "finish_reason": choice["finish_reason"]}
            yield sse_event({**base, "choices": [finish]})
        if (payload.get("stream_options") or {}).get("include_usage"):
            yield sse_event({**base, "choices": [], "usage": result.data["usage"]})
        yield SSE_DONE

    async def embed(self, payload: Payload) -> ProviderResult:
        await self._delay()
        texts = payload["input"] if isinstance(payload["input"], list) else [payload["input"]]
        dimensions = int(payload.get("dimensions") or self.config.params.get("dimensions", 8))
        data = [
            {"object": "embedding", "index": index, "embedding": _hash_vector(str(text), dimensions)}
            for index, text in enumerate(texts)
        ]
        tokens = sum(self.count_tokens(str(text)) for text in texts)
        return ProviderResult.from_data(
            {
                "object": "list",
                "data": data,
                "model": self.upstream_model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


def _hash_vector(text: str, dimensions: int) -> list[float]:
    values: list[float] = []
    counter = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values.extend(value / 2**31 - 1.0 for value in struct.unpack("<8I", digest))
        counter += 1
    vector = values[:dimensions]
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [value / norm for value in vector]
