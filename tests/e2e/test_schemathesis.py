"""The admin API's schema tells the truth: a schemathesis run over /api/openapi.json finds nothing.

A real `llmops serve` (SQLite and Postgres), a few traces to read, then `schemathesis run` with every
check and every phase (coverage, fuzzing, stateful over the schema's links), seeded and bounded by a
number of examples per operation. It tests whatever routes the live schema lists, so a new route is
covered the day it is added. The run authenticates with an admin key it cannot revoke: the API
refuses to revoke the key a request is made with (409), so nothing needs to be excluded.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Server, start_server
from llmops.annotation.schema import LabelSchema
from llmops.ids import new_id
from llmops.prompts.spec import PromptContent
from llmops.services import Store, open_store
from llmops.settings import load_settings
from llmops.tracing.service import FeedbackInput

# A deeper run: LLMOPS_TEST_SCHEMATHESIS_EXAMPLES=300 LLMOPS_TEST_SCHEMATHESIS_SEED=<any>.
EXAMPLES = int(os.environ.get("LLMOPS_TEST_SCHEMATHESIS_EXAMPLES", "30"))
SEED = int(os.environ.get("LLMOPS_TEST_SCHEMATHESIS_SEED", "20260501"))
RUN_TIMEOUT = 480  # seconds; the run takes two to three minutes per backend
PHASES = ("coverage", "fuzzing", "stateful")
CONFIG = Path(__file__).with_name("schemathesis.toml")
MIN_LINKS_DECLARED = 24
MIN_LINKS_FOLLOWED = 12


@pytest.fixture
def api_server(tmp_path: Path, database_url: str) -> Iterator[Server]:
    """A server of its own per backend: the run creates and revokes keys and adds feedback."""
    (tmp_path / "server").mkdir()
    server = start_server(
        tmp_path / "server",
        models=[{"name": "echo", "provider": "echo"}],
        keys={"admin": "admin"},
        database_url=database_url,
        env={
            "LLMOPS_FINETUNE_ON_SERVER": "false",  # generated runs would train for the whole test
            # the run sends requests without a key on purpose; past 20 such failures a real server would
            # hold this address back with 429 for a minute, and the rest of the run would check nothing
            "LLMOPS_AUTH_FAILURES_PER_MINUTE": "0",
        },
    )
    try:
        _record_traces(server)
        _seed_experiments(server)
        (tmp_path / "item_id").write_text(_seed_datasets(server))
        _seed_registry(server)
        _seed_finetune(server)
        (tmp_path / "silences").write_text(" ".join(_seed_silences(server)))
        yield server
    finally:
        server.stop()


def _record_traces(server: Server) -> None:
    """Traces to read, so that the links from GET /api/traces lead to real ones."""
    for text in ("one", "two"):
        httpx.post(
            f"{server.base_url}/chat/completions",
            json={"model": "echo", "messages": [{"role": "user", "content": text}]},
            headers=server.headers(),
        ).raise_for_status()
    deadline = time.monotonic() + 10
    while len(httpx.get(f"{server.url}/api/traces", headers=server.headers()).json()["data"]) < 2:
        assert time.monotonic() < deadline, "the traces were not recorded"
        time.sleep(0.05)


def _seed_experiments(server: Server) -> None:
    """The prompt, its labels and the running experiments that the examples of /api/prompts and
    /api/experiments name (a create that can succeed, an experiment to promote and one to stop, a
    label to roll back), with traces and feedback to read."""
    store = open_store(load_settings(database_url=server.database_url, home=server.home))
    try:
        versions = [
            store.prompts.create_version("greeting", PromptContent(kind="text", template=text)).version.number
            for text in ("Hello!", "Hi!")
        ]
        # labels the examples of /api/prompts name: one to read or move, one with a deploy to roll back
        store.prompts.set_label("greeting", "staging", versions[0])
        for version in versions:
            store.prompts.set_label("greeting", "rolled", version)
        now = datetime.now(UTC)
        for name, label in (("greeting-tone", "production"), ("greeting-length", "canary")):
            variants = [("a", versions[0], 1.0), ("b", versions[1], 1.0)]
            experiment = store.experiments.create(name, "greeting", variants, label=label)
            for number in range(40):
                trace_id = new_id()
                store.trace_repository.insert_many(
                    [
                        {
                            "id": trace_id,
                            "started_at": now,
                            "ended_at": now,
                            "endpoint": "chat.completions",
                            "requested_model": "prompt:greeting",
                            "stream": False,
                            "status": "ok",
                            "status_code": 200,
                            "latency_ms": 100.0 + number,
                            "experiment": experiment.id,
                            "variant": "ab"[number % 2],
                        }
                    ]
                )
                thumb = "up" if number % 3 else "down"
                store.traces.add_feedback(trace_id, FeedbackInput(thumb=thumb, score=float(number % 5)))
    finally:
        store.close()


def _seed_datasets(server: Server) -> str:
    """The dataset the examples of /api/datasets name, with two versions to read, diff and export, and
    the annotation queue over it that the examples of /api/annotation-queues name; returns the id of
    the item handed to the run's key, which the run's item routes are pinned to."""
    store = open_store(load_settings(database_url=server.database_url, home=server.home))
    try:
        rows = [
            {"input": f"question {n}", "expected": f"answer {n}", "metadata": {"id": n}} for n in range(5)
        ]
        store.datasets.create_version("support-qa", rows, operation="import")
        store.datasets.create_version("support-qa", rows[:3], operation="import")
        schema = LabelSchema(categories=("good", "bad"), score_min=1, score_max=5, correction=True)
        store.annotation.create_queue("support-review", schema, dataset="support-qa@1", annotators_per_item=2)
        _seed_eval_runs(store)
        item = store.annotation.next_item("support-review", "admin")  # the run's key is named admin
        assert item is not None
        return item.id
    finally:
        store.close()


def _seed_registry(server: Server) -> None:
    """The model the examples of /api/registry name (support-model@1, which the alias production names),
    and the models the run's deletions are pinned to, so that the others keep something to read."""
    store = open_store(load_settings(database_url=server.database_url, home=server.home))
    try:
        for name in ("support-model", "support-model", "scratch-model", "scratch-versions"):
            store.registry.register(name, serving={"provider": "echo"}, author="admin")
        store.registry.set_alias("support-model", "production", 1, author="admin")
    finally:
        store.close()


def _seed_silences(server: Server) -> list[str]:
    """Two alert silences: one that the id routes read and end, one that the delete route removes."""
    ids = []
    for comment in ("read and ended", "deleted"):
        response = httpx.post(
            f"{server.url}/api/alert-silences",
            json={"rule": "seeded-*", "duration": "1d", "comment": comment},
            headers=server.headers(),
        )
        response.raise_for_status()
        ids.append(response.json()["id"])
    return ids


def _seed_finetune(server: Server) -> None:
    """A finished fine-tuning run named as the examples of /api/finetune name it (support-lora), its
    figures as a run writes them (the server does not train here: finetune_on_server is off)."""
    from llmops.training.params import LoraParams
    from llmops.training.service import FinetuneRequest

    store = open_store(load_settings(database_url=server.database_url, home=server.home))
    try:
        request = FinetuneRequest(
            base="smollm2", params=LoraParams(max_steps=2), dataset="support-qa@1", name="support-lora"
        )
        run = store.finetune.create(request, author="admin")
        curves = [
            {"step": 1, "train_loss": 2.5, "val_loss": 2.6},
            {"step": 2, "train_loss": 2.1, "val_loss": 2.2},
        ]
        store.finetune.repository.update(
            run.id,
            status="succeeded",
            progress={"stage": "done", "step": 2, "total_steps": 2, "train_loss": 2.1, "val_loss": 2.2},
            curves=curves,
        )
    finally:
        store.close()


def _seed_eval_runs(store: Store) -> None:
    """Two finished runs over support-qa@1, named as the examples of /api/evals name them."""
    import asyncio

    from llmops.evals.scorers.registry import ScorerRegistry, ScorerResources
    from llmops.evals.service import RunRequest
    from llmops.evals.targets import Target

    for name, column in (("baseline", "expected"), ("candidate", "input")):
        request = RunRequest(
            Target("column", column=column), ["exact_match"], dataset="support-qa@1", name=name
        )
        run = store.evals.create_run(request, ScorerRegistry(), author="admin")
        asyncio.run(store.evals.execute(run.id, ScorerRegistry(), ScorerResources(), caller=None))


def _config(workdir: Path, item_id: str) -> Path:
    """tests/e2e/schemathesis.toml with the number of examples per operation (EXAMPLES) in front, and the
    seeded queue and item pinned for the item routes (random ids would only ever find nothing)."""
    config = workdir / "schemathesis.toml"
    silences = (workdir.parent / "silences").read_text().split()
    pinned = (
        "\n[[operations]]\n"
        'include-operation-id = ["next_annotation_item", "submit_annotation", "skip_annotation_item"]\n'
        f'parameters = {{ "path.name" = "support-review", "path.item_id" = "{item_id}" }}\n'
        "\n[[operations]]\n"
        'include-operation-id = ["accept_annotation_queue"]\n'
        'parameters = { "path.name" = "support-review" }\n'
        "\n[[operations]]\n"
        'include-operation-id = ["resume_eval_run"]\n'
        'parameters = { "path.run" = "baseline" }\n'
        "\n[[operations]]\n"
        'include-operation-id = ["delete_registered_model"]\n'
        'parameters = { "path.name" = "scratch-model" }\n'
        "\n[[operations]]\n"
        'include-operation-id = ["delete_model_version"]\n'
        'parameters = { "path.name" = "scratch-versions" }\n'
        "\n[[operations]]\n"
        'include-operation-id = ["get_alert_silence", "end_alert_silence"]\n'
        f'parameters = {{ "path.silence_id" = "{silences[0]}" }}\n'
        "\n[[operations]]\n"
        'include-operation-id = ["delete_alert_silence"]\n'
        f'parameters = {{ "path.silence_id" = "{silences[1]}" }}\n'
    )
    config.write_text(f"generation.max-examples = {EXAMPLES}\n" + CONFIG.read_text() + pinned)
    return config


def _schemathesis(server: Server, workdir: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    report = workdir / "report.json"
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(_config(workdir, (workdir.parent / "item_id").read_text())),
        "run",
        f"{server.url}/api/openapi.json",
        "--header",
        f"Authorization: Bearer {server.keys['admin']}",
        "--checks",
        "all",
        "--phases",
        ",".join(("examples", *PHASES)),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
        "--output-sanitize",
        "false",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    run = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    return run, json.loads(report.read_text()) if report.exists() else {}


def test_schemathesis_finds_nothing(api_server: Server, tmp_path: Path) -> None:
    workdir = tmp_path / "schemathesis"
    workdir.mkdir()
    run, report = _schemathesis(api_server, workdir)
    api_server.stop()  # flushes the log
    output = f"{run.stdout[-20_000:]}\n{run.stderr[-5_000:]}\nserver log:\n{api_server.log()[-5_000:]}"
    assert report, f"schemathesis wrote no report (exit {run.returncode}):\n{output}"
    assert report["failures"] == [], output
    assert report["errors"] == [], output
    assert run.returncode == 0, output
    operations = report["operations"]
    assert operations["tested"] == operations["selected"] == operations["total"] >= 8, operations
    for phase in PHASES:
        assert report["phases"][phase]["status"] == "success", (phase, report["phases"], output)
    assert {name: labels for name, labels in report["warnings"].items() if labels} == {}, output
    links = re.search(r"API Links:\s+(\d+) covered / (\d+) selected / (\d+) total", run.stdout)
    assert links, output
    # The random stateful phase follows the links from lists, creates and feedback (14 of 24 with this
    # seed) but seldom chains a successful label move after a prompt it created; those targets are
    # walked step by step in test_prompts_api.py.
    assert int(links[2]) == int(links[3]) >= MIN_LINKS_DECLARED, output
    assert int(links[1]) >= MIN_LINKS_FOLLOWED, f"the stateful phase followed too few links:\n{output}"
    assert "Traceback" not in api_server.log(), api_server.log()
