#!/usr/bin/env python3
"""Time to first streamed event, for bench/run.sh (standard library only).

wrk only times whole responses, so streaming is timed here: a small asyncio client keeps N
keep-alive HTTP/1.1 connections open and, on each, sends `"stream": true` chat.completions
requests back to back for a fixed time. For every request it notes

  ttft   request written -> the first bytes of the first SSE `data:` event arrive
  total  request written -> the end of the response body (the chunked terminator)

A response counts as an error unless it is HTTP 200, ends with `data: [DONE]` and, since the
request asks for `stream_options.include_usage`, carries a usage chunk. The same client runs
against the upstream and the gateway, so its own cost cancels out of the difference.
It prints one line: `ttft_result key=value ...` (milliseconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from urllib.parse import urlsplit


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks; nan for no values."""
    if not sorted_values:
        return math.nan
    position = (len(sorted_values) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


class StreamingExchange(asyncio.Protocol):
    """One keep-alive connection; :meth:`send` writes a request and waits for its whole response."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._reset()

    def _reset(self) -> None:
        self._buffer = bytearray()
        self._body_start = -1
        self._status = 0
        self._length: int | None = None
        self._chunked = False
        self._sent_at = 0.0
        self._first_event_at: float | None = None
        self._done: asyncio.Future[tuple[int, float, float, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._done is not None and not self._done.done():
            if self._body_start >= 0 and self._length is None and not self._chunked:
                self._finish(time.perf_counter())  # body delimited by the connection closing
            else:
                self._done.set_exception(ConnectionError(f"connection lost mid-response: {exc!r}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self._buffer += data
        if self._body_start < 0:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self._parse_head(bytes(self._buffer[:end]))
            self._body_start = end + 4
        if self._first_event_at is None and self._buffer.find(b"data:", self._body_start) >= 0:
            self._first_event_at = now
        body_size = len(self._buffer) - self._body_start
        if self._chunked:
            if self._buffer.endswith(b"\r\n0\r\n\r\n") or (
                body_size == 5 and self._buffer.endswith(b"0\r\n\r\n")
            ):
                self._finish(now)
        elif self._length is not None and body_size >= self._length:
            self._finish(now)

    def _parse_head(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self._status = int(lines[0].split(" ", 2)[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                self._length = int(value.strip())
            elif name == "transfer-encoding" and "chunked" in value.lower():
                self._chunked = True

    def _finish(self, now: float) -> None:
        done = self._done
        if done is None or done.done():
            return
        first = self._first_event_at if self._first_event_at is not None else now
        body = bytes(self._buffer[self._body_start :])
        done.set_result((self._status, first - self._sent_at, now - self._sent_at, body))

    async def send(self, request: bytes) -> tuple[int, float, float, bytes]:
        assert self.transport is not None
        self._reset()
        self._done = asyncio.get_running_loop().create_future()
        self._sent_at = time.perf_counter()
        self.transport.write(request)
        return await self._done


def build_request(url: str, model: str, key: str) -> tuple[str, int, bytes]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SystemExit(f"need an http:// URL, got {url!r}")
    body = json.dumps(
        {
            "model": model,
            "messages": [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "What is a gateway benchmark for?"},
            ],
            "max_tokens": 24,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        separators=(",", ":"),
    ).encode()
    port = parts.port or 80
    lines = [
        f"POST {parts.path or '/'} HTTP/1.1",
        f"Host: {parts.hostname}:{port}",
        "Content-Type: application/json",
        "Accept: text/event-stream",
        f"Content-Length: {len(body)}",
    ]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return parts.hostname, port, head + body


async def one_connection(
    host: str,
    port: int,
    request: bytes,
    deadline: float,
    timings: list[tuple[float, float]],
    errors: list[str],
) -> None:
    loop = asyncio.get_running_loop()
    exchange: StreamingExchange | None = None
    while time.perf_counter() < deadline:
        try:
            if exchange is None or exchange.closed.done():
                _, exchange = await loop.create_connection(StreamingExchange, host, port)
            timeout = max(deadline - time.perf_counter(), 0.0) + 30.0
            status, ttft, total, body = await asyncio.wait_for(exchange.send(request), timeout)
        except (OSError, ConnectionError, TimeoutError, ValueError, IndexError) as exc:
            errors.append(repr(exc)[:120])
            if exchange is not None and exchange.transport is not None:
                exchange.transport.close()
            exchange = None
            await asyncio.sleep(0.05)
            continue
        if status != 200 or b"data: [DONE]" not in body or b'"usage"' not in body:
            errors.append(f"HTTP {status}: {body[:160]!r}")
        else:
            timings.append((ttft, total))
    if exchange is not None and exchange.transport is not None:
        exchange.transport.close()


async def measure(url: str, model: str, key: str, concurrency: int, seconds: float) -> str:
    host, port, request = build_request(url, model, key)
    timings: list[tuple[float, float]] = []
    errors: list[str] = []
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(one_connection(host, port, request, deadline, timings, errors) for _ in range(concurrency))
    )
    elapsed = time.perf_counter() - started
    ttfts = sorted(t * 1000 for t, _ in timings)
    totals = sorted(t * 1000 for _, t in timings)
    if errors:
        print(f"ttft.py: {len(errors)} errors, first: {errors[:3]}", file=sys.stderr)
    return (
        f"ttft_result requests={len(timings)} seconds={elapsed:.3f} rps={len(timings) / elapsed:.2f} "
        f"ttft_p50_ms={percentile(ttfts, 0.5):.4f} ttft_p90_ms={percentile(ttfts, 0.9):.4f} "
        f"ttft_p99_ms={percentile(ttfts, 0.99):.4f} total_p50_ms={percentile(totals, 0.5):.4f} "
        f"total_p99_ms={percentile(totals, 0.99):.4f} errors={len(errors)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "url", help="full chat.completions URL, e.g. http://127.0.0.1:19000/v1/chat/completions"
    )
    parser.add_argument("--model", default="fake-model")
    parser.add_argument("--key", default="", help="Bearer key (empty: no Authorization header)")
    parser.add_argument("-c", "--concurrency", type=int, default=1, help="connections in flight (default 1)")
    parser.add_argument("-d", "--seconds", type=float, default=10.0, help="how long to run (default 10)")
    args = parser.parse_args()
    if args.concurrency < 1 or not 0 < args.seconds <= 3600:
        parser.error("need concurrency >= 1 and 0 < seconds <= 3600")
    print(asyncio.run(measure(args.url, args.model, args.key, args.concurrency, args.seconds)))


if __name__ == "__main__":
    main()
