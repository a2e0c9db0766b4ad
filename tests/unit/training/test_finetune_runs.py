"""A whole fine-tuning run through the service: data → LoRA → before/after → GGUF → registry.

One tiny run (3 steps, 64 tokens) on the embedded SmolLM2 is shared by the tests of a module; the
base conversion comes from the session cache of conftest.py. A second run is cancelled mid-way and
resumed from its checkpoint.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from llmops.datasets.service import DatasetService
from llmops.progress import Cancelled
from llmops.registry import ArtefactStore, RegistryService
from llmops.store import open_database
from llmops.training.params import LoraParams
from llmops.training.repository import FinetuneInfo
from llmops.training.service import FinetuneRequest, FinetuneService

pytest.importorskip("torch")
pytest.importorskip("llama_cpp")


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {
            "messages": [{"role": "user", "content": f"What is {n} plus {n}?"}],
            "expected": f"ZEBRA-{2 * n}",
        }
        for n in range(count)
    ]


class _Sink:
    """A job context stand-in that records reports and can cancel at a given training step."""

    def __init__(self, cancel_at_step: int | None = None) -> None:
        self.reports: list[tuple[str, int, int | None]] = []
        self.lines: list[str] = []
        self.cancel_at_step = cancel_at_step

    def progress(self, stage: str, done: int, total: int | None) -> None:
        self.reports.append((stage, done, total))
        if stage == "train" and done == self.cancel_at_step:
            raise Cancelled("cancelled by the test")

    def log(self, message: str, level: str = "info") -> None:
        self.lines.append(message)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_models_home: Path) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("home")
    (home / "models").symlink_to(base_models_home / "models", target_is_directory=True)
    engine: Engine = open_database(f"sqlite:///{home / 'llmops.db'}")
    datasets = DatasetService(engine)
    datasets.create_version("sums", _rows(14), operation="import")
    registry = RegistryService(engine, ArtefactStore(str(home / "artefacts")), home / "cache")
    service = FinetuneService(engine, datasets, home, registry=registry)
    yield {"home": home, "service": service, "registry": registry}
    engine.dispose()


def _tiny(**changes: Any) -> LoraParams:
    values: dict[str, Any] = {"max_steps": 3, "batch_size": 2, "max_seq_length": 64, "eval_every": 1}
    values.update(changes)
    return LoraParams(**values)


@pytest.fixture(scope="module")
def finished(world: dict[str, Any]) -> tuple[FinetuneInfo, _Sink]:
    service: FinetuneService = world["service"]
    request = FinetuneRequest(
        base="smollm2",
        params=_tiny(),
        dataset="sums@1",
        validation_split=0.25,
        metrics=("exact_match",),
        quantize=("q4_k_m",),
        register_as="sums-model",
        name="tiny",
    )
    created = service.create(request, author="ann")
    sink = _Sink()
    return service.execute(created.id, sink, job_id=None), sink


def test_the_run_succeeds_with_progress_curves_and_a_report(finished: tuple[FinetuneInfo, _Sink]) -> None:
    run, sink = finished
    assert run.status == "succeeded", run.error
    stages = [stage for stage, _, _ in sink.reports]
    assert stages[0] == "prepare"
    assert ("train", 3, 3) in sink.reports
    assert (
        stages.index("evaluate")
        < stages.index("export")
        < stages.index("quantize")
        < stages.index("register")
    )
    assert run.progress is not None
    assert run.progress["stage"] == "done"
    assert run.progress["step"] == 3
    assert run.progress["total_steps"] == 3
    assert run.progress["tokens_per_second"] > 0
    assert [point["step"] for point in run.curves or []] == [1, 2, 3]
    assert all("val_loss" in point for point in run.curves or [])
    assert any("ZEBRA" not in line and "data:" in line for line in sink.lines)
    result = run.result or {}
    assert result["data"]["dataset"] == "sums@1"
    assert result["data"]["train"] + result["data"]["validation"] == 14
    evaluation = result["evaluation"]
    assert evaluation["examples"] == result["data"]["validation"]
    assert evaluation["tuned_loss"] < evaluation["base_loss"]  # three steps on a fixed style already help
    assert set(evaluation["metrics"]) == {"exact_match"}
    workdir = Path(run.workdir)
    assert json.loads((workdir / "report.json").read_text())["evaluation"] == evaluation
    ElementTree.fromstring((workdir / "loss.svg").read_text())


def test_the_quantisation_report_measures_f16_and_each_level(finished: tuple[FinetuneInfo, _Sink]) -> None:
    run, _ = finished
    levels = {item["level"]: item for item in (run.result or {})["quantization"]}
    assert set(levels) == {"f16", "q4_k_m"}  # f16 measured as the reference, not kept
    assert levels["q4_k_m"]["bytes"] * 2 < levels["f16"]["bytes"]
    assert levels["q4_k_m"]["perplexity"] > 1
    assert levels["q4_k_m"]["tokens_per_second"] > 0
    gguf = Path(run.workdir) / "gguf"
    assert sorted(path.name for path in gguf.iterdir()) == ["model-q4_k_m.gguf"]


def test_the_tuned_model_is_registered_with_artefacts_metrics_and_lineage(
    world: dict[str, Any], finished: tuple[FinetuneInfo, _Sink]
) -> None:
    run, _ = finished
    registry: RegistryService = world["registry"]
    assert run.model_version == "sums-model@1"
    version = registry.resolve("sums-model@1")
    kinds = {artefact.kind for artefact in version.artefacts}
    assert {"adapter", "merged", "gguf-q4_k_m", "report", "loss-curve"} <= kinds
    assert version.base_model == "smollm2"
    assert (version.dataset, version.dataset_version) == ("sums", 1)
    assert version.params["max_steps"] == 3
    assert version.source["finetune"] == run.id
    assert version.metrics["val_loss"] == (run.result or {})["evaluation"]["tuned_loss"]
    assert version.metrics["gguf_q4_k_m_perplexity"] > 1
    serving = registry.serving_config(version)
    assert serving["provider"] == "local"
    assert str(serving["params"]["model_path"]).endswith(".gguf")
    lineage = json.dumps(registry.lineage("sums-model@1"))
    assert run.id in lineage
    assert "sums" in lineage


def test_a_cancelled_run_resumes_from_its_checkpoint(world: dict[str, Any]) -> None:
    service: FinetuneService = world["service"]
    request = FinetuneRequest(
        base="smollm2",
        params=_tiny(max_steps=4, checkpoint_every=1),
        dataset="sums",
        validation_split=0.25,
        quantize=(),
    )
    created = service.create(request, author=None)
    with pytest.raises(Cancelled):
        service.execute(created.id, _Sink(cancel_at_step=2))
    stopped = service.get(created.id)
    assert stopped.status == "cancelled"
    assert [point["step"] for point in stopped.curves or []] == [1, 2]
    resumed = service.execute(service.prepare_resume(created.id).id, _Sink())
    assert resumed.status == "succeeded", resumed.error
    training = (resumed.result or {})["training"]
    assert training["resumed_from"] == 2
    assert training["steps"] == 4
    assert [point["step"] for point in resumed.curves or []] == [1, 2, 3, 4]
    assert resumed.model_version is None
    assert (resumed.result or {})["quantization"] == []
