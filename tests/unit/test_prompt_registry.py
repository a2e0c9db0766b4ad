"""The prompt registry on SQLite and Postgres: versions, labels and rollback, files, diffs, experiments."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine

from llmops.prompts.experiments import ExperimentService, Variant, assign
from llmops.prompts.repository import PromptRepository
from llmops.prompts.services import InvalidPrompt, PromptNotFound, PromptService, Reference, parse_reference
from llmops.prompts.spec import MessageTemplate, PromptContent, VariableSpec


@pytest.fixture
def prompts(db: Engine) -> PromptService:
    return PromptService(PromptRepository(db))


def _content(system: str = "You are {{ tone }}.", **parameters: object) -> PromptContent:
    return PromptContent(
        kind="chat",
        messages=(
            MessageTemplate(role="system", content=system),
            MessageTemplate(role="user", content="{{ q }}"),
        ),
        variables={"tone": VariableSpec(default="kind"), "q": VariableSpec(required=True)},
        model="echo",
        parameters=dict(parameters),
    )


def test_versions_are_numbered_and_content_addressed(prompts: PromptService) -> None:
    first = prompts.create_version("support", _content(), message="first", author="ann")
    assert (first.version.number, first.created) == (1, True)
    again = prompts.create_version("support", _content(), message="the same again", author="bob")
    assert (again.version.number, again.created) == (1, False)
    assert again.version.message == "first"  # stored once, as first written
    second = prompts.create_version("support", _content(temperature=0.2), message="cooler")
    assert (second.version.number, second.created) == (2, True)
    assert second.version.content_hash != first.version.content_hash
    back = prompts.create_version("support", _content())
    assert (back.version.number, back.created) == (1, False)
    assert [version.number for version in prompts.versions("support")] == [1, 2]


def test_a_prompt_keeps_its_kind(prompts: PromptService) -> None:
    prompts.create_version("p", _content())
    text = PromptContent(kind="text", template="{{ q }}", variables={"q": VariableSpec()})
    with pytest.raises(InvalidPrompt, match="chat prompt"):
        prompts.create_version("p", text)


def test_invalid_content_is_refused_before_storing(prompts: PromptService) -> None:
    with pytest.raises(InvalidPrompt, match="undeclared variable 'mood'"):
        prompts.create_version("p", _content(system="Be {{ mood }}"))
    with pytest.raises(InvalidPrompt, match="name"):
        prompts.create_version("bad name!", _content())
    assert prompts.list_prompts() == []


def test_get_by_version_label_or_default(prompts: PromptService) -> None:
    prompts.create_version("p", _content())
    prompts.create_version("p", _content(temperature=0))
    assert prompts.get("p").number == 2  # no production label: the latest
    prompts.set_label("p", "production", 1, author="ann")
    assert prompts.get("p").number == 1
    assert prompts.get("p@production").number == 1
    assert prompts.get("p#2").number == 2
    assert prompts.get(Reference("p", version=2)).labels == ()
    assert prompts.get("p#1").labels == ("production",)
    with pytest.raises(PromptNotFound, match="no label 'staging'"):
        prompts.get("p@staging")
    with pytest.raises(PromptNotFound, match="no version 9"):
        prompts.get("p#9")
    with pytest.raises(PromptNotFound, match="not found"):
        prompts.get("nope")


def test_references_parse() -> None:
    assert parse_reference("a") == Reference("a")
    assert parse_reference("a@prod") == Reference("a", label="prod")
    assert parse_reference("a#3") == Reference("a", version=3)
    for bad in ("", "a@", "a#x", "a@b#1", "a b"):
        with pytest.raises(InvalidPrompt):
            parse_reference(bad)


def test_label_moves_are_deploys_and_rollbacks_walk_back(prompts: PromptService) -> None:
    for temperature in (0.1, 0.2, 0.3):
        prompts.create_version("p", _content(temperature=temperature))
    prompts.set_label("p", "production", 1, author="ann")
    prompts.set_label("p", "production", 2, author="bob")
    prompts.set_label("p", "production", 3, author="cy")
    assert prompts.rollback("p", "production", author="dee")["to_version"] == 2
    assert prompts.get("p@production").number == 2
    assert prompts.rollback("p", "production")["to_version"] == 1
    with pytest.raises(InvalidPrompt, match="no earlier version"):
        prompts.rollback("p", "production")
    prompts.set_label("p", "production", 3)
    assert prompts.rollback("p", "production")["to_version"] == 1
    history = prompts.history("p", "production")
    assert [(e["action"], e["from_version"], e["to_version"]) for e in history] == [
        ("deploy", None, 1),
        ("deploy", 1, 2),
        ("deploy", 2, 3),
        ("rollback", 3, 2),
        ("rollback", 2, 1),
        ("deploy", 1, 3),
        ("rollback", 3, 1),
    ]
    assert history[0]["author"] == "ann"
    assert history[3]["author"] == "dee"
    assert all(event["created_at"] is not None for event in history)


def test_labels_are_checked(prompts: PromptService) -> None:
    prompts.create_version("p", _content())
    with pytest.raises(PromptNotFound, match="no version 4"):
        prompts.set_label("p", "production", 4)
    with pytest.raises(InvalidPrompt, match="label"):
        prompts.set_label("p", "12", 1)
    with pytest.raises(PromptNotFound, match="no label"):
        prompts.rollback("p", "staging")
    prompts.set_label("p", "staging", 1)
    prompts.remove_label("p", "staging")
    assert prompts.labels("p") == []


def test_diff_shows_template_and_parameter_changes(prompts: PromptService) -> None:
    prompts.create_version("p", _content(temperature=0.2, max_tokens=100))
    prompts.create_version(
        "p", _content(system="You are {{ tone }} and brief.", temperature=0.7, stop=["\n"])
    )
    diff = prompts.diff("p", 1, 2)
    assert "parameters.temperature: 0.2 -> 0.7" in diff.changes
    assert "parameters.max_tokens: removed (was 100)" in diff.changes
    assert "parameters.stop: added ['\\n']" in diff.changes
    assert "-You are {{ tone }}." in diff.text
    assert "+You are {{ tone }} and brief." in diff.text
    assert prompts.diff("p", 1, 1).text == []


def _write(folder: Path, name: str, **fields: object) -> None:
    data = {
        "name": name,
        "kind": "chat",
        "messages": [{"role": "system", "content": "You are a {{ tone }} agent for {{ product }}."}],
        "variables": {"tone": {"default": "friendly"}, "product": {"required": True}},
        "model": "echo",
        "parameters": {"temperature": 0.2},
        **fields,
    }
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))


def test_push_twice_creates_nothing_new_and_pull_round_trips(prompts: PromptService, tmp_path: Path) -> None:
    source = tmp_path / "prompts"
    source.mkdir()
    _write(source, "support", labels=["staging"], message="first", tags=["support"])
    _write(source, "triage")
    first = prompts.push_dir(source, author="ci")
    assert [(r.version.name, r.version.number, r.created, r.labels_moved) for r in first] == [
        ("support", 1, True, ("staging",)),
        ("triage", 1, True, ()),
    ]
    revision = prompts.revision()
    second = prompts.push_dir(source, author="ci")
    assert [(r.created, r.labels_moved) for r in second] == [(False, ()), (False, ())]
    assert prompts.revision() == revision  # nothing changed, nothing for replicas to reload
    pulled = tmp_path / "pulled"
    prompts.pull_dir(pulled)
    assert sorted(path.name for path in pulled.iterdir()) == ["support.yaml", "triage.yaml"]
    assert yaml.safe_load((pulled / "support.yaml").read_text())["labels"] == ["staging"]
    assert [r.created for r in prompts.push_dir(pulled)] == [False, False]


def test_push_is_all_or_nothing(prompts: PromptService, tmp_path: Path) -> None:
    _write(tmp_path, "good")
    (tmp_path / "bad.yaml").write_text(
        "name: bad\nkind: chat\nmessages:\n  - {role: user, content: '{{ x }'}\n"
    )
    with pytest.raises(InvalidPrompt, match="bad"):
        prompts.push_dir(tmp_path)
    assert prompts.list_prompts() == []
    (tmp_path / "bad.yaml").write_text("name: [not, a, name]\n")
    with pytest.raises(InvalidPrompt, match=r"bad\.yaml: name"):
        prompts.push_dir(tmp_path)
    with pytest.raises(InvalidPrompt, match="not a folder"):
        prompts.push_dir(tmp_path / "missing")


def test_every_change_bumps_the_revision(prompts: PromptService) -> None:
    start = prompts.revision()
    prompts.create_version("p", _content())
    after_create = prompts.revision()
    prompts.set_label("p", "production", 1)
    after_label = prompts.revision()
    assert start < after_create < after_label


def test_render_through_the_registry(prompts: PromptService) -> None:
    prompts.create_version("p", _content())
    version, rendered = prompts.render("p", {"q": "hello"})
    assert version.number == 1
    assert rendered.messages == [
        {"role": "system", "content": "You are kind."},
        {"role": "user", "content": "hello"},
    ]
    with pytest.raises(InvalidPrompt, match="missing required variable 'q'"):
        prompts.render("p", {})


# --- experiments -----------------------------------------------------------------------------------


@pytest.fixture
def experiments(db: Engine, prompts: PromptService) -> ExperimentService:
    return ExperimentService(db, prompts, PromptRepository(db))


def test_experiment_life_cycle(prompts: PromptService, experiments: ExperimentService) -> None:
    prompts.create_version("p", _content())
    prompts.create_version("p", _content(temperature=0))
    prompts.set_label("p", "production", 1)
    experiment = experiments.create("cooler", "p", [("a", 1, 1), ("b", 2, 1)], author="ann")
    assert experiment.status == "running"
    assert experiments.running_for("p", "production") == experiment
    with pytest.raises(InvalidPrompt, match="already runs"):
        experiments.create("again", "p", [("a", 1, 1), ("b", 2, 1)])
    promoted = experiments.promote("cooler", "b", author="ann")
    assert (promoted.status, promoted.winner) == ("promoted", "b")
    assert prompts.get("p@production").number == 2
    assert experiments.running_for("p", "production") is None
    with pytest.raises(InvalidPrompt, match="not running"):
        experiments.stop("cooler")
    stopped = experiments.stop(experiments.create("next", "p", [("a", 1, 1), ("b", 2, 3)]).id)
    assert stopped.status == "stopped"
    assert prompts.get("p@production").number == 2  # stopping leaves the label alone


def test_experiment_validation(prompts: PromptService, experiments: ExperimentService) -> None:
    prompts.create_version("p", _content())
    with pytest.raises(InvalidPrompt, match="at least two"):
        experiments.create("x", "p", [("a", 1, 1)])
    with pytest.raises(PromptNotFound, match="no version 7"):
        experiments.create("x", "p", [("a", 1, 1), ("b", 7, 1)])
    with pytest.raises(InvalidPrompt, match="weight"):
        experiments.create("x", "p", [("a", 1, 1), ("b", 1, 0)])
    with pytest.raises(InvalidPrompt, match="differ"):
        experiments.create("x", "p", [("a", 1, 1), ("a", 1, 1)])
    with pytest.raises(PromptNotFound):
        experiments.get("missing")


def test_sticky_assignment_follows_the_weights() -> None:
    variants = (Variant("a", 1, 1.0), Variant("b", 2, 3.0))
    rng = random.Random(1)
    first = {f"user-{n}": assign("exp_1", f"user-{n}", variants, rng).name for n in range(10_000)}
    again = {f"user-{n}": assign("exp_1", f"user-{n}", variants, rng).name for n in range(10_000)}
    assert first == again
    shares = Counter(first.values())
    assert abs(shares["b"] / 10_000 - 0.75) < 0.02
    other = {user: assign("exp_2", user, variants, rng).name for user in first}
    assert other != first  # another experiment shuffles users anew
