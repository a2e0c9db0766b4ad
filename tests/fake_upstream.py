"""A fake OpenAI-compatible upstream over a real socket, with fault injection.

It speaks OpenAI's HTTP API (JSON and SSE) on 127.0.0.1, either from a background thread
(``with FakeUpstream() as fake: ...``) or as a process of its own::

    python tests/fake_upstream.py --port 0 --name a
    # prints: fake-upstream a ready on http://127.0.0.1:PORT/v1   (stops on SIGTERM/SIGINT)

Every answer says which upstream gave it: the ``x-fake-upstream: NAME`` response header, the
id ``chatcmpl-NAME`` (``cmpl-NAME``) and ``system_fingerprint: fp_NAME`` (the name defaults to
``fake``, so the default answers are unchanged).

The upstream model id picks a behaviour:

- anything else: a normal answer "fake answer to: <last user text>" with usage
- ``fake-tools``: answers with a tool call to the first tool offered
- ``fake-no-usage``: omits usage (the gateway must count tokens itself)
- ``fake-400`` / ``fake-401`` / ``fake-429`` / ``fake-500``: that HTTP error, OpenAI-shaped
- ``fake-slow``: waits 3 s before answering (timeouts)
- ``fake-bad-json``: 200 with a body that is not JSON
- ``fake-stream-break``: a stream that stops after one chunk without [DONE], connection closed
- ``fault:SPEC``: the fault SPEC on every request (the request header ``x-fake-fault: SPEC`` does
  the same for any model id)

A fault SPEC is a fault name followed by comma-separated ``key=value`` options, e.g.
``429,retry_after=2`` or ``cut_after,chunks=2``:

=====================  =========================================================================
``500`` (any status)   that HTTP status with an OpenAI-shaped error body
``429``                429 with ``Retry-After: retry_after`` (seconds, default 1; fractions kept)
``hang``               accepts the request and answers nothing for ``seconds`` (default 3600)
``reset``              closes the connection without a response (TCP reset)
``slow``               waits ``seconds`` (default 1), then answers normally
``slow_first_token``   streams: headers at once, first chunk after ``seconds`` (default 2);
                       whole answers: waits as ``slow``
``cut_after``          streams: ``chunks`` SSE events (default 1), then the connection closes
                       without ``[DONE]`` (with ``chunks`` past the last event: ``[DONE]`` too,
                       but the HTTP body is still cut before its end); whole answers: half the
                       body, then the connection closes
``context``            400 ``code: context_length_exceeded`` when the prompt text is longer than
                       ``max_chars`` characters (default 0: always)
=====================  =========================================================================

Refusing connections needs no fault: stop the process (it can be started again on the same port).

Per process, ``POST /_control`` sets a fault for the requests that follow, overriding any
per-request fault while it applies::

    {"fault": "429", "retry_after": 1, "count": 2}    # the next 2 requests
    {"fault": "500", "every": 2}                       # every 2nd request, until cleared
    {"fault": null}                                    # clear
    {"reset_stats": true}                              # zero the counters (may be combined)

``GET /_stats`` answers ``{"name", "requests", "by_model", "faults", "in_flight", "max_in_flight",
"fault"}``: requests counts every /v1 POST received (faulted or not). In-thread, the same is
available as :meth:`FakeUpstream.control` and :meth:`FakeUpstream.stats`, and every JSON request
body is kept in :attr:`FakeUpstream.requests` for assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

ANSWER_PREFIX = "fake answer to: "
FAULT_HEADER = "x-fake-fault"
NAME_HEADER = "x-fake-upstream"
FAULT_PREFIX = "fault:"
_SHUTDOWN_SECONDS = 0.5  # requests still running (hanging ones) are cancelled after this at stop


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


def _prompt_text(body: dict[str, Any]) -> str:
    parts = [str(message.get("content") or "") for message in body.get("messages") or []]
    prompt = body.get("prompt")
    if prompt is not None:
        parts.append(str(prompt))
    return "".join(parts)


def _error(
    status: int, message: str, error_type: str, code: str | None = None, **headers: str
) -> web.Response:
    payload = {"error": {"message": message, "type": error_type, "param": None, "code": code}}
    return web.json_response(payload, status=status, headers=headers)


@dataclass(frozen=True)
class Fault:
    """One injected behaviour: a name and its options (see the module docstring)."""

    name: str
    options: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """``"429,retry_after=2"`` → Fault("429", {"retry_after": 2.0})."""
        name, *items = [item.strip() for item in spec.split(",") if item.strip()]
        options = {}
        for item in items:
            key, _, value = item.partition("=")
            options[key.strip()] = float(value)
        return cls(name, options)

    def option(self, key: str, default: float) -> float:
        return self.options.get(key, default)


@dataclass
class _ProcessFault:
    fault: Fault
    count: int | None  # requests left; None: until cleared
    every: int  # apply to every n-th request
    seen: int = 0

    def take(self) -> Fault | None:
        self.seen += 1
        if self.seen % self.every:
            return None
        if self.count is not None:
            if self.count <= 0:
                return None
            self.count -= 1
        return self.fault


async def _cut(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Close the connection in the middle of a streamed body."""
    await asyncio.sleep(0.05)  # let the chunks sent so far be read before the close
    if request.transport is not None:
        request.transport.close()
    return response


def _number(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else str(number)


def _reset(request: web.Request) -> None:
    """Close the connection with a TCP reset (SO_LINGER 0), no response at all."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.close()


class FakeUpstream:
    def __init__(self, name: str = "fake", port: int = 0) -> None:
        self.name = name
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.port = port
        self.request_count = 0
        self.by_model: dict[str, int] = {}
        self.faults_served = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._fault: _ProcessFault | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # --- in a background thread -------------------------------------------------------------

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
        asyncio.set_event_loop(loop)
        self._loop = loop
        loop.run_until_complete(self.open())
        self._ready.set()
        loop.run_forever()
        pending = asyncio.all_tasks(loop)  # handlers still running after the shutdown timeout
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()

    # --- the server itself (thread or process) ---------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/_control", self._control)
        app.router.add_get("/_stats", self._stats)
        return app

    async def open(self) -> None:
        """Listen on 127.0.0.1:port (0: any free port, then stored in :attr:`port`)."""
        self._runner = web.AppRunner(
            self.app(), access_log=None, shutdown_timeout=_SHUTDOWN_SECONDS, handler_cancellation=True
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        assert server.sockets
        self.port = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- fault control ------------------------------------------------------------------------

    def control(
        self,
        fault: str | None = None,
        *,
        count: int | None = None,
        every: int = 1,
        reset_stats: bool = False,
        **options: float,
    ) -> dict[str, Any]:
        """Set (or with ``fault=None`` clear) the fault of this process; the same as POST /_control."""
        if reset_stats:
            self.request_count = self.faults_served = self.max_in_flight = 0
            self.by_model = {}
            self.requests.clear()
            self.headers.clear()
        if fault in (None, "", "none"):
            self._fault = None
        else:
            spec = Fault(str(fault), {key: float(value) for key, value in options.items()})
            self._fault = _ProcessFault(spec, count, max(1, int(every)))
        return self.stats()

    def stats(self) -> dict[str, Any]:
        current = None
        if self._fault is not None:
            current = {"fault": self._fault.fault.name, **self._fault.fault.options}
            current["count"] = self._fault.count
        return {
            "name": self.name,
            "requests": self.request_count,
            "by_model": dict(self.by_model),
            "faults": self.faults_served,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "fault": current,
        }

    async def _control(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            options = {key: float(value) for key, value in body.items() if key not in _CONTROL_KEYS}
            count = body.get("count")
            stats = self.control(
                body.get("fault"),
                count=None if count is None else int(count),
                every=int(body.get("every") or 1),
                reset_stats=bool(body.get("reset_stats")),
                **options,
            )
        except (ValueError, TypeError) as exc:
            return _error(400, f"bad control request: {exc}", "invalid_request_error")
        return web.json_response(stats)

    async def _stats(self, _: web.Request) -> web.Response:
        return web.json_response(self.stats())

    def _fault_for(self, request: web.Request, model: str) -> Fault | None:
        if self._fault is not None:
            fault = self._fault.take()
            if fault is not None:
                return fault
        spec = request.headers.get(FAULT_HEADER)
        if spec is None and model.startswith(FAULT_PREFIX):
            spec = model[len(FAULT_PREFIX) :]
        return Fault.parse(spec) if spec else None

    # --- requests ---------------------------------------------------------------------------

    async def _read(self, request: web.Request) -> dict[str, Any]:
        body = await request.json()
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        self.request_count += 1
        model = str(body.get("model", ""))
        self.by_model[model] = self.by_model.get(model, 0) + 1
        return dict(body)

    def _headers(self) -> dict[str, str]:
        return {NAME_HEADER: self.name}

    async def _handle(self, request: web.Request, answer: Any) -> web.StreamResponse:
        """Read the body, apply a fault or a named failure, else let ``answer`` reply."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            body = await self._read(request)
            model = str(body.get("model", ""))
            fault = self._fault_for(request, model)
            if fault is not None:
                replied = await self._apply(fault, request, body)
                if replied is not None:
                    return replied
                if fault.name in ("slow_first_token", "cut_after") and body.get("stream"):
                    return await answer(request, body, fault)
            failure = await self._failure(model)
            if failure is not None:
                return failure
            response: web.StreamResponse = await answer(request, body, fault)
            return response
        finally:
            self.in_flight -= 1

    async def _apply(
        self, fault: Fault, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse | None:
        """Answer for ``fault``, or None when the normal answer follows (after any delay)."""
        self.faults_served += 1
        name = fault.name
        if name.isdigit():
            status = int(name)
            headers = self._headers()
            if status == 429:
                headers["Retry-After"] = _number(fault.option("retry_after", 1))
                return _error(429, f"fake upstream {self.name}: slow down", "rate_limit_error", **headers)
            return _error(
                status, f"fake upstream {self.name}: failed with {status}", "server_error", **headers
            )
        if name == "hang":
            await asyncio.sleep(fault.option("seconds", 3600))
            return _error(504, f"fake upstream {self.name}: hung", "server_error", **self._headers())
        if name == "reset":
            _reset(request)
            return web.Response(status=500)  # never sent: the connection is gone
        if name == "slow" or (name == "slow_first_token" and not body.get("stream")):
            await asyncio.sleep(fault.option("seconds", 1 if name == "slow" else 2))
            return None
        if name == "context":
            if len(_prompt_text(body)) > fault.option("max_chars", 0):
                return _error(
                    400,
                    f"This model's maximum context length is {int(fault.option('max_chars', 0))} "
                    "characters. Please reduce the length of the messages.",
                    "invalid_request_error",
                    "context_length_exceeded",
                    **self._headers(),
                )
            return None
        if name == "cut_after" and not body.get("stream"):
            return await self._cut_whole(request, body)
        if name in ("slow_first_token", "cut_after"):
            return None
        return _error(400, f"fake upstream: unknown fault {name!r}", "invalid_request_error")

    async def _cut_whole(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        whole = json.dumps(self._chat_answer(body, ANSWER_PREFIX + _last_user_text(body), None)).encode()
        response = web.StreamResponse(headers={"Content-Type": "application/json", **self._headers()})
        response.content_length = len(whole)
        await response.prepare(request)
        await response.write(whole[: len(whole) // 2])
        if request.transport is not None:
            request.transport.close()
        return response

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
        return await self._handle(request, self._chat_reply)

    def _chat_answer(
        self, body: dict[str, Any], text: str, tool_call: dict[str, Any] | None
    ) -> dict[str, Any]:
        model = body.get("model", "")
        message: dict[str, Any] = {"role": "assistant", "content": None if tool_call else text}
        if tool_call:
            message["tool_calls"] = [tool_call]
        answer: dict[str, Any] = {
            "id": f"chatcmpl-{self.name}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": f"fp_{self.name}",
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_call else "stop"}
            ],
        }
        if model != "fake-no-usage":
            answer["usage"] = {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}
        return answer

    async def _chat_reply(
        self, request: web.Request, body: dict[str, Any], fault: Fault | None
    ) -> web.StreamResponse:
        model = body.get("model", "")
        text = ANSWER_PREFIX + _last_user_text(body)
        tool_call = None
        if model == "fake-tools" and body.get("tools"):
            name = body["tools"][0]["function"]["name"]
            tool_call = {
                "id": "call_1",
                "type": "function",
                "function": {"name": name, "arguments": '{"city": "Paris"}'},
            }
        if body.get("stream"):
            return await self._chat_stream(request, body, text, tool_call, fault)
        return web.json_response(self._chat_answer(body, text, tool_call), headers=self._headers())

    async def _chat_stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        text: str,
        tool_call: dict[str, Any] | None,
        fault: Fault | None,
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **self._headers()})
        await response.prepare(request)
        if fault is not None and fault.name == "slow_first_token":
            await asyncio.sleep(fault.option("seconds", 2))
        cut_after = (
            int(fault.option("chunks", 1)) if fault is not None and fault.name == "cut_after" else None
        )
        base = {
            "id": f"chatcmpl-{self.name}",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": body["model"],
            "system_fingerprint": f"fp_{self.name}",
        }
        events: list[dict[str, Any]] = [
            {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        ]
        if tool_call:
            delta = {"tool_calls": [{"index": 0, **tool_call}]}
            events.append({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        else:
            third = len(text) // 3
            for part in (text[:third], text[third : 2 * third], text[2 * third :]):
                events.append({"choices": [{"index": 0, "delta": {"content": part}, "finish_reason": None}]})
            events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage") and body["model"] != "fake-no-usage":
            events.append(
                {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}
            )
        if body["model"] == "fake-stream-break":
            cut_after = 1
        for number, event in enumerate(events):
            if cut_after is not None and number >= cut_after:
                return await _cut(request, response)
            await response.write(b"data: " + json.dumps({**base, **event}).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
        if cut_after is not None:  # every event and [DONE] went out, but the chunked body never ends
            return await _cut(request, response)
        await response.write_eof()
        return response

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, self._completion_reply)

    async def _completion_reply(
        self, _: web.Request, body: dict[str, Any], __: Fault | None
    ) -> web.StreamResponse:
        text = ANSWER_PREFIX + str(body.get("prompt"))
        return web.json_response(
            {
                "id": f"cmpl-{self.name}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11},
            },
            headers=self._headers(),
        )

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, self._embedding_reply)

    async def _embedding_reply(
        self, _: web.Request, body: dict[str, Any], __: Fault | None
    ) -> web.StreamResponse:
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for index, _item in enumerate(inputs):
            vector = [0.5, 0.5, 0.5, 0.5]
            embedding: Any = vector
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack("<4f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        usage = {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)}
        return web.json_response(
            {"object": "list", "data": data, "model": body["model"], "usage": usage}, headers=self._headers()
        )

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake-model", "object": "model"}]})


_CONTROL_KEYS = frozenset({"fault", "count", "every", "reset_stats"})


async def _run(upstream: FakeUpstream) -> None:
    await upstream.open()
    print(f"fake-upstream {upstream.name} ready on {upstream.base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await upstream.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible upstream with fault injection.")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--name", default="fake", help="says which upstream answered (header, ids)")
    args = parser.parse_args(argv)
    try:
        from uvloop import run
    except ImportError:
        from asyncio import run
    run(_run(FakeUpstream(args.name, args.port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
