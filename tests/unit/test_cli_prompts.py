"""`llmops prompts`: every command against a temporary SQLite database, in a subprocess as users run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

LLMOPS = [sys.executable, "-m", "llmops"]

SUPPORT: dict[str, Any] = {
    "name": "support",
    "kind": "chat",
    "description": "Answers customer questions.",
    "messages": [
        {"role": "system", "content": "You are a {{ tone }} support agent for {{ product }}."},
        {"role": "user", "content": "{{ question }}"},
    ],
    "variables": {
        "tone": {"default": "friendly"},
        "product": {"required": True},
        "question": {"required": True, "description": "The customer's question."},
        "examples": {"type": "list", "default": []},
    },
    "model": "echo",
    "parameters": {"temperature": 0.2, "max_tokens": 200},
    "tags": ["support"],
    "labels": ["staging"],
    "message": "First version.",
}
SUMMARY = {
    "name": "summary",
    "kind": "text",
    "template": "Summarise in {{ words }} words:\n{{ text }}",
    "variables": {"words": {"type": "integer", "default": 50}, "text": {"required": True}},
}


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    database = f"sqlite:///{tmp_path / 'cli.db'}"
    base = {"PATH": "/usr/bin:/bin", "LLMOPS_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)}
    return subprocess.run(
        [*LLMOPS, "--database-url", database, *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=tmp_path,
        timeout=60,
    )


def _ok(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = _run(tmp_path, *args, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _json(tmp_path: Path, *args: str) -> Any:
    return json.loads(_ok(tmp_path, *args, "--json"))


def _folder(tmp_path: Path, *prompts: dict[str, Any]) -> Path:
    folder = tmp_path / "prompts"
    folder.mkdir(exist_ok=True)
    for prompt in prompts:
        (folder / f"{prompt['name']}.yaml").write_text(yaml.safe_dump(prompt, sort_keys=False))
    return folder


def test_push_twice_creates_nothing_new_and_pull_round_trips(tmp_path: Path) -> None:
    folder = _folder(tmp_path, SUPPORT, SUMMARY)
    first = _run(tmp_path, "prompts", "push", str(folder), "--author", "ci")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["summary: created v1", "support: created v1; labels moved: staging"]
    assert first.stderr.strip() == "2 prompts, 2 new versions"
    again = _json(tmp_path, "prompts", "push", str(folder), "--author", "ci")
    assert [(item["name"], item["version"], item["created"], item["labels_moved"]) for item in again] == [
        ("summary", 1, False, []),
        ("support", 1, False, []),
    ]
    pulled = tmp_path / "pulled"
    assert _ok(tmp_path, "prompts", "pull", str(pulled)).splitlines() == [
        f"wrote {pulled / 'summary.yaml'}",
        f"wrote {pulled / 'support.yaml'}",
    ]
    written = yaml.safe_load((pulled / "support.yaml").read_text())
    assert (written["labels"], written["author"], written["tags"]) == (["staging"], "ci", ["support"])
    assert "unchanged v1" in _ok(tmp_path, "prompts", "push", str(pulled / "support.yaml"))
    changed = {**SUPPORT, "parameters": {"temperature": 0.7}, "labels": ["staging", "production"]}
    (pulled / "support.yaml").write_text(yaml.safe_dump(changed))
    assert _ok(tmp_path, "prompts", "push", str(pulled)).splitlines() == [
        "summary: unchanged v1",
        "support: created v2; labels moved: staging, production",
    ]


def test_the_author_comes_from_the_option_the_file_or_the_environment(tmp_path: Path) -> None:
    folder = _folder(tmp_path, SUMMARY, {**SUPPORT, "author": "ann"})
    _ok(tmp_path, "prompts", "push", str(folder / "support.yaml"), "--author", "bob")
    _ok(tmp_path, "prompts", "push", str(folder / "summary.yaml"), env={"USER": "cy"})
    assert _json(tmp_path, "prompts", "versions", "support")[0]["author"] == "ann"  # the file's own wins
    assert _json(tmp_path, "prompts", "versions", "summary")[0]["author"] == "cy"
    _ok(tmp_path, "prompts", "label", "summary", "production", "1", "--author", "dee")
    assert _json(tmp_path, "prompts", "history", "summary")[0]["author"] == "dee"


def test_list_show_and_versions(tmp_path: Path) -> None:
    _ok(tmp_path, "prompts", "push", str(_folder(tmp_path, SUPPORT, SUMMARY)))
    listed = _json(tmp_path, "prompts", "list")
    assert [(item["name"], item["kind"], item["latest_version"], item["labels"]) for item in listed] == [
        ("summary", "text", 1, {}),
        ("support", "chat", 1, {"staging": 1}),
    ]
    assert [item["name"] for item in _json(tmp_path, "prompts", "list", "--tag", "support")] == ["support"]
    assert [item["name"] for item in _json(tmp_path, "prompts", "list", "--search", "umm")] == ["summary"]
    table = _ok(tmp_path, "prompts", "list")
    assert "staging→v1" in table
    assert "summary" in table
    shown = _json(tmp_path, "prompts", "show", "support@staging")
    assert (shown["version"], shown["labels"], shown["model"], shown["tags"]) == (
        1,
        ["staging"],
        "echo",
        ["support"],
    )
    assert shown["variables"]["question"] == {
        "type": "string",
        "default": None,
        "required": True,
        "description": "The customer's question.",
    }
    text = _ok(tmp_path, "prompts", "show", "support#1")
    for expected in ("support v1 (chat)", '"First version."', "The customer's question.", "{{ product }}"):
        assert expected in text, text
    assert "Summarise in {{ words }} words:" in _ok(tmp_path, "prompts", "show", "summary")
    versions = _ok(tmp_path, "prompts", "versions", "support")
    assert "v1" in versions
    assert "First version." in versions


def test_create_quick_and_from_a_file(tmp_path: Path) -> None:
    assert _ok(tmp_path, "prompts", "create", "greet", "--user", "Hello {{ name }}", "-m", "hi").strip() == (
        "greet: created v1"
    )
    greet = _json(tmp_path, "prompts", "show", "greet")
    assert greet["messages"] == [{"role": "user", "content": "Hello {{ name }}"}]
    assert greet["variables"]["name"]["required"] is True
    assert greet["message"] == "hi"
    assert (
        _ok(tmp_path, "prompts", "create", "greet", "--user", "Hello {{ name }}").strip()
        == "greet: unchanged v1"
    )
    created = _ok(
        tmp_path,
        *("prompts", "create", "haiku", "--template", "A haiku on {{ topic }}", "--model", "echo"),
        *("-p", "temperature=0.9", "-p", 'stop=["\\n\\n"]', "-l", "production"),
    )
    assert created.strip() == "haiku: created v1; labels moved: production"
    haiku = _json(tmp_path, "prompts", "show", "haiku@production")
    assert (haiku["kind"], haiku["model"], haiku["parameters"]) == (
        "text",
        "echo",
        {"temperature": 0.9, "stop": ["\n\n"]},
    )
    nameless = {key: value for key, value in SUMMARY.items() if key != "name"}
    (tmp_path / "nameless.yaml").write_text(yaml.safe_dump(nameless))
    assert (
        _ok(tmp_path, "prompts", "create", "digest", "--file", "nameless.yaml").strip()
        == "digest: created v1"
    )
    assert _json(tmp_path, "prompts", "show", "digest")["template"] == SUMMARY["template"]


def test_labels_deploy_rollback_and_history(tmp_path: Path) -> None:
    for text in ("Hi {{ n }}", "Hello {{ n }}", "Hey {{ n }}"):
        _ok(tmp_path, "prompts", "create", "greet", "--user", text)
    assert _ok(tmp_path, "prompts", "label", "greet", "production", "1").strip() == "greet@production → v1"
    assert (
        _ok(tmp_path, "prompts", "label", "greet", "production", "v2").strip() == "greet@production: v1 → v2"
    )
    _ok(tmp_path, "prompts", "label", "greet", "production", "3")
    assert _ok(tmp_path, "prompts", "label", "greet", "production", "3").strip() == (
        "greet@production already points at v3"
    )
    assert _ok(tmp_path, "prompts", "rollback", "greet", "production").strip() == (
        "greet@production rolled back: v3 → v2"
    )
    assert _json(tmp_path, "prompts", "show", "greet")["version"] == 2
    assert _ok(tmp_path, "prompts", "rollback", "greet", "production").strip() == (
        "greet@production rolled back: v2 → v1"
    )
    refused = _run(tmp_path, "prompts", "rollback", "greet", "production")
    assert refused.returncode == 1
    assert refused.stderr == "error: label 'production' of 'greet' has no earlier version to roll back to\n"
    _ok(tmp_path, "prompts", "label", "greet", "staging", "3")
    assert (
        _ok(tmp_path, "prompts", "unlabel", "greet", "staging").strip()
        == "greet@staging removed (pointed at v3)"
    )
    history = _json(tmp_path, "prompts", "history", "greet", "--label", "production")
    assert [(e["action"], e["from_version"], e["to_version"]) for e in history] == [
        ("deploy", None, 1),
        ("deploy", 1, 2),
        ("deploy", 2, 3),
        ("rollback", 3, 2),
        ("rollback", 2, 1),
    ]
    table = _ok(tmp_path, "prompts", "history", "greet")
    assert "rollback" in table
    assert "remove" in table


def test_render_and_diff(tmp_path: Path) -> None:
    _ok(tmp_path, "prompts", "push", str(_folder(tmp_path, SUPPORT, SUMMARY)))
    rendered = _ok(
        tmp_path, "prompts", "render", "support", "--var", "product=Acme", "--var", 'question="why 42?"'
    )
    assert rendered == "[system]\nYou are a friendly support agent for Acme.\n[user]\nwhy 42?\n"
    (tmp_path / "vars.yaml").write_text("text: A long story.\nwords: 3\n")
    assert _ok(tmp_path, "prompts", "render", "summary", "--vars-file", "vars.yaml") == (
        "Summarise in 3 words:\nA long story.\n"
    )
    as_json = _json(tmp_path, "prompts", "render", "summary", "--vars-file", "vars.yaml", "--var", "words=7")
    assert (as_json["text"], as_json["version"], as_json["messages"]) == (
        "Summarise in 7 words:\nA long story.",
        1,
        None,
    )
    changed = {**SUPPORT, "messages": [{"role": "user", "content": "{{ question }} ({{ product }})"}]}
    _ok(tmp_path, "prompts", "push", str(_folder(tmp_path, {**changed, "parameters": {"temperature": 0.5}})))
    text = _ok(tmp_path, "prompts", "diff", "support", "1", "2")
    for line in (
        "parameters.temperature: 0.2 -> 0.5",
        "parameters.max_tokens: removed (was 200)",
        "-You are a {{ tone }} support agent for {{ product }}.",
        "+{{ question }} ({{ product }})",
    ):
        assert line in text, text
    data = _json(tmp_path, "prompts", "diff", "support", "v1", "v2")
    assert (data["from"], data["to"]) == (1, 2)
    assert "parameters.temperature: 0.2 -> 0.5" in data["changes"]
    assert "no changes" in _ok(tmp_path, "prompts", "diff", "support", "2", "2")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("prompts", "show", "nope"), "error: prompt 'nope' not found"),
        (("prompts", "show", "a b"), "error: not a prompt reference: 'a b'"),
        (("prompts", "show", "support@12"), "error: not a label: '12'"),
        (("prompts", "show", "support#9"), "error: prompt 'support' has no version 9"),
        (("prompts", "show", "support@production"), "error: prompt 'support' has no label 'production'"),
        (("prompts", "versions", "nope"), "error: prompt 'nope' not found"),
        (("prompts", "history", "nope"), "error: prompt 'nope' not found"),
        (
            ("prompts", "render", "support", "--var", "product=A"),
            "error: missing required variable 'question'",
        ),
        (
            ("prompts", "render", "support", "--var", "product=A", "--var", "question=q", "--var", "mood=x"),
            "error: variable 'mood' is not declared by this prompt",
        ),
        (
            ("prompts", "render", "support", "--var", "product=3", "--var", "question=q"),
            "error: variable 'product' must be of type string, got int",
        ),
        (("prompts", "render", "support", "--var", "product"), "error: --var: expected NAME=VALUE"),
        (("prompts", "render", "support", "--vars-file", "missing.yaml"), "error: --vars-file: No such file"),
        (
            ("prompts", "render", "support", "--vars-file", "list.yaml"),
            "error: --vars-file: list.yaml: expected",
        ),
        (("prompts", "label", "support", "production", "x"), "error: VERSION: expected a version number"),
        (("prompts", "label", "support", "production", "9"), "error: prompt 'support' has no version 9"),
        (("prompts", "label", "support", "123", "1"), "error: label: '123'"),
        (
            ("prompts", "rollback", "support", "production"),
            "error: prompt 'support' has no label 'production'",
        ),
        (
            ("prompts", "unlabel", "support", "production"),
            "error: prompt 'support' has no label 'production'",
        ),
        (("prompts", "diff", "support", "1", "4"), "error: prompt 'support' has no version 4"),
        (("prompts", "push", "missing"), "error: not a folder: missing"),
        (("prompts", "push", "broken.yaml"), "error: broken: messages[0] line 1: unexpected '}'"),
        (("prompts", "push", "list.yaml"), "error: list.yaml: expected a mapping"),
        (
            ("prompts", "push", "kind.yaml"),
            "error: prompt 'support' is a chat prompt; a version cannot make it text",
        ),
        (("prompts", "create", "x"), "error: give --file, --template, or --system and/or --user"),
        (
            ("prompts", "create", "x", "--template", "{{ a }", "--user", "b"),
            "error: a prompt has a --template",
        ),
        (("prompts", "create", "x", "--template", "{% if %}"), "error: template line 1:"),
        (
            ("prompts", "create", "x", "--template", "t", "-p", "model=m"),
            "error: x: parameters: parameters cannot set",
        ),
        (("prompts", "create", "x y", "--template", "t"), "error: name: String should match pattern"),
    ],
)
def test_bad_input_is_one_readable_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    _ok(tmp_path, "prompts", "push", str(_folder(tmp_path, SUPPORT)))
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    (tmp_path / "broken.yaml").write_text(
        yaml.safe_dump({"name": "broken", "messages": [{"role": "user", "content": "{{ x }"}]})
    )
    (tmp_path / "kind.yaml").write_text(yaml.safe_dump({"name": "support", "kind": "text", "template": "x"}))
    result = _run(tmp_path, *args)
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
