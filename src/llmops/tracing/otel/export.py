"""OTLP/HTTP export: every stored trace as a span with the GenAI semantic conventions, in batches,
to the collector at ``otlp_endpoint`` (protobuf or JSON), off the request path.

The trace writer hands over the rows it has just stored (:meth:`OtlpExporter.offer`, on the event
loop, O(1) a row); a task of the exporter sends them ``otlp_batch_size`` at a time, or every
``otlp_flush_seconds``. Rows are turned into spans and encoded in a worker thread.

- **Queue full** (``otlp_queue_size``): new rows are dropped and counted,
  ``llmops_otlp_spans_dropped_total{reason="queue_full"}``.
- **Collector down or busy** (connection error, timeout, 429, 502, 503, 504): the batch is retried
  with back-off (``Retry-After`` honoured up to 30 s), 5 tries, then dropped (``reason="failed"``).
- **Refused** (another 4xx/5xx, or spans rejected in a ``partial_success``): ``reason="rejected"``.
- **Shutdown** (:meth:`close`): what is queued is sent once more; what cannot be is ``reason="shutdown"``.

Sent spans are counted in ``llmops_otlp_spans_exported_total``. A trace made from an ingested span
(endpoint ``otlp``) is not exported again: it came from an OpenTelemetry pipeline already.
A gateway trace whose request carried a ``traceparent`` is exported as a child of the caller's span.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import orjson

from llmops import __version__
from llmops.store.trace_rows import TRACE_COLUMNS, TraceRow
from llmops.tracing.metrics import Counter, Gauge, MetricsRegistry
from llmops.tracing.otel.conventions import span_attributes, span_name
from llmops.tracing.otel.traceparent import gateway_span_id

if TYPE_CHECKING:
    import aiohttp

    from llmops.tracing.otel.wire import SpanData

log = logging.getLogger("llmops.tracing")

Protocol = Literal["http/protobuf", "http/json"]
AddressOf = Callable[[str, str | None], tuple[str, int | None] | None]
"""(model, deployment) -> (host, port) of the upstream that answered, when known."""
DROP_REASONS = ("queue_full", "failed", "rejected", "shutdown", "invalid")
_ATTEMPTS = 5
_MAX_RETRY_AFTER = 30.0
_RETRYABLE = frozenset({429, 502, 503, 504})
_ENDPOINT = TRACE_COLUMNS.index("endpoint")
_MODEL = TRACE_COLUMNS.index("requested_model")
_DEPLOYMENT = TRACE_COLUMNS.index("deployment")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class OtlpMetrics:
    """The exporter's counters and queue gauge; registered whether or not export is on, so
    dashboards and alert rules find them (the queue reads 0 until an exporter sets ``depth``)."""

    def __init__(self, registry: MetricsRegistry) -> None:
        self.exported = Counter("llmops_otlp_spans_exported_total", "Spans exported to the OTLP endpoint.")
        self.dropped = Counter(
            "llmops_otlp_spans_dropped_total",
            "Spans not exported, by reason (queue_full, failed, rejected, shutdown, invalid).",
            ("reason",),
        )
        self.depth: Callable[[], int] = lambda: 0
        self.exported.inc(amount=0)
        for reason in DROP_REASONS:
            self.dropped.inc((reason,), 0)
        registry.add(self.exported)
        registry.add(self.dropped)
        registry.add(Gauge("llmops_otlp_queue_depth", "Spans waiting to be exported.", lambda: self.depth()))


def traces_url(endpoint: str) -> str:
    """``endpoint`` as the traces URL: one without a path gets ``/v1/traces`` (as OTel SDKs do)."""
    parts = urlsplit(endpoint)
    if parts.path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


class OtlpExporter:
    def __init__(
        self,
        endpoint: str,
        metrics: OtlpMetrics,
        *,
        protocol: Protocol = "http/protobuf",
        headers: Mapping[str, str] | None = None,
        batch_size: int = 512,
        flush_seconds: float = 5.0,
        queue_size: int = 20_000,
        timeout_seconds: float = 10.0,
        service_name: str = "llmops",
        content: bool = False,
        address_of: AddressOf | None = None,
    ) -> None:
        self.url = traces_url(endpoint)
        self._metrics = metrics
        self._json = protocol == "http/json"
        self._headers = {
            **dict(headers or {}),
            "Content-Type": "application/json" if self._json else "application/x-protobuf",
        }
        self._batch_size = batch_size
        self._flush_seconds = flush_seconds
        self._queue_size = queue_size
        self._timeout = timeout_seconds
        self._resource = {"service.name": service_name, "service.version": __version__}
        self._content = content
        self._address_of = address_of
        self._queue: deque[TraceRow] = deque()
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llmops-otlp-export")
        self.retry_base_seconds = 0.5  # the first back-off; doubled each try
        metrics.depth = lambda: len(self._queue)

    @property
    def depth(self) -> int:
        return len(self._queue)

    # ---- the writer's side (event loop) ---------------------------------------------------------

    def offer(self, rows: Sequence[TraceRow]) -> None:
        """Queue stored rows for export (not those of ingested spans); drop and count when full."""
        queue = self._queue
        dropped = 0
        for row in rows:
            if row[_ENDPOINT] == "otlp":
                continue
            if len(queue) >= self._queue_size or self._closing:
                dropped += 1
                continue
            queue.append(row)
        if dropped:
            self._drop("queue_full" if not self._closing else "shutdown", dropped)
        if len(queue) >= self._batch_size:
            self._wakeup.set()

    def _drop(self, reason: str, count: int) -> None:
        before = self._metrics.dropped.value((reason,))
        self._metrics.dropped.inc((reason,), count)
        if before == 0 or before // 1000 != (before + count) // 1000:  # the first, then one per thousand
            log.error("OTLP export to %s: %d spans dropped (%s)", self.url, count, reason.replace("_", " "))

    # ---- the background task --------------------------------------------------------------------

    def start(self) -> None:
        import aiohttp

        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        self._task = asyncio.create_task(self._run(), name="llmops-otlp-export")

    async def _run(self) -> None:
        while not self._closing:
            if len(self._queue) < self._batch_size:
                with contextlib.suppress(TimeoutError):  # the flush interval is up
                    await asyncio.wait_for(self._wakeup.wait(), self._flush_seconds)
            self._wakeup.clear()
            while self._queue and not self._closing:
                await self._send(self._take(), final=False)
                if len(self._queue) < self._batch_size:
                    break

    def _take(self) -> list[TraceRow]:
        queue = self._queue
        return [queue.popleft() for _ in range(min(len(queue), self._batch_size))]

    async def _send(self, rows: list[TraceRow], *, final: bool) -> bool:
        """Send one batch (retried unless ``final``); False when the endpoint could not be reached."""
        addresses = self._addresses(rows)
        loop = asyncio.get_running_loop()
        try:
            body = await loop.run_in_executor(self._executor, self._encode, rows, addresses)
        except Exception as exc:  # boundary: a row we cannot encode is a bug; count it, keep going
            log.exception("cannot encode %d spans for OTLP export", len(rows), exc_info=exc)
            self._drop("invalid", len(rows))
            return True
        attempts = 1 if final else _ATTEMPTS
        for attempt in range(attempts):
            outcome, wait = await self._post(body, len(rows))
            if outcome is not None:
                if outcome:
                    self._drop(outcome, len(rows))
                return True
            if attempt + 1 == attempts or self._closing:
                break
            pause = wait if wait is not None else self.retry_base_seconds * 2**attempt
            with contextlib.suppress(TimeoutError):  # back off, unless the exporter is closing
                await asyncio.wait_for(self._stopping.wait(), pause)
        self._drop("shutdown" if self._closing else "failed", len(rows))
        return False

    async def _post(self, body: bytes, count: int) -> tuple[str | None, float | None]:
        """("", None) sent, (reason, None) dropped for good, (None, wait) worth a retry."""
        import aiohttp

        from llmops.tracing.otel import wire

        assert self._session is not None
        try:
            async with self._session.post(self.url, data=body, headers=self._headers) as response:
                answer = await response.read()
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("OTLP export to %s failed, will retry: %s", self.url, str(exc) or type(exc).__name__)
            return None, None
        if 200 <= status < 300:
            rejected, message = wire.decode_response(answer, self._json)
            rejected = min(max(rejected, 0), count)
            self._metrics.exported.inc(amount=count - rejected)
            if rejected:
                log.warning("the OTLP endpoint rejected %d spans: %s", rejected, message)
                self._drop("rejected", rejected)
            return "", None
        if status in _RETRYABLE:
            return None, _retry_after(retry_after)
        log.error(
            "the OTLP endpoint %s answered %d: %s", self.url, status, answer[:200].decode("utf-8", "replace")
        )
        return "rejected", None

    # ---- in the exporter's thread ---------------------------------------------------------------

    def _addresses(self, rows: list[TraceRow]) -> dict[tuple[str, str | None], tuple[str, int | None] | None]:
        """Each (model, deployment)'s upstream address, looked up on the event loop (the catalog's)."""
        if self._address_of is None:
            return {}
        found: dict[tuple[str, str | None], tuple[str, int | None] | None] = {}
        for row in rows:
            key = (row[_MODEL], row[_DEPLOYMENT])
            if key not in found:
                found[key] = self._address_of(*key)
        return found

    def _encode(
        self, rows: list[TraceRow], addresses: Mapping[tuple[str, str | None], tuple[str, int | None] | None]
    ) -> bytes:
        from llmops.tracing.otel import wire

        spans = [span_of(row, addresses, content=self._content) for row in rows]
        return wire.encode_request(spans, self._resource, ("llmops", __version__), self._json)

    # ---- shutdown -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Send what is queued (one try each batch), then stop; the rest is counted as dropped.

        The first batch that cannot be delivered ends it: a collector that hangs costs shutdown one
        ``otlp_timeout_seconds``, not one per queued batch.
        """
        if self._closing:
            return
        self._closing = True
        self._wakeup.set()
        self._stopping.set()
        if self._task is not None:
            await self._task
        try:
            while self._queue and self._session is not None:
                if not await self._send(self._take(), final=True):
                    break
        finally:
            if self._queue:
                self._drop("shutdown", len(self._queue))
                self._queue.clear()
            if self._session is not None:
                await self._session.close()
            self._executor.shutdown(wait=False)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), _MAX_RETRY_AFTER)
    except ValueError:
        return None


def span_of(
    row: TraceRow,
    addresses: Mapping[tuple[str, str | None], tuple[str, int | None] | None] | None = None,
    *,
    content: bool = False,
) -> SpanData:
    """The OTLP span of a stored trace row (``TRACE_COLUMNS`` order, JSON as text)."""
    from llmops.tracing.otel import wire

    trace: dict[str, Any] = dict(zip(TRACE_COLUMNS, row, strict=True))
    request = _request(trace["request"])
    address = (addresses or {}).get((trace["requested_model"], trace["deployment"]))
    failed = trace["status_code"] >= 400
    return wire.SpanData(
        trace_id=trace["otel_trace_id"] or trace["id"],
        span_id=trace["otel_span_id"] or gateway_span_id(trace["id"]),
        parent_span_id=trace["otel_parent_span_id"],
        name=span_name(trace["endpoint"], trace["requested_model"]),
        start_ns=unix_nanos(trace["started_at"]),
        end_ns=unix_nanos(trace["ended_at"]),
        attributes=span_attributes(trace, request, address, content=content),
        status_code=wire.STATUS_ERROR if failed else wire.STATUS_UNSET,
        status_message=(trace["error_message"] or "") if failed else "",
    )


def _request(text: Any) -> dict[str, Any] | None:
    if isinstance(text, dict):
        return text
    if not isinstance(text, str):
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def unix_nanos(value: str | datetime) -> int:
    """A row's time (the writer's UTC text, or a datetime) in unix nanoseconds."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
