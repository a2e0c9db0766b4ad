"""Recipes: YAML, files, lists and CLI specs; one-line errors naming the step; the normalised form."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from llmops.datasets.cleaning.base import BUILTIN_STEPS, CleaningError, StepContext, StepRegistry
from llmops.datasets.cleaning.recipe import Recipe, RecipeStep

ISSUE_RECIPE = """
steps:
  - normalize_unicode: {form: NFKC}
  - clean_whitespace: {}
  - drop_empty: {fields: [input]}
  - dedup_exact: {fields: [input, expected]}
  - dedup_near: {fields: [input], threshold: 0.8, num_perm: 128, shingle: 5}
  - pii: {fields: [input, expected], strategy: tag}
"""


def registry() -> StepRegistry:
    return StepRegistry(load_plugins=False)


def test_the_issue_recipe_parses_in_order() -> None:
    recipe = Recipe.from_yaml(ISSUE_RECIPE)
    assert [step.name for step in recipe.steps] == [
        "normalize_unicode",
        "clean_whitespace",
        "drop_empty",
        "dedup_exact",
        "dedup_near",
        "pii",
    ]
    assert recipe.steps[4] == RecipeStep(
        "dedup_near", {"fields": ["input"], "threshold": 0.8, "num_perm": 128, "shingle": 5}
    )


def test_bare_names_null_params_and_a_top_level_list() -> None:
    recipe = Recipe.from_yaml("- lowercase\n- clean_whitespace:\n- strip_html: {fields: input}\n")
    assert recipe.steps == (
        RecipeStep("lowercase"),
        RecipeStep("clean_whitespace"),
        RecipeStep("strip_html", {"fields": "input"}),
    )
    assert Recipe.parse(["lowercase", {"drop_empty": {"fields": ["input"]}}]).steps[1].params == {
        "fields": ["input"]
    }


def test_from_file_and_parse_of_a_path(tmp_path: Path) -> None:
    path = tmp_path / "clean.yaml"
    path.write_text("steps:\n  - lowercase\n", encoding="utf-8")
    assert Recipe.parse(path) == Recipe.from_file(str(path)) == Recipe((RecipeStep("lowercase"),))
    with pytest.raises(CleaningError, match=r"cannot read recipe .*missing.yaml: No such file"):
        Recipe.from_file(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "steps:\n  - lowercase\n  - drop_empty: {fields: [input]\n",
            r"^recipe: not valid YAML: line \d+, column \d+: ",
        ),
        ("steps: lowercase\n", r"^recipe: expected a list of steps .*got the text 'lowercase'"),
        ("steps: []\n", r"^recipe: the recipe has no steps$"),
        ("", r"^recipe: expected a list of steps .*got nothing"),
        ("stepz:\n  - lowercase\n", r"^recipe: unknown top-level key\(s\) stepz; expected 'steps'"),
        (
            "steps:\n  - lowercase\n  - 42\n",
            r"^recipe step 2: expected a step name or \{name: \{params\}\}, got int 42",
        ),
        (
            "steps:\n  - drop_empty:\n    fields: [input]\n",
            r"^recipe step 1: a step is a mapping with one key \(its name\), got keys drop_empty, fields; "
            "indent the parameters",
        ),
        (
            "steps:\n  - filter_length: 5\n",
            r"^recipe step 1 \(filter_length\): parameters must be a mapping, got int 5",
        ),
    ],
)
def test_shape_errors_are_one_line_naming_the_step(text: str, message: str) -> None:
    with pytest.raises(CleaningError, match=message) as caught:
        Recipe.from_yaml(text)
    assert "\n" not in str(caught.value)


def test_yaml_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("steps:\n  - lowercase\n  - strip_html: x: y\n", encoding="utf-8")
    message = (
        rf"^{re.escape(str(path))}: not valid YAML: line 3, column 18: mapping values are not allowed here$"
    )
    with pytest.raises(CleaningError, match=message):
        Recipe.from_file(path)


def test_build_names_unknown_steps_with_a_suggestion_and_the_known_ones() -> None:
    recipe = Recipe.from_data(["lowercase", "normalise_unicode"])
    with pytest.raises(CleaningError) as caught:
        recipe.build(registry(), StepContext())
    message = str(caught.value)
    assert message.startswith("recipe step 2: unknown cleaning step 'normalise_unicode' ")
    assert "(did you mean 'normalize_unicode'?); known: " in message
    assert "clean_whitespace, correct_spelling, dedup_exact, dedup_near, drop_empty" in message


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            {"normalize_unicode": {"form": "NFX"}},
            r"^recipe step 2: step 'normalize_unicode': form: Input should be",
        ),
        (
            {"filter_length": {"min": 9, "max": 1}},
            r"^recipe step 2: step 'filter_length': params: min \(9\) is above",
        ),
        (
            {"clean_whitespace": {"colour": "red"}},
            r"^recipe step 2: step 'clean_whitespace': colour: Extra inputs",
        ),
    ],
)
def test_build_reports_parameter_errors_by_step_number(step: dict[str, Any], message: str) -> None:
    with pytest.raises(CleaningError, match=message):
        Recipe.from_data(["lowercase", step]).build(registry(), StepContext())


def test_validated_fills_defaults_and_round_trips_through_to_dict() -> None:
    recipe = Recipe.from_data(["clean_whitespace", {"dedup_exact": {"fields": "input"}}, "drop_empty"])
    normalised = recipe.validated(registry(), StepContext())
    data = normalised.to_dict()
    assert data["steps"][0] == {
        "clean_whitespace": {
            "fields": ["input", "messages", "expected", "completion", "prompt"],
            "keep_newlines": True,
        }
    }
    assert data["steps"][1] == {"dedup_exact": {"fields": ["input"], "normalise": False, "keep": "first"}}
    assert data["steps"][2]["drop_empty"]["require"] == "any"
    assert Recipe.from_data(data).validated(registry(), StepContext()) == normalised
    assert recipe.to_dict() == {
        "steps": [{"clean_whitespace": {}}, {"dedup_exact": {"fields": "input"}}, {"drop_empty": {}}]
    }


def test_from_cli_syntax() -> None:
    recipe = Recipe.from_cli(
        [
            "normalize_unicode",
            "dedup_exact:fields=input,expected",
            "filter_length:unit=words,min=3,max=400",
            "filter_outliers:method=zscore,z=2.5,fields=input|expected",
            "clean_whitespace:keep_newlines=false",
            "drop_empty:fields=input",
            "pii:strategy=tag,model=null",
        ]
    )
    assert [step.params for step in recipe.steps] == [
        {},
        {"fields": ["input", "expected"]},
        {"unit": "words", "min": 3, "max": 400},
        {"method": "zscore", "z": 2.5, "fields": ["input", "expected"]},
        {"keep_newlines": False},
        {"fields": "input"},
        {"strategy": "tag", "model": None},
    ]
    steps = Recipe(recipe.steps[:6]).build(registry(), StepContext())
    assert steps[5].params.fields == ["input"]  # a single value where a list is expected


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([], "no cleaning steps given"),
        ([":x=1"], r"--step 1 \(':x=1'\): missing the step name"),
        (
            ["lowercase", "filter_length:min"],
            r"--step 2 \('filter_length:min'\): expected key=value, got 'min'",
        ),
        (["filter_length:=3"], r"--step 1 .*: '=3' has no parameter name"),
    ],
)
def test_from_cli_errors(specs: list[str], message: str) -> None:
    with pytest.raises(CleaningError, match=message):
        Recipe.from_cli(specs)


def test_cli_recipe_parameter_errors_surface_at_build() -> None:
    with pytest.raises(CleaningError, match=r"^recipe step 1: step 'filter_length': unit: Input should be"):
        Recipe.from_cli(["filter_length:unit=lines,max=3"]).build(registry(), StepContext())


def test_the_cleaning_steps_doc_recipe_parses_and_documents_these_steps() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "cleaning-steps.md").read_text(encoding="utf-8")
    recipe = Recipe.from_yaml(doc.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert {step.name for step in recipe.steps} <= set(BUILTIN_STEPS)
    documented = set(re.findall(r"^### `(\w+)`$", doc, flags=re.M))
    assert {"normalize_unicode", "clean_whitespace", "strip_html", "lowercase"} <= documented
    assert {"drop_empty", "filter_length", "filter_outliers", "dedup_exact"} <= documented
    assert documented <= set(BUILTIN_STEPS)
