"""Prompt registry edges found while building its CLI and REST API, each on SQLite and Postgres.

What reaches the database fits its columns (no NUL, 64-bit integers, finite numbers, 32-bit version
numbers, short authors); names end where they seem to; a redeploy is no rollback step; conflicts are
their own error; render errors name the variable; hidden folders are not pushed.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine

from llmops.prompts.repository import PromptRepository
from llmops.prompts.services import InvalidPrompt, PromptConflict, PromptNotFound, PromptService
from llmops.prompts.spec import (
    LABEL_SCHEMA_PATTERN,
    MessageTemplate,
    PromptContent,
    VariableSpec,
    valid_label,
    valid_name,
)


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
        parameters=dict(parameters),
    )


def test_names_and_labels_end_where_they_seem_to() -> None:
    assert valid_name("support")
    assert valid_label("production")
    assert not valid_name("support\n")  # re's "$" also matches before a final newline
    assert not valid_label("production\n")


def test_the_schema_pattern_of_labels_is_valid_label() -> None:
    pattern = re.compile(LABEL_SCHEMA_PATTERN)
    rng = random.Random(7)
    samples = ["1", "12", "1a", "a1", "1.", "-a", "a-", "_", "prod", "v2.1", "2024-01", "0_0", "", "a b"]
    samples += ["".join(rng.choice("a1._- ") for _ in range(rng.randint(1, 6))) for _ in range(2000)]
    for label in samples:
        assert bool(pattern.fullmatch(label)) == valid_label(label), label


def test_a_name_with_a_newline_is_refused(prompts: PromptService) -> None:
    with pytest.raises(InvalidPrompt, match="name"):
        prompts.create_version("support\n", _content())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"system": "Hi\x00"}, r"messages\[0\]\.content: contains a NUL character"),
        ({"seed": 2**70}, "parameters.seed: number outside ±9007199254740991"),
        ({"temperature": math.nan}, "parameters.temperature: number is not finite"),
        ({"stop": ["a\x00"]}, r"parameters.stop\[0\]: contains a NUL"),
    ],
)
def test_content_the_database_cannot_keep_is_refused(
    prompts: PromptService, change: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        prompts.create_version("p", _content(**change))  # type: ignore[arg-type]
    assert prompts.list_prompts() == []


@pytest.mark.parametrize(
    ("about", "message"),
    [
        ({"message": "first\x00"}, "message: contains a NUL"),
        ({"author": "a" * 201}, "author: longer than 200"),
        ({"tags": ["ok", "bad\x00"]}, "tags:"),
        ({"tags": [""]}, "tags:"),
    ],
)
def test_what_is_said_about_a_version_fits_its_columns(
    prompts: PromptService, about: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidPrompt, match=message):
        prompts.create_version("p", _content(), **about)  # type: ignore[arg-type]
    assert prompts.list_prompts() == []


def test_a_long_author_of_a_move_is_refused(prompts: PromptService) -> None:
    prompts.create_version("p", _content())
    with pytest.raises(InvalidPrompt, match="author"):
        prompts.set_label("p", "production", 1, author="x" * 300)
    assert prompts.labels("p") == []


def test_version_numbers_beyond_the_column_are_not_found(prompts: PromptService) -> None:
    prompts.create_version("p", _content())
    with pytest.raises(PromptNotFound, match="no version 99999999999"):
        prompts.get("p#99999999999")
    with pytest.raises(PromptNotFound, match="no version"):
        prompts.set_label("p", "production", 2**40)
    with pytest.raises(PromptNotFound, match="no version"):
        prompts.diff("p", 1, 2**40)


def test_redeploying_the_same_version_is_no_step(prompts: PromptService, db: Engine) -> None:
    prompts.create_version("p", _content())
    prompts.create_version("p", _content(temperature=0))
    prompts.set_label("p", "production", 1)
    prompts.set_label("p", "production", 2)
    assert prompts.set_label("p", "production", 2) is None  # already there: nothing moves
    assert len(prompts.history("p", "production")) == 2
    # a history that holds a move to where the label was (older data) still walks back one version
    PromptRepository(db).move_label("p", "production", 2, action="deploy", author=None)
    assert prompts.rollback("p", "production")["to_version"] == 1


def test_conflicts_with_the_prompt_are_their_own_error(prompts: PromptService) -> None:
    prompts.create_version("p", _content())
    with pytest.raises(PromptConflict, match="chat prompt"):
        prompts.create_version("p", PromptContent(kind="text", template="x"))
    prompts.set_label("p", "production", 1)
    with pytest.raises(PromptConflict, match="no earlier version"):
        prompts.rollback("p", "production")


def test_render_errors_name_the_variable(prompts: PromptService) -> None:
    prompts.create_version("p", _content())
    with pytest.raises(InvalidPrompt) as missing:
        prompts.render("p", {})
    assert missing.value.param == "variables.q"
    with pytest.raises(InvalidPrompt) as undeclared:
        prompts.render("p", {"q": "x", "mood": "sad"})
    assert undeclared.value.param == "variables.mood"
    with pytest.raises(InvalidPrompt) as wrong:
        prompts.render("p", {"q": 3})
    assert wrong.value.param == "variables.q"
    assert str(wrong.value) == "variable 'q' must be of type string, got int"


def test_label_reads_and_removals_on_a_missing_prompt_say_so(prompts: PromptService) -> None:
    with pytest.raises(PromptNotFound, match="prompt 'nope' not found"):
        prompts.remove_label("nope", "production")
    with pytest.raises(PromptNotFound, match="prompt 'nope' not found"):
        prompts.label("nope", "production")
    prompts.create_version("p", _content(), tags=["support"])
    prompts.set_label("p", "staging", 1, author="ann")
    assert prompts.label("p", "staging")["updated_by"] == "ann"
    summary = prompts.prompt("p")
    assert (summary["latest_version"], summary["labels"], summary["tags"]) == (1, {"staging": 1}, ["support"])


def _write(folder: Path, name: str, **fields: object) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = {"name": name, "kind": "text", "template": "Hello {{ who }}", "variables": {"who": None}, **fields}
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(data))


def test_hidden_folders_are_not_pushed(prompts: PromptService, tmp_path: Path) -> None:
    _write(tmp_path, "greet")
    (tmp_path / ".github" / "workflows").mkdir(parents=True)
    (tmp_path / ".github" / "workflows" / "ci.yaml").write_text("on: push\njobs: {}\n")
    assert [result.version.name for result in prompts.push_dir(tmp_path)] == ["greet"]


def test_an_unstorable_file_is_one_line(prompts: PromptService, tmp_path: Path) -> None:
    _write(tmp_path, "greet", parameters={"seed": 2**70})
    with pytest.raises(InvalidPrompt) as refused:
        prompts.push_dir(tmp_path)
    assert str(refused.value) == "greet: parameters.seed: number outside ±9007199254740991"
