"""The model registry on SQLite and Postgres: numbering (also under concurrent registrations), artefacts
stored with checksums, nothing visible after a failed registration, aliases with history, deletion rules,
serving configs and lineage back to the traces a dataset was built from."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from llmops.datasets.service import DatasetNotFound, DatasetService
from llmops.datasets.traces_source import TraceSelection
from llmops.jobs.service import JobService
from llmops.registry import (
    ArtefactStore,
    ArtefactStoreError,
    ChecksumMismatch,
    InvalidModel,
    ModelConflict,
    ModelNotFound,
    RegistryService,
    parse_ref,
)
from llmops.registry.artefacts import digest_path
from llmops.registry.tables import model_versions
from llmops.store import TraceRepository
from llmops.tracing.record import TraceRecord


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A GGUF-like file, an adapter folder (with a sub-folder) and a report."""
    source = tmp_path / "source"
    adapter = source / "adapter"
    (adapter / "nested").mkdir(parents=True)
    (adapter / "adapter_config.json").write_text('{"r": 8}')
    (adapter / "nested" / "adapter_model.safetensors").write_bytes(b"\x01\x02" * 500)
    gguf = source / "model-q4_k_m.gguf"
    gguf.write_bytes(b"GGUF" + bytes(range(256)) * 8)
    report = source / "report.json"
    report.write_text('{"perplexity": 7.5}')
    return {"adapter": adapter, "gguf-q4_k_m": gguf, "report": report}


@pytest.fixture
def registry(db: Engine, tmp_path: Path) -> RegistryService:
    return RegistryService(db, ArtefactStore(tmp_path / "store"), tmp_path / "cache")


def test_versions_are_numbered_and_artefacts_stored_with_checksums(
    registry: RegistryService, files: dict[str, Path], tmp_path: Path
) -> None:
    first = registry.register(
        "support-model",
        artefacts=files,
        base_model="smollm2",
        params={"rank": 8},
        metrics={"val_loss": 1.5},
        description="LoRA on support answers",
        author="ann",
    )
    assert first.ref == "support-model@1"
    assert first.created_by == "ann"
    adapter = first.artefact("adapter")
    assert adapter is not None
    assert adapter.is_dir
    assert adapter.sha256 == digest_path(files["adapter"])[0]
    assert adapter.bytes == 1000 + len('{"r": 8}')
    stored = tmp_path / "store" / "support-model" / "1"
    assert (stored / "adapter" / "nested" / "adapter_model.safetensors").read_bytes() == b"\x01\x02" * 500
    gguf = first.artefact("gguf-q4_k_m")
    assert gguf is not None
    assert not gguf.is_dir
    assert gguf.uri == (stored / "gguf-q4_k_m" / "model-q4_k_m.gguf").as_uri()
    assert first.artefact("merged") is None

    second = registry.register("support-model", serving={"provider": "openai", "base_url": "http://x/v1"})
    assert second.version == 2
    assert registry.resolve("support-model").version == 2
    assert registry.resolve("support-model@latest").version == 2
    assert registry.resolve("support-model@1") == first
    assert [info.version for info in registry.versions("support-model")] == [1, 2]
    [listed] = registry.list_models()
    assert listed["name"] == "support-model"
    assert listed["description"] == "LoRA on support answers"
    assert (listed["latest_version"], listed["versions"], listed["aliases"]) == (2, 2, {})


def test_registrations_at_once_get_distinct_numbers(
    registry: RegistryService, files: dict[str, Path]
) -> None:
    writers = 6
    barrier = threading.Barrier(writers)
    numbers: list[int] = []
    errors: list[BaseException] = []

    def register() -> None:
        try:
            barrier.wait()
            numbers.append(registry.register("racer", artefacts={"report": files["report"]}).version)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=register) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(numbers) == list(range(1, writers + 1))


def test_a_failed_registration_leaves_no_version(
    db: Engine, registry: RegistryService, files: dict[str, Path], tmp_path: Path
) -> None:
    registry.register("m", artefacts={"report": files["report"]})
    # a file where the second artefact's folder must go: the copy fails after the first artefact
    blocker = tmp_path / "store" / "m" / "2" / "gguf-q4_k_m"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    with pytest.raises(OSError):  # noqa: PT011 - the platform's error for a file where a folder must be
        registry.register("m", artefacts={"adapter": files["adapter"], "gguf-q4_k_m": files["gguf-q4_k_m"]})
    assert [info.version for info in registry.versions("m")] == [1]
    assert not (tmp_path / "store" / "m" / "2").exists()
    with db.connect() as connection:
        assert connection.execute(select(func.count()).select_from(model_versions)).scalar_one() == 1
    assert registry.register("m", artefacts={"report": files["report"]}).version == 3  # 2 is never reused


def test_names_references_and_inputs_are_checked(
    registry: RegistryService, files: dict[str, Path], tmp_path: Path
) -> None:
    assert parse_ref("m.v2_x-y") == ("m.v2_x-y", None)
    assert parse_ref("m@12") == ("m", 12)
    assert parse_ref("m@production") == ("m", "production")
    for bad in ("-m", "m/x", "a" * 129, "m@0", "m@Prod", "m@latest@2", ""):
        with pytest.raises(InvalidModel):
            parse_ref(bad)
    with pytest.raises(InvalidModel, match="invalid model name"):
        registry.register("bad name", serving={"provider": "openai"})
    with pytest.raises(InvalidModel, match="at least one artefact or a serving config"):
        registry.register("m")
    with pytest.raises(InvalidModel, match="no such file or directory"):
        registry.register("m", artefacts={"gguf-f16": files["report"].parent / "missing.gguf"})
    with pytest.raises(InvalidModel, match="not a regular file or folder: /dev/zero"):
        registry.register("m", artefacts={"gguf-f16": Path("/dev/zero")})  # its reading would never end
    with pytest.raises(InvalidModel, match="cannot read /proc/self/mem: Input/output error"):
        registry.register("m", artefacts={"report": Path("/proc/self/mem")})  # a file whose reading fails
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidModel, match="holds no file"):
        registry.register("m", artefacts={"adapter": tmp_path / "empty"})
    with pytest.raises(InvalidModel, match="holds the artefact store"):
        registry.register("m", artefacts={"merged": tmp_path})  # its copy would copy itself
    with pytest.raises(InvalidModel, match="invalid artefact kind"):
        registry.register("m", artefacts={"GGUF F16": files["report"]})
    with pytest.raises(InvalidModel, match="serving config: provider"):
        registry.register("m", serving={"base_url": "http://x/v1"})
    with pytest.raises(InvalidModel, match="serving config: colour"):
        registry.register("m", serving={"provider": "openai", "colour": "red"})
    unusable = RegistryService(registry.engine, ArtefactStore("nosuch://bucket"), tmp_path / "cache")
    with pytest.raises(ArtefactStoreError, match="cannot use the artefact store"):
        unusable.register("m", artefacts={"report": files["report"]})
    with pytest.raises(DatasetNotFound):
        registry.register("m", serving={"provider": "openai"}, dataset="nowhere@1")
    assert registry.list_models() == []
    with pytest.raises(ModelNotFound, match="no model named 'm'"):
        registry.resolve("m@1")
    registry.register("m", serving={"provider": "openai"})
    with pytest.raises(ModelNotFound, match="no version 7"):
        registry.resolve("m@7")
    with pytest.raises(ModelNotFound, match="no alias 'production'"):
        registry.resolve("m@production")


def test_aliases_move_with_history(registry: RegistryService) -> None:
    for _ in range(3):
        registry.register("m", serving={"provider": "openai"})
    first = registry.set_alias("m", "production", 1, author="ann")
    assert (first["from_version"], first["to_version"], first["by"], first["changed"]) == (
        None,
        1,
        "ann",
        True,
    )
    registry.set_alias("m", "candidate", 3, author="bob")
    moved = registry.set_alias("m", "production", 2, author="bob")
    assert (moved["from_version"], moved["to_version"]) == (1, 2)
    assert not registry.set_alias("m", "production", 2, author="eve")["changed"]
    assert registry.resolve("m@production").version == 2
    assert registry.resolve("m@2").aliases == ("production",)
    assert registry.list_models()[0]["aliases"] == {"candidate": 3, "production": 2}
    registry.remove_alias("m", "candidate", author="ann")
    history = registry.alias_history("m", "production")
    assert [(e["from_version"], e["to_version"], e["by"]) for e in history] == [
        (None, 1, "ann"),
        (1, 2, "bob"),
    ]
    assert all(isinstance(e["at"], datetime) and e["at"].tzinfo == UTC for e in history)
    everything = registry.alias_history("m")
    assert [(e["alias"], e["action"]) for e in everything] == [
        ("production", "set"),
        ("candidate", "set"),
        ("production", "set"),
        ("candidate", "remove"),
    ]
    with pytest.raises(ModelNotFound):
        registry.set_alias("m", "production", 9, author="ann")
    with pytest.raises(InvalidModel):
        registry.set_alias("m", "latest", 1, author="ann")
    with pytest.raises(ModelNotFound, match="no alias 'candidate'"):
        registry.remove_alias("m", "candidate", author="ann")


def test_deletion_rules(registry: RegistryService, files: dict[str, Path], tmp_path: Path) -> None:
    for _ in range(3):
        registry.register("m", artefacts={"report": files["report"]})
    registry.set_alias("m", "production", 2, author="ann")
    with pytest.raises(ModelConflict, match="has aliases"):
        registry.delete_version("m", 2, author="ann")

    def deployed(ref: str) -> str | None:
        return "deployed as support" if ref == "m@3" else None

    with pytest.raises(ModelConflict, match="in use"):
        registry.delete_version("m", 3, author="ann", in_use=deployed, force=True)
    registry.in_use = deployed  # what the composition root wires once deployments exist
    with pytest.raises(ModelConflict, match="deployed as support"):
        registry.delete_model("m", author="ann", force=True)

    registry.delete_version("m", 2, author="bob", force=True)
    assert [info.version for info in registry.versions("m")] == [1, 3]
    assert not (tmp_path / "store" / "m" / "2").exists()
    assert (tmp_path / "store" / "m" / "1").exists()
    history = registry.history("m")
    assert [(e["alias"], e["action"], e["from_version"], e["by"]) for e in history[-2:]] == [
        ("production", "remove", 2, "bob"),
        (None, "delete", 2, "bob"),
    ]
    with pytest.raises(ModelNotFound):
        registry.resolve("m@production")

    registry.in_use = None
    registry.delete_model("m", author="bob")
    assert registry.list_models() == []
    assert not (tmp_path / "store" / "m").exists()
    with pytest.raises(ModelNotFound):
        registry.versions("m")


def test_moves_and_deletions_check_again_under_the_lock(registry: RegistryService) -> None:
    """What the service checked may have changed before the write: the repository looks again under the
    model's lock (as if an alias were set, or the version deleted, in between)."""
    for _ in range(2):
        registry.register("m", serving={"provider": "openai"})
    registry.set_alias("m", "production", 2, author="ann")
    with pytest.raises(ModelConflict, match="has aliases"):
        registry.repository.delete_version("m", 2, author="bob", force=False)
    registry.repository.delete_version("m", 1, author="bob", force=False)
    with pytest.raises(ModelNotFound, match="no version 1"):
        registry.repository.move_alias("m", "candidate", 1, author="ann")
    with pytest.raises(ModelNotFound, match="no version 1"):
        registry.repository.delete_version("m", 1, author="bob", force=True)
    assert [(e["action"], e["from_version"]) for e in registry.history("m")] == [("set", None), ("delete", 1)]


def test_serving_configs(registry: RegistryService, files: dict[str, Path], tmp_path: Path) -> None:
    upstream = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "tuned"}
    assert registry.serving_config(registry.register("ext", serving=upstream)) == upstream
    f16 = tmp_path / "model-f16.gguf"
    f16.write_bytes(b"GGUF f16")
    both = registry.register("tuned", artefacts={"gguf-f16": f16, "gguf-q4_k_m": files["gguf-q4_k_m"]})
    config = registry.serving_config(both)
    assert config["provider"] == "local"
    assert Path(config["params"]["model_path"]).read_bytes() == files["gguf-q4_k_m"].read_bytes()
    odd = registry.register("tuned", artefacts={"gguf-iq2_xs": f16, "report": files["report"]})
    assert Path(registry.serving_config(odd)["params"]["model_path"]).name == "model-f16.gguf"
    adapter_only = registry.register("tuned", artefacts={"adapter": files["adapter"]})
    with pytest.raises(InvalidModel, match=r"model tuned@3 has no GGUF artefact or serving config"):
        registry.serving_config(adapter_only)


def test_a_corrupt_local_artefact_is_refused(
    db: Engine, registry: RegistryService, files: dict[str, Path], tmp_path: Path
) -> None:
    info = registry.register(
        "m", artefacts={"gguf-q4_k_m": files["gguf-q4_k_m"], "adapter": files["adapter"]}
    )
    assert registry.local_path(info, "adapter").is_dir()
    path = registry.local_path(info, "gguf-q4_k_m")
    original = path.read_bytes()
    path.write_bytes(original[:-1] + b"!")  # same size: another process, which has not checked it, sees it
    elsewhere = RegistryService(db, ArtefactStore(tmp_path / "store"), tmp_path / "cache")
    with pytest.raises(ChecksumMismatch, match="is corrupt"):
        elsewhere.serving_config(info)
    path.write_bytes(original + b"!")  # a changed size is noticed by the process that checked it before
    with pytest.raises(ChecksumMismatch, match="is corrupt"):
        registry.serving_config(info)
    path.write_bytes(original)
    assert registry.serving_config(info)["params"]["model_path"] == str(path)
    with pytest.raises(ModelNotFound, match="no 'merged' artefact"):
        registry.local_path(info, "merged")


def test_a_remote_store_is_downloaded_once_into_the_cache(
    db: Engine, files: dict[str, Path], tmp_path: Path
) -> None:
    store = ArtefactStore(f"memory://registry-{tmp_path.name}")
    registry = RegistryService(db, store, tmp_path / "cache")
    info = registry.register(
        "m", artefacts={"gguf-q4_k_m": files["gguf-q4_k_m"], "adapter": files["adapter"]}
    )
    assert info.artefact("adapter") is not None
    assert all(item.uri.startswith("memory://") for item in info.artefacts)
    path = Path(registry.serving_config(info)["params"]["model_path"])
    assert path == tmp_path / "cache" / "m" / "1" / "gguf-q4_k_m" / "model-q4_k_m.gguf"
    assert path.read_bytes() == files["gguf-q4_k_m"].read_bytes()
    with ThreadPoolExecutor(4) as pool:  # callers at once: each gets the complete, checked copy
        adapters = list(pool.map(lambda _: registry.local_path(info, "adapter"), range(4)))
    adapter = adapters[0]
    assert set(adapters) == {tmp_path / "cache" / "m" / "1" / "adapter"}
    assert digest_path(adapter)[0] == digest_path(files["adapter"])[0]
    assert [item.name for item in adapter.parent.iterdir() if item.name.startswith(".")] == []
    stored = info.artefact("gguf-q4_k_m")
    assert stored is not None
    store.fs.pipe_file(store.fs._strip_protocol(stored.uri), b"tampered")  # the cached copy is still served
    assert registry.local_path(info, "gguf-q4_k_m") == path
    (path.parent.parent / "gguf-q4_k_m.sha256").unlink()  # without the cache's record: downloaded again
    with pytest.raises(ChecksumMismatch):
        registry.local_path(info, "gguf-q4_k_m")
    registry.delete_model("m", author="ann")
    assert not (tmp_path / "cache" / "m").exists()
    assert not store.fs.exists(store.fs._strip_protocol(stored.uri))


def test_metrics_merge(registry: RegistryService) -> None:
    registry.register("m", serving={"provider": "openai"}, metrics={"val_loss": 1.2})
    updated = registry.set_metrics("m@1", {"eval_after": 0.8, "val_loss": 1.1})
    assert updated.metrics == {"val_loss": 1.1, "eval_after": 0.8}
    assert registry.resolve("m").metrics == updated.metrics


@pytest.fixture
def traced_dataset(db: Engine, tmp_path: Path) -> DatasetService:
    """``prod@1`` from two traces of model-a, ``prod@2`` with rows of a file appended."""
    rows = []
    for n, text in enumerate(("one", "two"), start=1):
        record = TraceRecord(
            id=f"{n:032x}",
            started_at=datetime(2026, 5, 1, n, tzinfo=UTC).timestamp(),
            endpoint="chat.completions",
            requested_model="model-a",
            stream=False,
            latency_ms=1.0,
        )
        record.request = {"model": "model-a", "messages": [{"role": "user", "content": text}]}
        record.response_text = f"answer {text}"
        rows.append(record.to_row())
    TraceRepository(db).insert_many(rows)
    datasets = DatasetService(db)
    datasets.import_traces("prod", TraceSelection(model="model-a"), author="ann")
    extra = tmp_path / "extra.jsonl"
    extra.write_text('{"input": "three", "expected": "answer three"}\n')
    datasets.import_files("prod", [extra], append=True, author="bob")
    return datasets


def test_lineage_reaches_the_traces(
    db: Engine, registry: RegistryService, traced_dataset: DatasetService
) -> None:
    jobs = JobService(db, owner="test")
    try:
        job = jobs.run_here("finetune", {"base": "smollm2"}, lambda context: {"ok": True}, created_by="ann")
    finally:
        jobs.close()
    info = registry.register(
        "tuned",
        serving={"provider": "openai"},
        base_model="smollm2",
        dataset="prod",
        job_id=job.id,
        source={"finetune": "ft-1"},
    )
    assert (info.dataset, info.dataset_version) == ("prod", 2)
    nodes = registry.lineage("tuned@1")
    summary: list[tuple[int, str, Any]] = [
        (node["depth"], node["kind"], node.get("ref") or node.get("id") or node.get("name")) for node in nodes
    ]
    assert summary == [
        (0, "model_version", "tuned@1"),
        (1, "job", job.id),
        (1, "source", None),
        (1, "base_model", "smollm2"),
        (1, "dataset_version", "prod@2"),
        (2, "dataset_version", "prod@1"),
        (3, "traces", None),
    ]
    assert nodes[1]["status"] == "succeeded"
    assert nodes[2]["source"] == {"finetune": "ft-1"}
    assert nodes[4]["operation"] == "import"
    assert nodes[4]["parents"] == ["prod@1"]
    assert nodes[5]["operation"] == "from_traces"
    assert nodes[5]["rows"] == 2
    assert nodes[6]["selection"]["model"] == "model-a"
