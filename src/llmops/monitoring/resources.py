"""Resource metrics in ``/metrics``: the process, the event loop, upstream connections, the embedded
model and, when NVML is there, the GPUs.

=============================================  ============================================================
``llmops_process_cpu_seconds_total``           user + system CPU time of the process (counter)
``llmops_process_resident_memory_bytes``       resident set size (Linux: ``/proc/self/statm``)
``llmops_process_open_fds`` / ``_max_fds``     open file descriptors (Linux) and their soft limit
``llmops_event_loop_lag_seconds``              how late the last lag probe woke (gauge)
``llmops_event_loop_lag_distribution_seconds`` every probe's lag (histogram)
``llmops_upstream_connections``                pooled connections of ``openai`` models per upstream
                                               (``scheme://host:port``) and state (``idle``, ``active``)
``llmops_local_model_tokens_total``            tokens the embedded chat model generated, per GGUF file
``llmops_local_model_busy_seconds_total``      seconds it spent generating (prompt processing included)
``llmops_gpu_utilization_ratio``               GPU busy share over NVML's last sample period, 0 to 1
``llmops_gpu_memory_used_bytes`` / ``_total``  GPU memory, per GPU (``gpu`` index and ``name``)
=============================================  ============================================================

Everything is read when Prometheus scrapes, except the event-loop lag: a task sleeps 0.25 s over and
over and records how late it woke (:class:`LoopLagProbe`, started and stopped with the server). The
/v1 path is not touched. GPU metrics exist only when ``pynvml`` (package ``nvidia-ml-py``) imports and
NVML starts with at least one GPU; otherwise they are left out of ``/metrics``. A reading that fails
(an NVML error, a ``/proc`` file another OS lacks) leaves its series out of that scrape, with a
warning at most once a minute: a scrape never fails because of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from llmops.throttled_log import ThrottledLog
from llmops.tracing.metrics import (
    CounterFamily,
    Gauge,
    GaugeFamily,
    Histogram,
    LabelValues,
    MetricsRegistry,
)

if TYPE_CHECKING:
    import aiohttp

    from llmops.providers._llama_engine import LlamaEngine
    from llmops.providers.base import Provider

log = logging.getLogger("llmops.monitoring")

LAG_INTERVAL_SECONDS = 0.25
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
Samples = Iterable[tuple[LabelValues, float]]


@runtime_checkable
class PooledProvider(Protocol):
    """A provider whose HTTP connection pool can be counted (the ``openai`` provider)."""

    @property
    def connector(self) -> aiohttp.BaseConnector | None: ...


@runtime_checkable
class EmbeddedChatProvider(Protocol):
    """A provider running a llama.cpp model in-process (the ``local`` provider)."""

    @property
    def llama_engine(self) -> LlamaEngine | None: ...


# -- the process --------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    times = os.times()
    return times.user + times.system


def resident_bytes() -> int | None:
    """Resident set size, from ``/proc/self/statm`` (None where there is no such file)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def open_fds() -> int | None:
    """Open file descriptors, from ``/proc/self/fd`` (None where there is no such folder)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def max_fds() -> int | None:
    """The soft limit on open file descriptors (None where unknown or unlimited)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def _single(read: Callable[[], float | None]) -> Callable[[], Samples]:
    """An unlabelled value that may be unknown: no sample at all rather than a made-up zero."""

    def samples() -> Samples:
        value = read()
        return [] if value is None else [((), float(value))]

    return samples


# -- the event loop ------------------------------------------------------------------------------------


class LoopLagProbe:
    """Sleeps ``interval`` seconds over and over and records how late it woke.

    A late wake-up means something held the event loop (a blocking call, a long computation), so
    every request waited that long too. :attr:`last` is the last lag; each one also goes into
    ``histogram``.
    """

    def __init__(self, histogram: Histogram, interval: float = LAG_INTERVAL_SECONDS) -> None:
        self.histogram = histogram
        self.interval = interval
        self.last = 0.0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start probing on the running loop (again after :meth:`stop`); a second call does nothing."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._probe(), name="llmops-loop-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _probe(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            lag = max(0.0, loop.time() - due)
            self.last = lag
            self.histogram.observe((), lag)


# -- upstream connections and the embedded model -----------------------------------------------------


def _origin(key: Any) -> str:
    """``scheme://host:port`` of an aiohttp connection key."""
    return f"{'https' if key.is_ssl else 'http'}://{key.host}:{key.port}"


def connection_counts(
    connectors: Iterable[aiohttp.BaseConnector], known: Iterable[str] = ()
) -> dict[tuple[str, str], int]:
    """(upstream, state) -> connections: ``idle`` ones kept alive in the pool, ``active`` ones in use.

    Upstreams in ``known`` count zero when no connection to them is left (aiohttp then forgets them).

    aiohttp tells this only through its connectors' pools (``_conns``, ``_acquired_per_host``; the
    latter is kept when the connector has ``limit_per_host``, as the ``openai`` provider's has). A
    connector without them counts nothing.
    """
    counts: dict[tuple[str, str], int] = {}
    for origin in known:
        counts[(origin, "idle")] = counts[(origin, "active")] = 0
    for connector in connectors:
        for state, pools in (
            ("idle", getattr(connector, "_conns", {})),
            ("active", getattr(connector, "_acquired_per_host", {})),
        ):
            for key, connections in list(pools.items()):
                origin = _origin(key)
                counts.setdefault((origin, "idle"), 0)
                counts.setdefault((origin, "active"), 0)
                counts[(origin, state)] += len(connections)
    return counts


# -- GPUs ----------------------------------------------------------------------------------------------


class Nvml:
    """The GPUs NVML reports, through ``pynvml`` (imported when :meth:`open` is called)."""

    def __init__(self, nvml: ModuleType, devices: list[tuple[str, str, Any]]) -> None:
        self._nvml = nvml
        self.devices = devices  # (index, name, handle)
        self._closed = False

    @classmethod
    def open(cls) -> Nvml | None:
        """NVML with at least one GPU, or None (no pynvml, no driver, no GPU): never raises."""
        try:
            nvml = importlib.import_module("pynvml")
        except ImportError:
            log.debug("no GPU metrics: pynvml (nvidia-ml-py) is not installed")
            return None
        try:
            nvml.nvmlInit()
        except Exception as exc:  # pynvml raises NVMLError (no driver, no library): no GPU metrics
            log.info("no GPU metrics: NVML is not available (%s)", exc)
            return None
        try:
            devices = []
            for index in range(int(nvml.nvmlDeviceGetCount())):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                name = nvml.nvmlDeviceGetName(handle)
                name = name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
                devices.append((str(index), name, handle))
        except Exception as exc:  # NVMLError while listing devices
            log.warning("no GPU metrics: NVML cannot list the GPUs (%s)", exc)
            devices = []
        if not devices:
            nvml.nvmlShutdown()
            return None
        return cls(nvml, devices)

    def utilization(self) -> Samples:
        for index, name, handle in self._live():
            yield (index, name), self._nvml.nvmlDeviceGetUtilizationRates(handle).gpu / 100.0

    def memory_used(self) -> Samples:
        for index, name, handle in self._live():
            yield (index, name), float(self._nvml.nvmlDeviceGetMemoryInfo(handle).used)

    def memory_total(self) -> Samples:
        for index, name, handle in self._live():
            yield (index, name), float(self._nvml.nvmlDeviceGetMemoryInfo(handle).total)

    def _live(self) -> list[tuple[str, str, Any]]:
        return [] if self._closed else self.devices

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._nvml.nvmlShutdown()


# -- all of it, on one registry ------------------------------------------------------------------------


class ResourceMetrics:
    """The resource metrics of one server, on its registry.

    ``providers`` gives the providers serving now (a reload changes them); their connection pools
    and loaded models are looked at when scraped. :meth:`start` starts the lag probe and looks for
    GPUs; :meth:`stop` ends both.
    """

    def __init__(
        self,
        registry: MetricsRegistry,
        providers: Callable[[], Iterable[Provider]],
        *,
        lag_interval: float = LAG_INTERVAL_SECONDS,
        gpus: bool = True,
    ) -> None:
        self._registry = registry
        self._providers = providers
        self._gpus = gpus
        self._warnings = ThrottledLog(log, every=60.0)
        self._upstreams: set[str] = set()  # seen once, reported (at zero) from then on
        self.nvml: Nvml | None = None
        lag_histogram = Histogram(
            "llmops_event_loop_lag_distribution_seconds",
            "How late each event-loop probe woke (one probe every 0.25 s).",
            buckets=LAG_BUCKETS,
        )
        self.lag = LoopLagProbe(lag_histogram, lag_interval)
        for metric in (
            CounterFamily(
                "llmops_process_cpu_seconds_total",
                "CPU time of the process (user + system), in seconds.",
                (),
                _single(cpu_seconds),
            ),
            GaugeFamily(
                "llmops_process_resident_memory_bytes",
                "Resident memory of the process, in bytes.",
                (),
                _single(resident_bytes),
            ),
            GaugeFamily("llmops_process_open_fds", "Open file descriptors.", (), _single(open_fds)),
            GaugeFamily(
                "llmops_process_max_fds", "Soft limit on open file descriptors.", (), _single(max_fds)
            ),
            Gauge(
                "llmops_event_loop_lag_seconds",
                "How late the last event-loop probe woke, in seconds (a busy or blocked loop).",
                lambda: self.lag.last,
            ),
            lag_histogram,
            GaugeFamily(
                "llmops_upstream_connections",
                "Pooled connections to upstreams (openai models), by upstream (scheme://host:port) and "
                "state (idle: kept alive, active: in use).",
                ("upstream", "state"),
                self._guarded("connections", self._connections),
            ),
            CounterFamily(
                "llmops_local_model_tokens_total",
                "Tokens generated by the embedded model, by GGUF file.",
                ("file",),
                self._guarded("local model", self._local(lambda engine: engine.tokens_generated)),
            ),
            CounterFamily(
                "llmops_local_model_busy_seconds_total",
                "Seconds the embedded model spent generating (prompt processing included), by GGUF file.",
                ("file",),
                self._guarded("local model", self._local(lambda engine: engine.busy_seconds)),
            ),
        ):
            registry.add(metric)

    def start(self) -> None:
        """On the running loop: start the lag probe; look for GPUs (once) and register their metrics."""
        self.lag.start()
        if self._gpus and self.nvml is None:
            self._gpus = False  # looked for once per server
            self.nvml = Nvml.open()
            if self.nvml is not None:
                self._register_gpus(self.nvml)

    async def stop(self) -> None:
        await self.lag.stop()
        if self.nvml is not None:
            self.nvml.close()

    def _register_gpus(self, nvml: Nvml) -> None:
        labels = ("gpu", "name")
        for name, help_text, read in (
            (
                "llmops_gpu_utilization_ratio",
                "Share of time the GPU was busy over NVML's last sample period (0 to 1).",
                nvml.utilization,
            ),
            ("llmops_gpu_memory_used_bytes", "GPU memory in use, in bytes.", nvml.memory_used),
            ("llmops_gpu_memory_total_bytes", "GPU memory in all, in bytes.", nvml.memory_total),
        ):
            self._registry.add(GaugeFamily(name, help_text, labels, self._guarded("GPU", read)))
        log.info("GPU metrics from NVML: %s", ", ".join(name for _, name, _ in nvml.devices))

    def _guarded(self, what: str, read: Callable[[], Samples]) -> Callable[[], Samples]:
        """``read`` as a list; on a failure, no samples and a (throttled) warning."""

        def samples() -> Samples:
            try:
                return list(read())
            except Exception as exc:  # instrumentation boundary: a scrape never fails for a reading
                self._warnings.warning(what, "cannot read the %s metrics: %s", what, exc)
                return []

        return samples

    def _connections(self) -> Samples:
        connectors: dict[int, aiohttp.BaseConnector] = {}
        for provider in self._providers():
            if isinstance(provider, PooledProvider):
                connector = provider.connector
                if connector is not None:
                    connectors[id(connector)] = connector
        counts = connection_counts(connectors.values(), self._upstreams)
        self._upstreams.update(origin for origin, _ in counts)
        for (origin, state), count in counts.items():
            yield (origin, state), float(count)

    def _local(self, read: Callable[[LlamaEngine], float]) -> Callable[[], Samples]:
        def samples() -> Samples:
            engines: dict[int, LlamaEngine] = {}
            for provider in self._providers():
                if isinstance(provider, EmbeddedChatProvider):
                    engine = provider.llama_engine
                    if engine is not None:
                        engines[id(engine)] = engine
            totals: dict[str, float] = {}
            for engine in engines.values():
                totals[engine.file] = totals.get(engine.file, 0.0) + read(engine)
            return [((file,), value) for file, value in totals.items()]

        return samples
