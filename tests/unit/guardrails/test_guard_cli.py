"""`llmops guardrails`: list, add, remove and test rules from the command line; the guide's example."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from llmops.guardrails import GuardrailConfig, GuardrailRegistry
from llmops.guardrails.engine import GuardrailSet

LLMOPS = [sys.executable, "-m", "llmops"]
CONFIG = """
guardrails:
  - {name: no-secrets, type: secrets, stage: both, action: block}
  - {name: mask-pii, type: pii, stage: input, action: redact, models: ["gpt-*"]}
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "llmops.yaml").write_text(CONFIG)
    env = {
        "PATH": "/usr/bin:/bin",
        "LLMOPS_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
        "COLUMNS": "250",
    }
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    return subprocess.run(
        [*LLMOPS, "--database-url", database, "--config", str(tmp_path / "llmops.yaml"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_test_shows_each_decision_and_exits_3_on_a_block(tmp_path: Path) -> None:
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    done = _run(tmp_path, "guardrails", "test", "--model", "gpt-4o", f"mail jane@example.com {token}")
    assert done.returncode == 3, done.stderr
    assert re.search(r"no-secrets .*block .*github_token", done.stdout)
    assert re.search(r"mask-pii .*redact .*EMAIL_ADDRESS", done.stdout)
    assert token not in done.stdout
    quiet = _run(tmp_path, "guardrails", "test", "--model", "llama", "--json", "hello")
    assert quiet.returncode == 0, quiet.stderr
    assert [(d["guardrail"], d["action"]) for d in json.loads(quiet.stdout)] == [("no-secrets", "pass")]


def test_add_list_remove(tmp_path: Path) -> None:
    added = _run(
        tmp_path, "guardrails", "add", "words", "--type", "keywords", "--action", "flag",
        "--params", '{"deny": ["pineapple"]}', "--model", "echo",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    listed = _run(tmp_path, "guardrails", "list", "--json")
    assert [(rule["name"], rule["source"]) for rule in json.loads(listed.stdout)] == [
        ("no-secrets", "config"),
        ("mask-pii", "config"),
        ("words", "api"),
    ]
    tested = _run(tmp_path, "guardrails", "test", "--model", "echo", "--json", "I like pineapple")
    assert ("words", "flag") in [(d["guardrail"], d["action"]) for d in json.loads(tested.stdout)]
    assert _run(tmp_path, "guardrails", "remove", "words").returncode == 0
    assert "words" not in _run(tmp_path, "guardrails", "list").stdout


def test_bad_input_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    cases = [
        ("guardrails", "add", "x", "--type", "nope"),
        ("guardrails", "add", "x", "--type", "keywords", "--params", "{not json"),
        ("guardrails", "add", "x", "--type", "keywords", "--params", '{"deny": 3}'),
        ("guardrails", "add", "no-secrets", "--type", "secrets"),
        ("guardrails", "remove", "no-secrets"),
        ("guardrails", "remove", "missing"),
        ("guardrails", "test", "--stage", "middle", "hello"),
    ]
    for args in cases:
        done = _run(tmp_path, *args)
        assert done.returncode != 0, args
        assert done.stderr.startswith("error: "), (args, done.stderr)
        assert done.stderr.count("\n") == 1, (args, done.stderr)


def test_the_guide_configuration_builds() -> None:
    guide = (Path(__file__).parents[3] / "docs" / "guardrails.md").read_text()
    block = re.search(r"```yaml\n# llmops.yaml\n(.*?)```", guide, re.S)
    assert block is not None
    rules = yaml.safe_load(block.group(1))["guardrails"]
    built = GuardrailSet.build([GuardrailConfig.model_validate(rule) for rule in rules], GuardrailRegistry())
    assert len(built.rules) == len(rules) >= 10
    types = {rule.config.type for rule in built.rules}
    assert types >= {
        "pii",
        "secrets",
        "injection",
        "toxicity",
        "keywords",
        "regex",
        "length",
        "json",
        "judge",
    }
