"""The batched background trace writer: the request path enqueues, never awaits the database.

:meth:`TraceWriter.submit` turns a finished request's record into a plain row (a tuple of strings
and numbers, JSON already serialised: nothing for the garbage collector to scan, about 1 kB) and
appends it to a bounded in-memory queue. A task on the event loop hands the queued rows, a few
batches per trip, to the writer's own thread, which stores each batch as one statement and one
transaction (:mod:`llmops.store.trace_rows`: a multi-row INSERT on SQLite, COPY on Postgres).

- **Database down, locked or slow**: the rows go back to the front of the queue and are retried with
  back-off (up to 5 s). Nothing is lost while the queue has room.
- **Queue full** (``trace_queue_size`` rows, counting those being written): with ``overflow="drop"``
  new traces are dropped and counted (``llmops_traces_dropped_total{reason="queue_full"}``); with
  ``overflow="block"`` new requests wait in :meth:`admission`, first come first served, until the
  writer makes room (``llmops_trace_backpressure_waits_total`` counts them). A request admitted
  before the queue filled still queues its trace, so the queue may exceed its size by at most the
  requests in flight.
- **A batch the database refuses** is retried row by row with NUL characters replaced, so one bad
  row cannot hold back the others; a row still refused, or one that cannot become a row at all (a
  value JSON cannot hold), is counted with ``reason="invalid"``.
- :meth:`drain` (shutdown) releases waiting requests and writes everything left; what the database
  cannot take by then is counted with ``reason="shutdown"``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from llmops.monitoring.rollups import RollupWriter
from llmops.store.trace_rows import (
    JSON_COLUMNS,
    TRACE_COLUMNS,
    DatabaseUnavailable,
    RowsRefused,
    TraceRow,
    TraceRowSession,
)
from llmops.store.traces import TraceRepository
from llmops.tracing.metrics import GatewayMetrics
from llmops.tracing.record import TraceRecord, row_without_nul

log = logging.getLogger("llmops.tracing")

_MAX_BACKOFF_SECONDS = 5.0
_DRAIN_ATTEMPTS = 5
_BATCHES_PER_TRIP = 8
# what TraceRecord.values() raises for a record that cannot become a row (JSONEncodeError is a
# TypeError; a time out of range is a ValueError, OverflowError or OSError)
_UNENCODABLE = (TypeError, ValueError, OverflowError, OSError)


@dataclass(slots=True)
class _TripResult:
    """What one trip to the writer thread achieved; ``unwritten`` goes back to the queue."""

    written: int = 0
    invalid: int = 0
    stored: list[TraceRow] | None = None  # the rows written (kept only when rollups follow them)
    unwritten: list[TraceRow] | None = None
    failure: str | None = None


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
        rollups: RollupWriter | None = None,
        on_stored: Callable[[list[TraceRow]], None] | None = None,
    ) -> None:
        self._sink = repository.row_sink(batch_size)
        self._on_stored = on_stored  # called on the event loop with the rows just stored (OTLP export)
        self._rollups = rollups  # dashboards' aggregates, kept in this writer's thread
        self._format_time = self._sink.format_time
        self._metrics = metrics
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._overflow = overflow
        self._queue: deque[TraceRow] = deque()
        # the queue's room: max_queue less the rows on their way to the database (in flight)
        self._limit = max_queue
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmops-trace-writer")
        self._task: asyncio.Task[None] | None = None
        self._failures = 0
        self._closing = False
        self._closed = False
        self._open = True  # admission() lets requests through without waiting

    @property
    def depth(self) -> int:
        """Traces not yet stored: queued, and being written right now."""
        return len(self._queue) + self._in_flight

    @property
    def waiting(self) -> int:
        """Requests waiting for room in the queue (overflow=block)."""
        return len(self._waiters)

    def pending(self) -> list[dict[str, Any]]:
        """The queued traces as column -> value, JSON columns decoded (for inspection and tests)."""
        return [
            {
                name: orjson.loads(value) if name in JSON_COLUMNS and value is not None else value
                for name, value in zip(TRACE_COLUMNS, row, strict=True)
            }
            for row in self._queue
        ]

    # ---- the request path: both O(1); the fast path allocates nothing ----------------------------

    def admission(self) -> Awaitable[None] | None:
        """None when a new request may start now; else (overflow=block, queue full) what it must await.

        The answer is a flag kept up to date wherever the queue or its waiters change, so the
        usual call reads one attribute and allocates nothing.
        """
        if self._open:
            return None
        return self._wait_for_room()

    def _update_open(self) -> None:
        has_room = len(self._queue) < self._limit and not self._waiters
        self._open = self._overflow == "drop" or self._closing or has_room

    def submit(self, record: TraceRecord) -> bool:
        """Queue the record's row without waiting; with overflow=drop and a full queue, drop and count
        (False: dropped)."""
        queue = self._queue
        if len(queue) >= self._limit and self._overflow == "drop":
            self._drop("queue_full", 1)
            return False
        if self._closed:
            self._drop("shutdown", 1)
            return False
        try:
            row = record.values(self._format_time)
        except _UNENCODABLE as exc:  # instrumentation boundary: never the request's problem
            self._metrics.traces_dropped.inc(("invalid",))
            log.error("trace %s cannot be stored: %s", record.id, _one_line(exc))
            return False
        queue.append(row)
        depth = len(queue)
        if depth >= self._batch_size:
            self._wakeup.set()
        if depth >= self._limit and self._open:
            self._update_open()
        return True

    def _drop(self, reason: str, count: int) -> None:
        dropped = self._metrics.traces_dropped
        before = dropped.value((reason,))
        dropped.inc((reason,), count)
        if before % 1000 == 0:  # the first drop, then one line per thousand
            log.error("trace queue %s (%d): dropping traces", reason.replace("_", " "), self._max_queue)

    async def _wait_for_room(self) -> None:
        self._metrics.trace_backpressure_waits.inc()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._open = False
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.cancelled():
                self._waiters.remove(waiter)
            self._made_room()  # a woken request that was cancelled hands its place to the next one
            raise

    def _made_room(self) -> None:
        """Wake waiting requests, oldest first, as many as the queue has room for (all when closing)."""
        waiters = self._waiters
        room = self._limit - len(self._queue)
        while waiters and (room > 0 or self._closing):
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                room -= 1
        self._update_open()

    # ---- the background task ---------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="llmops-trace-writer")

    async def _run(self) -> None:
        while not self._closing:
            if len(self._queue) < self._batch_size:
                await self._pause(self._wakeup, self._flush_seconds)
            self._wakeup.clear()
            if self._queue and not self._closing and not await self._trip(whole_queue=False):
                await self._pause(self._stopping, min(_MAX_BACKOFF_SECONDS, 0.1 * 2**self._failures))
            elif not self._queue and self._rollups is not None and self._rollups.pending:
                await self._idle_rollups(self._rollups)

    @staticmethod
    async def _pause(event: asyncio.Event, seconds: float) -> None:
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            pass

    async def _trip(self, *, whole_queue: bool) -> bool:
        """Write up to a few batches in the writer thread. False when the database could not be
        reached: the unwritten rows are back at the front of the queue."""
        queue, batch = self._queue, self._batch_size
        count = min(len(queue), batch * _BATCHES_PER_TRIP)
        if count > batch and not whole_queue:
            count -= count % batch  # full batches: one statement each; the rest waits for more
        rows = [queue.popleft() for _ in range(count)]
        self._in_flight = count
        self._limit = self._max_queue - count
        try:
            loop = asyncio.get_running_loop()
            result = await loop.run_in_executor(self._executor, self._write_rows, rows)
        except Exception as exc:  # a bug, not the database: keep the rows, log, retry later
            log.exception("the trace writer failed", exc_info=exc)
            result = _TripResult(unwritten=rows, failure=_one_line(exc))
        finally:
            self._in_flight = 0
            self._limit = self._max_queue
        if result.unwritten:
            queue.extendleft(reversed(result.unwritten))
        if self._on_stored is not None and result.stored:
            try:
                self._on_stored(result.stored)
            except Exception as exc:  # boundary: the traces are stored whatever their export does
                log.exception("handing stored traces on failed", exc_info=exc)
        self._metrics.traces_written.inc(amount=result.written)
        if result.invalid:
            self._metrics.traces_dropped.inc(("invalid",), result.invalid)
        self._made_room()
        if result.failure is None:
            self._failures = 0
            return True
        self._failures = min(self._failures + 1, 10)
        log.warning("cannot write %d traces, will retry: %s", len(result.unwritten or ()), result.failure)
        return False

    # ---- the writer thread -----------------------------------------------------------------------

    def _write_rows(self, rows: list[TraceRow]) -> _TripResult:
        """Rows in as few statements as the backend likes (SQLite: one per batch; Postgres: one COPY
        for the trip). A refused statement is retried batch by batch, then row by row."""
        keep = self._rollups is not None or self._on_stored is not None
        result = _TripResult(stored=[] if keep else None)
        unit = self._sink.rows_per_statement or len(rows)
        position = 0
        try:
            with self._sink.session() as session:
                while position < len(rows):
                    chunk = rows[position : position + unit]
                    if self._write_chunk(session, chunk, result):
                        position += len(chunk)
                        continue
                    for start in range(0, len(chunk), self._batch_size):
                        batch = chunk[start : start + self._batch_size]
                        if len(batch) == len(chunk) or not self._write_chunk(session, batch, result):
                            for row in batch:
                                self._write_one(session, row, result)
                                position += 1
                        else:
                            position += len(batch)
        except DatabaseUnavailable as exc:
            result.unwritten = rows[position:]
            result.failure = str(exc)
        if self._rollups is not None and result.stored:
            self._roll_up(self._rollups, result.stored)
        return result

    @staticmethod
    def _roll_up(rollups: RollupWriter, stored: list[TraceRow]) -> None:
        """Add the stored rows to the rollups and write them; a failure to write is retried with the
        next trip (the totals stay in memory), and never costs a trace."""
        rollups.add(stored)
        try:
            rollups.flush()
        except Exception as exc:  # boundary: the traces are stored; the rollups catch up next trip
            log.warning("cannot write the trace rollups yet: %s", _one_line(exc))

    @staticmethod
    def _write_chunk(session: TraceRowSession, rows: list[TraceRow], result: _TripResult) -> bool:
        try:
            session.insert(rows)
        except RowsRefused as exc:
            log.warning("%d traces refused (%s); trying them in smaller parts", len(rows), exc)
            return False
        result.written += len(rows)
        if result.stored is not None:
            result.stored.extend(rows)
        return True

    @staticmethod
    def _write_one(session: TraceRowSession, row: TraceRow, result: _TripResult) -> None:
        try:
            session.insert((row_without_nul(row),))
        except RowsRefused as exc:
            result.invalid += 1
            log.error("trace %s could not be stored: %s", row[0], exc)
        else:
            result.written += 1
            if result.stored is not None:
                result.stored.append(row)

    # ---- shutdown --------------------------------------------------------------------------------

    async def _idle_rollups(self, rollups: RollupWriter) -> None:
        """No traces waiting: write the totals the last trips left (once their interval is up)."""
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, rollups.flush)
        except Exception as exc:  # boundary: retried at the next pause
            log.warning("cannot write the trace rollups yet: %s", _one_line(exc))

    async def _final_rollups(self, rollups: RollupWriter) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, lambda: rollups.flush(force=True)
            )
        except Exception as exc:  # boundary: the traces are stored; `llmops stats rebuild` can redo them
            log.error("could not write the last trace rollups: %s", _one_line(exc))

    async def drain(self) -> None:
        """Stop the background task, release waiting requests and write every queued row (shutdown)."""
        if self._closed:
            return
        self._closing = True
        self._made_room()
        self._stopping.set()
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        attempts = 0
        while self._queue and attempts < _DRAIN_ATTEMPTS:
            if not await self._trip(whole_queue=True):
                attempts += 1
                await asyncio.sleep(0.2 * attempts)
        self._closed = True
        if self._rollups is not None:  # what the last trips added, whatever the flush interval
            await self._final_rollups(self._rollups)
        if self._queue:
            lost = len(self._queue)
            self._queue.clear()
            self._metrics.traces_dropped.inc(("shutdown",), lost)
            log.error("database unreachable at shutdown: %d traces could not be written", lost)
        self._executor.shutdown(wait=False)  # idle by now: its thread ends by itself


def _one_line(exc: BaseException) -> str:
    message = str(exc).strip()
    return message.splitlines()[0] if message else type(exc).__name__
