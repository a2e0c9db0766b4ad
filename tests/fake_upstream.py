"""A fake OpenAI-compatible upstream over a real socket, for testing the `openai` provider.

It speaks OpenAI's HTTP API (JSON and SSE) on 127.0.0.1 from a background thread. The
upstream model id picks a behaviour:

- anything else: a normal answer "fake answer to: <last user text>" with usage
- ``fake-tools``: answers with a tool call to the first tool offered
- ``fake-no-usage``: omits usage (the gateway must count tokens itself)
- ``fake-400`` / ``fake-401`` / ``fake-429`` / ``fake-500``: that HTTP error, OpenAI-shaped
- ``fake-slow``: waits 3 s before answering (timeouts)
- ``fake-bad-json``: 200 with a body that is not JSON
- ``fake-stream-break``: a stream that stops after one chunk without [DONE], connection closed

Every JSON request body is kept in :attr:`FakeUpstream.requests` for assertions.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
import time
from typing import Any

from aiohttp import web

ANSWER_PREFIX = "fake answer to: "


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def _error(status: int, message: str, error_type: str) -> web.Response:
    payload = {"error": {"message": message, "type": error_type, "param": None, "code": None}}
    return web.json_response(payload, status=status)


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeUpstream:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._serve, name="fake-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake upstream did not start")

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        server = site._server
        assert server is not None
        assert server.sockets
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _read(self, request: web.Request) -> dict[str, Any]:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        return dict(body)

    async def _failure(self, model: str) -> web.StreamResponse | None:
        if model == "fake-400":
            return _error(400, "fake upstream: invalid parameter", "invalid_request_error")
        if model == "fake-401":
            return _error(401, "fake upstream: bad upstream key", "authentication_error")
        if model == "fake-429":
            return _error(429, "fake upstream: slow down", "rate_limit_error")
        if model == "fake-500":
            return _error(500, "fake upstream: exploded", "server_error")
        if model == "fake-bad-json":
            return web.Response(body=b"{not json", content_type="application/json")
        if model == "fake-slow":
            await asyncio.sleep(3)
        return None

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        model = body.get("model", "")
        failure = await self._failure(model)
        if failure is not None:
            return failure
        text = ANSWER_PREFIX + _last_user_text(body)
        tool_call = None
        if model == "fake-tools" and body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            tool_call = {
                "id": "call_1",
                "type": "function",
                "function": {"name": name, "arguments": '{"city": "Paris"}'},
            }
        usage = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        if body.get("stream"):
            return await self._chat_stream(request, body, text, tool_call, usage)
        message: dict[str, Any] = {"role": "assistant", "content": None if tool_call else text}
        if tool_call:
            message["tool_calls"] = [tool_call]
        answer: dict[str, Any] = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_call else "stop"}
            ],
        }
        if model != "fake-no-usage":
            answer["usage"] = usage
        return web.json_response(answer)

    async def _chat_stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        text: str,
        tool_call: dict[str, Any] | None,
        usage: dict[str, int],
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": body["model"],
        }

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            await response.write(
                b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"
            )

        await send([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        if body["model"] == "fake-stream-break":
            request.transport.close() if request.transport else None
            return response
        if tool_call:
            delta = {"tool_calls": [{"index": 0, **tool_call}]}
            await send([{"index": 0, "delta": delta, "finish_reason": None}])
            await send([{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
        else:
            third = len(text) // 3
            for part in (text[:third], text[third : 2 * third], text[2 * third :]):
                await send([{"index": 0, "delta": {"content": part}, "finish_reason": None}])
            await send([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if (body.get("stream_options") or {}).get("include_usage") and body["model"] != "fake-no-usage":
            await send([], usage=usage)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        failure = await self._failure(body.get("model", ""))
        if failure is not None:
            return failure
        text = ANSWER_PREFIX + str(body.get("prompt"))
        return web.json_response(
            {
                "id": "cmpl-fake",
                "object": "text_completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
            }
        )

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body = await self._read(request)
        failure = await self._failure(body.get("model", ""))
        if failure is not None:
            return failure
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for index, _ in enumerate(inputs):
            vector = [0.5, 0.5, 0.5, 0.5]
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack("<4f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        usage = {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)}
        return web.json_response({"object": "list", "data": data, "model": body["model"], "usage": usage})

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
