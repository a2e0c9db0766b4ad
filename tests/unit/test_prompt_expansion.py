"""Parameterised expansion: products in order, seeded samples without replacement, huge products, errors."""

from __future__ import annotations

import io
import itertools
import json
import time
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from llmops.prompts.expansion import (
    ExpansionError,
    VariableGrid,
    expand,
    planned_rows,
    read_vars_file,
    variable_grid,
)
from llmops.prompts.services import InvalidPrompt, PromptVersion
from llmops.prompts.spec import MessageTemplate, PromptContent, VariableSpec


def _version(content: PromptContent, name: str = "tutor", number: int = 3) -> PromptVersion:
    return PromptVersion(name, number, content.content_hash(), content, None, None, None)


CHAT = _version(
    PromptContent(
        kind="chat",
        messages=(
            MessageTemplate(role="system", content="You are a {{ role }} for {{ audience }}."),
            MessageTemplate(role="user", content="Explain {{ domain }} in a {{ style }} way."),
        ),
        variables={
            "role": VariableSpec(required=True),
            "domain": VariableSpec(required=True),
            "style": VariableSpec(default="plain"),
            "audience": VariableSpec(default="adults"),
        },
    )
)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_rows_are_the_product_in_order(tmp_path: Path) -> None:
    values = {"role": ["teacher", "pirate"], "domain": ["math", "art", "music"], "style": "terse"}
    grid = variable_grid(CHAT.content, values)
    assert grid.total == 6
    out = tmp_path / "cases.jsonl"
    result = expand(CHAT, grid, out)
    assert (result.rows, result.combinations, result.sampled) == (6, 6, False)
    rows = _rows(out)
    expected = list(itertools.product(values["role"], values["domain"]))  # the last variable varies fastest
    assert [(row["variables"]["role"], row["variables"]["domain"]) for row in rows] == expected
    assert all(row["variables"]["style"] == "terse" for row in rows)
    assert rows[4] == {
        "variables": {"role": "pirate", "domain": "art", "style": "terse"},
        "messages": [
            {"role": "system", "content": "You are a pirate for adults."},  # a default fills the rest
            {"role": "user", "content": "Explain art in a terse way."},
        ],
        "metadata": {"prompt": "tutor", "version": 3, "combination": 4},
    }
    assert not (tmp_path / "cases.jsonl.partial").exists()


def test_a_text_prompt_row_has_its_text_and_one_user_message() -> None:
    text = _version(
        PromptContent(
            kind="text", template="Q: {{ n }} + {{ n }}", variables={"n": VariableSpec(type="integer")}
        )
    )
    stream = io.BytesIO()
    expand(text, variable_grid(text.content, {"n": [1, 2]}), stream)
    rows = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [row["prompt"] for row in rows] == ["Q: 1 + 1", "Q: 2 + 2"]
    assert rows[1]["messages"] == [{"role": "user", "content": "Q: 2 + 2"}]


def test_combination_decodes_mixed_radix() -> None:
    grid = VariableGrid(("a", "b", "c"), ((0, 1), ("x", "y", "z"), (True, False)))
    decoded = [grid.combination(index) for index in range(grid.total)]
    assert decoded == [{"a": a, "b": b, "c": c} for a, b, c in itertools.product(*grid.values)]
    with pytest.raises(IndexError):
        grid.combination(grid.total)


def test_a_sample_is_distinct_seeded_and_stable(tmp_path: Path) -> None:
    values = {"role": [f"r{i}" for i in range(6)], "domain": [f"d{i}" for i in range(5)], "style": ["a", "b"]}
    grid = variable_grid(CHAT.content, values)
    first = expand(CHAT, grid, tmp_path / "one.jsonl", sample=20, seed=7)
    assert (first.rows, first.combinations, first.sampled) == (20, 60, True)
    one = _rows(tmp_path / "one.jsonl")
    expand(CHAT, grid, tmp_path / "two.jsonl", sample=20, seed=7)
    assert _rows(tmp_path / "two.jsonl") == one  # the same seed, the same rows
    expand(CHAT, grid, tmp_path / "other.jsonl", sample=20, seed=8)
    assert _rows(tmp_path / "other.jsonl") != one
    indices = [row["metadata"]["combination"] for row in one]
    assert len(set(indices)) == 20
    assert indices == sorted(indices)
    combos = {json.dumps(row["variables"], sort_keys=True) for row in one}
    assert len(combos) == 20
    for row in one:
        assert row["variables"] == grid.combination(row["metadata"]["combination"])


def test_a_sample_as_large_as_the_product_is_the_product() -> None:
    grid = variable_grid(CHAT.content, {"role": ["a", "b"], "domain": ["x", "y"]})
    assert grid.sample_indices(10, seed=1) == [0, 1, 2, 3]
    assert planned_rows(grid, sample=10, limit=None) == 4
    assert planned_rows(grid, sample=3, limit=2) == 2


@pytest.mark.parametrize("values_per_variable", [10, 20])  # 10^12 combinations; 20^16 is past sys.maxsize
def test_huge_products_are_sampled_cheaply(values_per_variable: int) -> None:
    names = [f"v{i}" for i in range(12 if values_per_variable == 10 else 16)]
    content = PromptContent(
        kind="text",
        template=" ".join(f"{{{{ {name} }}}}" for name in names),
        variables={name: VariableSpec(type="integer") for name in names},
    )
    version = _version(content)
    grid = variable_grid(content, {name: list(range(values_per_variable)) for name in names})
    assert grid.total == values_per_variable ** len(names)
    started = time.monotonic()
    stream = io.BytesIO()
    result = expand(version, grid, stream, sample=200, seed=42)
    assert time.monotonic() - started < 5
    rows = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert result.rows == len(rows) == 200
    assert len({row["metadata"]["combination"] for row in rows}) == 200
    if grid.total > 2**53:  # past what JSON readers hold exactly, the index is written as a string
        assert all(isinstance(row["metadata"]["combination"], str) for row in rows)
    for row in rows:
        digits = [row["variables"][name] for name in names]
        # combination i is i written in base `values_per_variable`, one digit per variable
        index, expected = int(row["metadata"]["combination"]), 0
        for digit in digits:
            expected = expected * values_per_variable + digit
        assert index == expected
        assert row["prompt"] == " ".join(map(str, digits))


def test_limit_stops_a_product_too_large_to_write() -> None:
    names = [f"v{i}" for i in range(10)]
    content = PromptContent(
        kind="text", template="{{ v0 }}", variables={name: VariableSpec() for name in names}
    )
    grid = variable_grid(content, {name: [str(i) for i in range(100)] for name in names})  # 10^20 rows
    stream = io.BytesIO()
    result = expand(_version(content), grid, stream, limit=5)
    assert result.rows == 5
    assert result.combinations == 10**20
    assert [json.loads(line)["metadata"]["combination"] for line in stream.getvalue().splitlines()] == [
        0,
        1,
        2,
        3,
        4,
    ]


def test_memory_stays_bounded_while_streaming(tmp_path: Path) -> None:
    grid = variable_grid(
        CHAT.content,
        {"role": [f"role {i}" for i in range(50)], "domain": [f"topic {i}" for i in range(50)]},
    )
    expand(CHAT, grid, tmp_path / "warm.jsonl", limit=100)  # compile the templates first
    tracemalloc.start()
    try:
        result = expand(CHAT, grid, tmp_path / "big.jsonl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.rows == 2_500
    size = (tmp_path / "big.jsonl").stat().st_size
    assert size > 500_000
    assert peak < size / 10, (peak, size)  # the rows are not kept


def test_undeclared_and_missing_variables_are_named() -> None:
    with pytest.raises(
        ExpansionError, match=r"vars.yaml: 'mood' is not a variable of this prompt \(declared: "
    ):
        variable_grid(CHAT.content, {"role": "a", "domain": "b", "mood": ["x"]}, "vars.yaml")
    with pytest.raises(ExpansionError, match="required variable 'domain' has no values"):
        variable_grid(CHAT.content, {"role": ["a"]})
    with pytest.raises(ExpansionError, match="'style' has an empty list of values"):
        variable_grid(CHAT.content, {"role": "a", "domain": "b", "style": []})
    typed = PromptContent(kind="text", template="{{ n }}", variables={"n": VariableSpec(type="integer")})
    with pytest.raises(ExpansionError, match=r"value #3: variable 'n' must be of type integer, got str"):
        variable_grid(typed, {"n": [1, 2, "three"]})
    assert issubclass(ExpansionError, InvalidPrompt)  # a 400 to the REST API, one line to the CLI


def test_a_render_error_names_the_row_and_leaves_no_file(tmp_path: Path) -> None:
    content = PromptContent(
        kind="text",
        template="{{ 100 // n }} per {{ unit }}",
        variables={"n": VariableSpec(type="integer"), "unit": VariableSpec()},
    )
    grid = variable_grid(content, {"n": [5, 0, 2], "unit": "day"})
    out = tmp_path / "cases.jsonl"
    with pytest.raises(ExpansionError) as failed:
        expand(_version(content), grid, out)
    message = str(failed.value)
    assert message.startswith('row 2 {"n":0,"unit":"day"}: ')
    assert "ZeroDivisionError" in message
    assert "\n" not in message
    assert not out.exists()
    assert not (tmp_path / "cases.jsonl.partial").exists()


def test_vars_files_in_yaml_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "vars.yaml"
    yaml_file.write_text("role: [teacher, pirate]\ndomain: math\n")
    assert read_vars_file(yaml_file) == {"role": ["teacher", "pirate"], "domain": "math"}
    json_file = tmp_path / "vars.json"
    json_file.write_text('{"role": ["a"], "domain": ["b", "c"]}')
    assert variable_grid(CHAT.content, read_vars_file(json_file)).total == 2
    broken = tmp_path / "broken.yaml"
    broken.write_text("role: [a, b\n")
    with pytest.raises(ExpansionError, match="broken.yaml: not valid YAML"):
        read_vars_file(broken)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(ExpansionError, match="expected a mapping of variable name to a list of values"):
        read_vars_file(listed)
    with pytest.raises(ExpansionError, match="missing.yaml"):
        read_vars_file(tmp_path / "missing.yaml")


def test_sample_and_limit_must_be_positive() -> None:
    grid = variable_grid(CHAT.content, {"role": "a", "domain": "b"})
    with pytest.raises(ExpansionError, match="sample must be at least 1"):
        expand(CHAT, grid, io.BytesIO(), sample=0)
    with pytest.raises(ExpansionError, match="limit must be at least 1"):
        expand(CHAT, grid, io.BytesIO(), limit=-1)
