"""Resource metrics in /metrics: the process, the event-loop lag probe, upstream connection pools, the
embedded model's counters and GPUs through NVML (a stand-in ``pynvml`` module; no GPU here).

Every scrape is parsed with prometheus_client's reference parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import ExitStack, aclosing
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from fake_upstream import FakeUpstream
from llmops.monitoring.resources import ResourceMetrics
from llmops.providers import ProviderContext
from llmops.providers.base import Provider
from llmops.providers.local import LocalProvider, packaged_models
from llmops.providers.openai import OpenAIProvider
from llmops.settings import DeploymentConfig, Settings
from llmops.tracing.metrics import CounterFamily, MetricsRegistry

GPU_METRICS = (
    "llmops_gpu_utilization_ratio",
    "llmops_gpu_memory_used_bytes",
    "llmops_gpu_memory_total_bytes",
)
Sample = tuple[str, tuple[tuple[str, str], ...]]


def _scrape(registry: MetricsRegistry) -> tuple[set[str], dict[Sample, float]]:
    """(names in HELP lines, samples) of one scrape, through the reference parser."""
    text = registry.render().decode()
    helped = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")}
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return helped, samples


def _resources(providers: Iterable[Provider] = (), **options: Any) -> tuple[MetricsRegistry, ResourceMetrics]:
    registry = MetricsRegistry()
    return registry, ResourceMetrics(registry, lambda: list(providers), **options)


def test_counter_family_is_a_counter_read_when_scraped() -> None:
    registry = MetricsRegistry()
    totals = {("a",): 1.0}
    registry.add(CounterFamily("llmops_done_total", "Things done.", ("kind",), lambda: totals.items()))
    totals[("b",)] = 2.5
    families = {f.name: f for f in text_string_to_metric_families(registry.render().decode())}
    assert families["llmops_done"].type == "counter"
    assert {(s.labels["kind"], s.value) for s in families["llmops_done"].samples} == {("a", 1.0), ("b", 2.5)}


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads /proc (Linux)")
def test_process_metrics_are_read_at_each_scrape(tmp_path: Path) -> None:
    registry, _ = _resources(gpus=False)
    _, before = _scrape(registry)
    assert before[("llmops_process_cpu_seconds_total", ())] > 0
    assert before[("llmops_process_resident_memory_bytes", ())] > 10_000_000
    assert before[("llmops_process_max_fds", ())] >= 64
    with ExitStack() as files:
        for index in range(5):
            files.enter_context((tmp_path / f"f{index}").open("w"))
        sum(range(2_000_000))  # some CPU time
        _, during = _scrape(registry)
    fds = ("llmops_process_open_fds", ())
    assert during[fds] >= before[fds] + 5
    assert during[("llmops_process_cpu_seconds_total", ())] > before[("llmops_process_cpu_seconds_total", ())]
    assert not [name for name, _ in during if name.startswith("llmops_gpu_")]


async def test_lag_probe_sees_a_blocked_loop_and_stops() -> None:
    registry, resources = _resources(gpus=False, lag_interval=0.02)
    resources.start()
    resources.start()  # a second start does nothing
    await asyncio.sleep(0.1)
    time.sleep(0.3)  # blocks the event loop: the probe wakes late
    await asyncio.sleep(0.05)
    await resources.stop()
    assert not resources.lag.running
    await resources.stop()  # stopping twice is fine
    _, samples = _scrape(registry)
    count = samples[("llmops_event_loop_lag_distribution_seconds_count", ())]
    within_100ms = samples[("llmops_event_loop_lag_distribution_seconds_bucket", (("le", "0.1"),))]
    assert count >= 3
    assert within_100ms < count  # the blocked wake-up was more than 0.1 s late
    assert samples[("llmops_event_loop_lag_seconds", ())] >= 0


# -- GPUs through NVML ------------------------------------------------------------------------------------

FAKE_NVML = '''
"""A stand-in for pynvml (nvidia-ml-py): {gpus} GPUs; FAIL names the function that raises."""
from types import SimpleNamespace

FAIL = {fail!r}
calls = []


class NVMLError(Exception):
    pass


def _call(name):
    calls.append(name)
    if name == FAIL:
        raise NVMLError(name + " failed")


def nvmlInit():
    _call("nvmlInit")


def nvmlShutdown():
    _call("nvmlShutdown")


def nvmlDeviceGetCount():
    _call("nvmlDeviceGetCount")
    return {gpus}


def nvmlDeviceGetHandleByIndex(index):
    return ("handle", index)


def nvmlDeviceGetName(handle):
    return b"Fake GPU" if handle[1] == 0 else "Fake GPU 2"


def nvmlDeviceGetUtilizationRates(handle):
    _call("nvmlDeviceGetUtilizationRates")
    return SimpleNamespace(gpu=37 + handle[1], memory=5)


def nvmlDeviceGetMemoryInfo(handle):
    return SimpleNamespace(used=(handle[1] + 1) * 2**30, total=16 * 2**30, free=0)
'''


@pytest.fixture
def fake_nvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Install a stand-in ``pynvml``: call it with the number of GPUs and the function that fails."""

    def install(gpus: int = 2, fail: str = "") -> Any:
        (tmp_path / "pynvml.py").write_text(FAKE_NVML.format(gpus=gpus, fail=fail))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.delitem(sys.modules, "pynvml", raising=False)
        import pynvml  # type: ignore[import-not-found]

        return pynvml

    yield install
    sys.modules.pop("pynvml", None)


async def test_no_gpu_metrics_without_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    registry, resources = _resources()
    resources.start()
    helped, samples = _scrape(registry)
    await resources.stop()
    assert resources.nvml is None
    assert not set(GPU_METRICS) & helped
    assert "llmops_process_cpu_seconds_total" in helped  # the rest is there as usual
    assert samples[("llmops_process_cpu_seconds_total", ())] > 0


@pytest.mark.parametrize(("gpus", "fail"), [(2, "nvmlInit"), (2, "nvmlDeviceGetCount"), (0, "")])
async def test_no_gpu_metrics_when_nvml_has_no_gpu(fake_nvml: Any, gpus: int, fail: str) -> None:
    nvml = fake_nvml(gpus, fail)
    registry, resources = _resources()
    resources.start()
    helped, _ = _scrape(registry)
    await resources.stop()
    assert resources.nvml is None
    assert not set(GPU_METRICS) & helped
    if fail != "nvmlInit":
        assert nvml.calls[-1] == "nvmlShutdown"  # NVML started, found nothing usable, was shut down


async def test_gpu_metrics_from_nvml(fake_nvml: Any) -> None:
    nvml = fake_nvml(2)
    registry, resources = _resources()
    resources.start()
    _, samples = _scrape(registry)
    first, second = (("gpu", "0"), ("name", "Fake GPU")), (("gpu", "1"), ("name", "Fake GPU 2"))
    assert samples[("llmops_gpu_utilization_ratio", first)] == pytest.approx(0.37)
    assert samples[("llmops_gpu_utilization_ratio", second)] == pytest.approx(0.38)
    assert samples[("llmops_gpu_memory_used_bytes", first)] == 2**30
    assert samples[("llmops_gpu_memory_used_bytes", second)] == 2**31
    assert samples[("llmops_gpu_memory_total_bytes", first)] == 16 * 2**30
    await resources.stop()
    assert nvml.calls[-1] == "nvmlShutdown"
    helped, samples = _scrape(registry)  # a scrape after the stop: the metrics, without samples
    assert set(GPU_METRICS) <= helped
    assert not [name for name, _ in samples if name.startswith("llmops_gpu_")]


async def test_a_failing_gpu_reading_leaves_its_series_out(
    fake_nvml: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake_nvml(1, "nvmlDeviceGetUtilizationRates")
    registry, resources = _resources()
    resources.start()
    try:
        _, samples = _scrape(registry)
        _scrape(registry)
    finally:
        await resources.stop()
    assert not [name for name, _ in samples if name == "llmops_gpu_utilization_ratio"]
    assert samples[("llmops_gpu_memory_used_bytes", (("gpu", "0"), ("name", "Fake GPU")))] == 2**30
    warnings = [r.getMessage() for r in caplog.records if "cannot read the GPU metrics" in r.getMessage()]
    assert len(warnings) == 1  # once a minute at most, not once a scrape


# -- upstream connection pools --------------------------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


async def test_upstream_connections_idle_and_active(upstream: FakeUpstream) -> None:
    context = ProviderContext(settings=Settings())
    providers = [  # two models on one upstream: one answers, one hangs (handler_cancellation ends it)
        OpenAIProvider(
            DeploymentConfig(name=name, provider="openai", base_url=upstream.base_url, model=model),
            context,
        )
        for name, model in (("a", "fake-model"), ("b", "fault:hang,seconds=30"))
    ]
    registry, _ = _resources(providers, gpus=False)
    origin = upstream.base_url.rsplit("/", 1)[0]
    idle = ("llmops_upstream_connections", (("state", "idle"), ("upstream", origin)))
    active = ("llmops_upstream_connections", (("state", "active"), ("upstream", origin)))
    try:
        assert not [name for name, _ in _scrape(registry)[1] if name == idle[0]]  # not started: no pool
        for provider in providers:
            await provider.start()
        payload = {"model": "x", "messages": [{"role": "user", "content": "hi"}]}
        await providers[0].chat(payload)
        _, samples = _scrape(registry)
        assert (samples[idle], samples[active]) == (1, 0)  # one pool for both models, counted once
        hanging = asyncio.create_task(providers[1].chat(payload))
        while not hanging.done() and _scrape(registry)[1][active] == 0:
            await asyncio.sleep(0.01)  # until the request is sent on the pooled connection
        _, samples = _scrape(registry)
        assert (samples[idle], samples[active]) == (0, 1)
        hanging.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await hanging
        _, samples = _scrape(registry)
        assert (samples[idle], samples[active]) == (0, 0)  # closed, still reported
    finally:
        await context.aclose()


# -- the embedded model ---------------------------------------------------------------------------------


@pytest.fixture
async def local_models() -> AsyncIterator[list[Provider]]:
    """Two model names on the packaged SmolLM2 file (one engine), and the MiniLM embedding model."""
    context = ProviderContext(settings=Settings())
    configs = [
        DeploymentConfig(name="small", provider="local", model="SmolLM2-135M-Instruct"),
        DeploymentConfig(name="small-too", provider="local", model="SmolLM2-135M-Instruct"),
        DeploymentConfig(name="minilm", provider="local", params={"kind": "embedding"}),
    ]
    providers: list[Provider] = [LocalProvider(config, context) for config in configs]
    try:
        for provider in providers:
            await provider.start()
        yield providers
    finally:
        await context.aclose()


@pytest.mark.model
@pytest.mark.skipif(not packaged_models(), reason="the `local` extra is not installed")
async def test_local_model_tokens_and_busy_time(local_models: list[Provider]) -> None:
    registry, _ = _resources(local_models, gpus=False)
    helped, samples = _scrape(registry)
    assert {"llmops_local_model_tokens_total", "llmops_local_model_busy_seconds_total"} <= helped
    before = [value for (name, _), value in samples.items() if name.startswith("llmops_local_model_")]
    assert before == [0, 0]  # loaded, nothing generated yet
    request = {"messages": [{"role": "user", "content": "Count to ten."}], "temperature": 0, "max_tokens": 3}
    whole = await local_models[0].chat({**request, "model": "small"})
    chunks = local_models[1].stream_chat(
        {**request, "model": "small-too", "stream": True, "stream_options": {"include_usage": True}}
    )
    async with aclosing(chunks):
        streamed = [chunk async for chunk in chunks]
    streamed_usage = json.loads(streamed[-2].removeprefix(b"data: "))["usage"]
    _, samples = _scrape(registry)
    labels = [key for name, key in samples if name == "llmops_local_model_tokens_total"]
    assert len(labels) == 1  # one engine for the two names; the embedding model has none
    (file,) = [value for name, value in labels[0] if name == "file"]
    assert file.endswith(".gguf")
    generated = whole.data["usage"]["completion_tokens"] + streamed_usage["completion_tokens"]
    assert samples[("llmops_local_model_tokens_total", labels[0])] == generated > 0
    assert samples[("llmops_local_model_busy_seconds_total", labels[0])] > 0
