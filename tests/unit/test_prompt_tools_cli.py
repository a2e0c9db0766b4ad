"""`llmops prompts expand` and `llmops prompts try` as a user runs them: a subprocess, a temp database
and a temp llmops.yaml with echo models."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmops.prompts.spec import MessageTemplate, PromptContent, VariableSpec
from llmops.services import open_store
from llmops.settings import load_settings

LLMOPS = [sys.executable, "-m", "llmops"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """llmops.yaml with echo models (one priced, one unreachable) and a prompt in the database."""
    models = [
        {"name": "echo", "provider": "echo"},
        {"name": "priced", "provider": "echo", "input_price_per_1m": 1.0, "output_price_per_1m": 2.0},
        {"name": "down", "provider": "openai", "base_url": f"http://127.0.0.1:{_closed_port()}/v1"},
    ]
    (tmp_path / "llmops.yaml").write_text(yaml.safe_dump({"models": models}))
    store = open_store(load_settings(tmp_path / "llmops.yaml", database_url=_database(tmp_path)))
    try:
        content = PromptContent(
            kind="chat",
            messages=(
                MessageTemplate(role="system", content="You are a {{ role }}."),
                MessageTemplate(role="user", content="Tell me about {{ product }} in {{ words }} words."),
            ),
            variables={
                "role": VariableSpec(default="seller"),
                "product": VariableSpec(required=True),
                "words": VariableSpec(type="integer", default=10),
            },
            model="echo",
        )
        store.prompts.create_version("pitch", content, labels=["production"])
    finally:
        store.close()
    return tmp_path


def _database(folder: Path) -> str:
    return f"sqlite:///{folder / 'cli.db'}"


def _run(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "LLMOPS_HOME": str(folder / "home"),
        "HOME": str(folder),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [*LLMOPS, "--database-url", _database(folder), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=folder,
        timeout=120,
    )


def _traces(folder: Path, ids: list[str]) -> list[dict[str, Any]]:
    store = open_store(load_settings(folder / "llmops.yaml", database_url=_database(folder)))
    try:
        return [store.traces.get(trace_id) for trace_id in ids]
    finally:
        store.close()


def test_expand_writes_the_product_as_jsonl(workdir: Path) -> None:
    (workdir / "vars.yaml").write_text("role: [teacher, pirate]\nproduct: [tea, coffee, cocoa]\nwords: 5\n")
    result = _run(workdir, "prompts", "expand", "pitch", "--vars", "vars.yaml", "--out", "cases.jsonl")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().endswith("wrote 6 rows of 6 combinations of pitch#1 to cases.jsonl")
    rows = [json.loads(line) for line in (workdir / "cases.jsonl").read_text().splitlines()]
    assert [(row["variables"]["role"], row["variables"]["product"]) for row in rows] == [
        ("teacher", "tea"),
        ("teacher", "coffee"),
        ("teacher", "cocoa"),
        ("pirate", "tea"),
        ("pirate", "coffee"),
        ("pirate", "cocoa"),
    ]
    assert rows[5]["messages"] == [
        {"role": "system", "content": "You are a pirate."},
        {"role": "user", "content": "Tell me about cocoa in 5 words."},
    ]
    assert rows[5]["metadata"] == {"prompt": "pitch", "version": 1, "combination": 5}


def test_expand_samples_with_a_seed(workdir: Path) -> None:
    (workdir / "vars.json").write_text(
        json.dumps({"product": [f"p{i}" for i in range(1000)], "words": [1, 2, 3]})
    )
    args = ("prompts", "expand", "pitch@production", "--vars", "vars.json", "--sample", "7", "--seed", "11")
    first = _run(workdir, *args, "--out", "-")
    second = _run(workdir, *args, "--out", "-")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    rows = [json.loads(line) for line in first.stdout.splitlines()]
    assert len({row["metadata"]["combination"] for row in rows}) == 7
    assert "a sample of 7 rows of 3000 combinations" in first.stderr
    limited = _run(
        workdir, "prompts", "expand", "pitch", "--vars", "vars.json", "--limit", "4", "-o", "few.jsonl"
    )
    assert limited.returncode == 0, limited.stderr
    assert len((workdir / "few.jsonl").read_text().splitlines()) == 4


def test_expand_to_a_reader_that_stops_early_is_no_error(workdir: Path) -> None:
    """`llmops prompts expand ... -o - | head -1`: the closed pipe ends the run quietly, exit 0."""
    (workdir / "vars.json").write_text(json.dumps({"product": [f"p{i}" for i in range(20_000)]}))
    expand = subprocess.Popen(
        [*LLMOPS, "--database-url", _database(workdir), "prompts", "expand", "pitch"]
        + ["--vars", "vars.json", "--out", "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=workdir,
        env={"PATH": "/usr/bin:/bin", "LLMOPS_HOME": str(workdir / "home"), "HOME": str(workdir)},
    )
    assert expand.stdout is not None
    assert expand.stderr is not None
    first = expand.stdout.readline()
    expand.stdout.close()  # what `head -1` does after its line
    assert expand.wait(timeout=120) == 0
    assert json.loads(first)["variables"]["product"] == "p0"
    assert "Broken pipe" not in expand.stderr.read().decode()


def test_try_compares_models_and_temperatures(workdir: Path) -> None:
    result = _run(
        workdir,
        "prompts",
        "try",
        "pitch",
        "--var",
        "product=tea",
        "-v",
        "words=3",
        "-m",
        "echo",
        "-m",
        "priced",
        "-m",
        "down",
        "--temperature",
        "0",
        "--temperature",
        "0.8",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    cells = run["cells"]
    assert [(cell["model"], cell["parameters"]) for cell in cells] == [
        (model, {"temperature": temperature})
        for model in ("echo", "priced", "down")
        for temperature in (0.0, 0.8)
    ]
    assert [cell["status"] for cell in cells] == ["ok", "ok", "ok", "ok", "error", "error"]
    assert cells[0]["text"] == "Tell me about tea in 3 words."  # words=3 was read as JSON: an integer
    assert cells[2]["cost"] > 0
    assert cells[4]["error"]
    traces = _traces(workdir, [cell["trace_id"] for cell in cells])  # stored before the command ended
    assert {trace["attributes"]["playground"] for trace in traces} == {run["id"]}
    assert [trace["prompt_name"] for trace in traces] == ["pitch"] * 6
    assert [trace["status"] for trace in traces] == ["ok"] * 4 + ["error"] * 2


def test_try_prints_a_table(workdir: Path) -> None:
    result = _run(
        workdir,
        "prompts",
        "try",
        "-M",
        "system=be brief",
        "-M",
        "user=hello table",
        "-m",
        "echo",
        "-m",
        "nope",
    )
    assert result.returncode == 0, result.stderr
    assert "messages · run " in result.stdout
    assert "hello table" in result.stdout
    assert "error 404: the model 'nope' does not exist" in result.stdout
    for heading in ("model", "parameters", "answer", "ms", "tokens", "cost $", "trace id"):
        assert heading in result.stdout


def test_try_with_the_prompt_model_and_a_vars_file(workdir: Path) -> None:
    (workdir / "vars.yaml").write_text("product: kites\nrole: pilot\n")
    result = _run(
        workdir, "prompts", "try", "pitch#1", "--vars-file", "vars.yaml", "--var", "role=captain", "--json"
    )
    assert result.returncode == 0, result.stderr
    run = json.loads(result.stdout)
    assert run["prompt"] == {"name": "pitch", "version": 1, "label": None}
    assert run["messages"][0]["content"] == "You are a captain."  # --var wins over the file
    assert [cell["model"] for cell in run["cells"]] == ["echo"]  # the prompt's model


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("prompts", "try"), "error: give a prompt reference or --message ROLE=CONTENT (not both)"),
        (("prompts", "try", "pitch", "-M", "user=x"), "error: give a prompt reference or --message"),
        (
            ("prompts", "try", "-M", "robot=x", "-m", "echo"),
            "error: --message 'robot=x': expected ROLE=CONTENT",
        ),
        (("prompts", "try", "-M", "user=x"), "error: no model: name one or more"),
        (("prompts", "try", "pitch"), "error: missing required variable 'product'"),
        (("prompts", "try", "pitch", "--var", "product"), "error: --var: expected NAME=VALUE, got 'product'"),
        (("prompts", "try", "nothing"), "error: prompt 'nothing' not found"),
        (("prompts", "try", "pitch@staging", "--var", "product=x"), "error: prompt 'pitch' has no label"),
        (
            (
                "prompts",
                "try",
                "pitch",
                "--var",
                "product=x",
                "-m",
                "a",
                "-m",
                "b",
                "-m",
                "c",
                "-m",
                "d",
                "-m",
                "e",
            )
            + ("--temperature", "0", "--temperature", "1", "--max-tokens", "1", "--max-tokens", "2")
            + ("--max-tokens", "3", "--max-tokens", "4"),
            "error: 5 models x 8 parameter sets is 40 cells; at most 32",
        ),
        (("prompts", "expand", "pitch", "--vars", "missing.yaml", "-o", "x.jsonl"), "error: missing.yaml:"),
        (
            ("prompts", "expand", "nothing", "--vars", "v.yaml", "-o", "x.jsonl"),
            "error: prompt 'nothing' not found",
        ),
        (
            ("prompts", "expand", "pitch", "--vars", "v.yaml", "-o", "x.jsonl", "--sample", "0"),
            "error: sample must be at least 1",
        ),
    ],
)
def test_bad_input_is_one_line(workdir: Path, args: tuple[str, ...], message: str) -> None:
    (workdir / "v.yaml").write_text("product: [a, b]\n")
    result = _run(workdir, *args)
    assert result.returncode == 1, result.stdout
    assert result.stderr.strip().startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_expand_names_the_bad_variable_and_row(workdir: Path) -> None:
    (workdir / "vars.yaml").write_text("product: [a]\nmood: [happy]\n")
    result = _run(workdir, "prompts", "expand", "pitch", "--vars", "vars.yaml", "-o", "x.jsonl")
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: vars.yaml: 'mood' is not a variable of this prompt (declared: product, role, words)"
    )
    assert not (workdir / "x.jsonl").exists()
