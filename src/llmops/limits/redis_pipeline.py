"""Pre-encoded Redis commands sent in pipelines, one round trip at a time.

Commands arrive as RESP bytes (most of each is encoded once per caller and reused, see
:func:`bulk`), so the request path never runs redis-py's per-argument encoder. Whatever is
submitted while a round trip is under way goes out together in the next one: at one request in
flight that is one command per round trip, under load many, and the cost per command falls.
A script Redis no longer knows (it restarted) is loaded again and its commands are sent again.

Errors: each command's callback gets its reply or the exception that failed it (a
``redis.exceptions.ResponseError`` for that command alone; ``RedisError``/``OSError`` for a batch
whose connection failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from llmops.gateway.cache.redis_store import RedisUnavailable

Callback = Callable[[Any], None]
LINGER_SECONDS = 0.002  # how long a settlement waits for an admission to share its round trip

log = logging.getLogger("llmops.limits")


def bulk(value: bytes | str | int) -> bytes:
    """One RESP bulk string."""
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def command(parts: Iterable[bytes | str | int]) -> bytes:
    """A whole RESP command (an array of bulk strings)."""
    encoded = [bulk(part) for part in parts]
    return b"*%d\r\n" % len(encoded) + b"".join(encoded)


class Pipeline:
    """One batch in flight at a time, on one connection of the client's pool kept for it.

    A caller that finds nothing in flight sends its command itself (no hand-over to another task at
    one request in flight); commands that arrive meanwhile are sent by a background task, all
    together. Commands nobody waits for (settlements) go out with the next batch, or after
    :data:`LINGER_SECONDS` when no other command comes.
    """

    def __init__(self, client: Redis, scripts: Iterable[str]) -> None:
        self._client = client
        self._scripts = tuple(scripts)
        self._queue: list[tuple[bytes, Callback]] = []
        self._busy = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._connection: Any = None
        self._loaded = False

    def submit(self, packed: bytes, callback: Callback) -> None:
        """Queue a command whose reply only ``callback`` needs; it goes out soon, not at once."""
        self._queue.append((packed, callback))
        self._idle.clear()
        if not self._busy and self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(LINGER_SECONDS, self._kick)

    async def call(self, packed: bytes) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        def resolve(reply: Any) -> None:
            if future.done():
                return
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)

        self._queue.append((packed, resolve))
        self._idle.clear()
        if not self._busy:  # nothing in flight: send this batch from the caller's own task
            await self._drain_once()
            if self._queue:
                self._kick()
        return await future

    def _kick(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if not self._busy and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run(), name="llmops-limits-redis")

    async def drained(self) -> None:
        if self._queue:
            self._kick()
        await self._idle.wait()

    async def _run(self) -> None:
        while self._queue and not self._busy:
            await self._drain_once()

    async def _drain_once(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        batch, self._queue = self._queue, []
        self._busy = True
        try:
            await self._send(batch)
        finally:
            self._busy = False
            if not self._queue:
                self._idle.set()

    async def _send(self, batch: list[tuple[bytes, Callback]]) -> None:
        replies: list[Any]
        try:
            if not self._loaded:
                await self._load()
            replies = await self._execute([packed for packed, _ in batch])
            again = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
            if again:
                await self._load()
                for i, reply in zip(again, await self._execute([batch[i][0] for i in again]), strict=True):
                    replies[i] = reply
        except (RedisError, OSError) as exc:
            self._loaded = False
            replies = [exc] * len(batch)
        except BaseException:  # cancelled mid-batch: its commands failed, the connection was dropped
            for _, callback in batch:
                callback(RedisUnavailable("the batch was cancelled"))
            raise
        for (_, callback), reply in zip(batch, replies, strict=True):
            try:
                callback(reply)
            except Exception:  # boundary: one caller's bug must not strand the others' replies
                log.exception("limits: a Redis reply could not be handled")

    async def _execute(self, packed: list[bytes]) -> list[Any]:
        if self._connection is None:
            self._connection = await self._client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        connection = self._connection
        try:
            await connection.send_packed_command(b"".join(packed), check_health=False)
            replies: list[Any] = []
            for _ in packed:
                try:
                    replies.append(await connection.read_response())
                except ResponseError as exc:  # this command's error; the connection is fine
                    replies.append(exc)
            return replies
        except BaseException:
            await self._drop_connection()
            raise

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect()
            await self._client.connection_pool.release(connection)

    async def _load(self) -> None:
        for text in self._scripts:
            await self._client.script_load(text)
        self._loaded = True

    async def aclose(self) -> None:
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # the cancellation asked for just above
                await self._task
        stranded, self._queue = self._queue, []
        for _, callback in stranded:
            callback(RedisUnavailable("the limiter stopped"))
        await self._drop_connection()
        self._idle.set()
