"""The batched background trace writer: the request path enqueues, never awaits the database.

Records go to a bounded in-memory queue. A task on the event loop takes batches and inserts
them in a worker thread, at most every ``flush_seconds`` or as soon as a full batch waits.
When the database is unreachable the batch goes back to the queue and is retried with
back-off; a full queue drops new records and counts them (``llmops_traces_dropped_total``).
A batch the database refuses is retried row by row, with NUL characters replaced, so one bad
row cannot hold back the others. :meth:`drain` writes everything left (SIGTERM path).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable
from typing import Any, Literal

from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from llmops.store.traces import TraceRepository
from llmops.tracing.metrics import GatewayMetrics
from llmops.tracing.record import TraceRecord, without_nul

log = logging.getLogger("llmops.tracing")

_MAX_BACKOFF_SECONDS = 5.0
_DRAIN_ATTEMPTS = 5
_BATCHES_PER_TRIP = 8
# a row the database or the JSON encoder refuses (TypeError/ValueError: a value that cannot be
# serialised; psycopg raises those unwrapped): counted as invalid, never fatal to the writer task
_REFUSED = (SQLAlchemyError, TypeError, ValueError)


class TraceWriter:
    def __init__(
        self,
        repository: TraceRepository,
        metrics: GatewayMetrics,
        *,
        max_queue: int,
        batch_size: int,
        flush_seconds: float,
        overflow: Literal["drop", "block"] = "drop",
    ) -> None:
        self._repository = repository
        self._overflow = overflow
        self._room: asyncio.Event | None = None
        self._metrics = metrics
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._queue: deque[TraceRecord] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._closing = False

    @property
    def depth(self) -> int:
        return len(self._queue)

    def admission(self) -> Awaitable[None] | None:
        """With overflow=block and a full queue: what a new request must await before it starts."""
        if self._overflow != "block" or len(self._queue) < self._max_queue:
            return None
        return self._wait_for_room()

    async def _wait_for_room(self) -> None:
        while len(self._queue) >= self._max_queue and not self._closing:
            if self._room is None:
                self._room = asyncio.Event()
            await self._room.wait()

    def _made_room(self) -> None:
        if self._room is not None and len(self._queue) < self._max_queue:
            self._room.set()
            self._room = None

    def submit(self, record: TraceRecord) -> None:
        """Enqueue without waiting; on a full queue the record is dropped and counted."""
        if len(self._queue) >= self._max_queue and self._overflow == "drop":
            self._metrics.traces_dropped.inc(("queue_full",))
            if self._metrics.traces_dropped.value(("queue_full",)) % 1000 == 1:
                log.error("trace queue full (%d): dropping traces", self._max_queue)
            return
        self._queue.append(record)
        if len(self._queue) >= self._batch_size and self._wakeup is not None:
            self._wakeup.set()

    def start(self) -> None:
        self._wakeup = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="llmops-trace-writer")

    async def _run(self) -> None:
        assert self._wakeup is not None
        while not self._closing:
            if len(self._queue) < self._batch_size:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self._flush_seconds)
                except TimeoutError:
                    pass
            self._wakeup.clear()
            while self._queue and not self._closing:
                if not await self._write_next_batch():
                    await asyncio.sleep(min(_MAX_BACKOFF_SECONDS, 0.1 * 2**self._failures))
                    break

    async def _write_next_batch(self) -> bool:
        """Write what is queued, up to a few batches per trip to the worker thread.

        Each batch is its own short transaction (short GIL holds keep the request path's tail
        latency low); several per trip keep the writer up with a busy event loop. False, with the
        unwritten records put back, when the database cannot be reached.
        """
        count = min(self._batch_size * _BATCHES_PER_TRIP, len(self._queue))
        records = [self._queue.popleft() for _ in range(count)]
        written, invalid, unwritten, failure = await asyncio.to_thread(self._write_trip, records)
        self._made_room()
        self._metrics.traces_written.inc(amount=written)
        if invalid:
            self._metrics.traces_dropped.inc(("invalid",), invalid)
        if failure is None:
            self._failures = 0
            return True
        self._queue.extendleft(reversed(unwritten))
        self._failures = min(self._failures + 1, 10)
        log.warning("cannot write %d traces, will retry: %s", len(unwritten), str(failure).splitlines()[0])
        return False

    def _write_trip(
        self, records: list[TraceRecord]
    ) -> tuple[int, int, list[TraceRecord], OperationalError | InterfaceError | None]:
        written = invalid = 0
        for start in range(0, len(records), self._batch_size):
            batch = records[start : start + self._batch_size]
            try:
                batch_written, batch_invalid = self._write(batch)
            except (OperationalError, InterfaceError) as exc:
                return written, invalid, records[start:], exc
            written += batch_written
            invalid += batch_invalid
        return written, invalid, [], None

    def _write(self, batch: list[TraceRecord]) -> tuple[int, int]:
        rows = [record.to_row() for record in batch]
        try:
            self._repository.insert_many(rows)
            return len(rows), 0
        except (OperationalError, InterfaceError):
            raise
        except _REFUSED:
            log.warning("a batch of %d traces was refused; writing them one by one", len(rows))
        return self._write_one_by_one(rows)

    def _write_one_by_one(self, rows: list[dict[str, Any]]) -> tuple[int, int]:
        written = invalid = 0
        for row in rows:
            try:
                self._repository.insert_many([{key: without_nul(value) for key, value in row.items()}])
                written += 1
            except (OperationalError, InterfaceError):
                raise
            except _REFUSED as exc:
                invalid += 1
                log.error("trace %s could not be stored: %s", row.get("id"), str(exc).splitlines()[0])
        return written, invalid

    async def drain(self) -> None:
        """Stop the background task and write every queued record (called on shutdown)."""
        self._closing = True
        if self._room is not None:
            self._room.set()
        if self._task is not None and self._wakeup is not None:
            self._wakeup.set()
            await self._task
            self._task = None
        attempts = 0
        while self._queue and attempts < _DRAIN_ATTEMPTS:
            if not await self._write_next_batch():
                attempts += 1
                await asyncio.sleep(0.2 * attempts)
        if self._queue:
            lost = len(self._queue)
            self._queue.clear()
            self._metrics.traces_dropped.inc(("shutdown",), lost)
            log.error("database unreachable at shutdown: %d traces could not be written", lost)
