"""Parameterised expansion: one prompt version rendered over many variable values, as JSONL test data.

A vars file maps each variable to its values (a scalar is one value). The rows are the cartesian
product of those values, in the order of :func:`itertools.product` (the last variable varies
fastest), or a seeded sample of N distinct combinations drawn without replacement. Nothing the size
of the product is ever built: a combination is decoded from its index in mixed radix, so a sample of
a product of 10^15 combinations costs what the sample costs. Each row is written to the file as soon
as it is rendered; the file appears under its name only when every row was written.

Errors are :class:`ExpansionError` (an :class:`InvalidPrompt`: a 400 to the REST API), one line each;
a render error names the variables of the row that failed.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
import yaml

from llmops.prompts.services import InvalidPrompt, PromptVersion
from llmops.prompts.spec import PromptContent, VariableSpec
from llmops.prompts.templates import RenderError, bind_variables, render

_EXACT_IN_JSON = 2**53  # a combination index past this is written as a string (JSON readers lose digits)


class ExpansionError(InvalidPrompt):
    """A vars file, a variable's values or a row that cannot be expanded."""


def read_vars_file(path: Path) -> dict[str, Any]:
    """A YAML or JSON mapping of variable name to its values (a list) or its one value (a scalar)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExpansionError(f"{path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise ExpansionError(f"{path}: not valid {kind}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not all(isinstance(key, str) for key in data):
        raise ExpansionError(f"{path}: expected a mapping of variable name to a list of values")
    return data


@dataclass(frozen=True, slots=True)
class VariableGrid:
    """The values of each variable; combination ``i`` is ``i`` written in mixed radix (last digit fastest)."""

    names: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]

    @property
    def total(self) -> int:
        """How many combinations (an int of any size; 1 when no variable varies)."""
        return math.prod(len(values) for values in self.values)

    def combination(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.total:
            raise IndexError(f"combination {index} of {self.total}")
        chosen: list[Any] = []
        for values in reversed(self.values):
            index, digit = divmod(index, len(values))
            chosen.append(values[digit])
        return dict(zip(self.names, reversed(chosen), strict=True))

    def all_indices(self) -> Iterator[int]:
        """Every index in order, lazily (a range never holds its items)."""
        return iter(range(self.total))

    def sample_indices(self, size: int, seed: int) -> list[int]:
        """``size`` distinct indices drawn with a seeded generator, sorted; every index if ``size >= total``.

        Memory is proportional to ``size``, whatever the total.
        """
        total = self.total
        if size >= total:
            return list(range(total))
        rng = random.Random(seed)
        if total <= sys.maxsize:  # random.sample needs len(); it selects from a range without building it
            return sorted(rng.sample(range(total), size))
        chosen: set[int] = set()  # size is far below total here, so a repeat is rare
        while len(chosen) < size:
            chosen.add(rng.randrange(total))
        return sorted(chosen)


def variable_grid(
    content: PromptContent, given: Mapping[str, Any], source: str = "vars file"
) -> VariableGrid:
    """Check ``given`` against the prompt's declared variables and types; the grid of their values."""
    declared = content.variables
    for name in given:
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise ExpansionError(f"{source}: {name!r} is not a variable of this prompt (declared: {known})")
    for name, spec in declared.items():
        if spec.required and name not in given:
            raise ExpansionError(f"{source}: required variable {name!r} has no values")
    names: list[str] = []
    columns: list[tuple[Any, ...]] = []
    for name, raw in given.items():
        values = tuple(raw) if isinstance(raw, list) else (raw,)
        if not values:
            raise ExpansionError(f"{source}: variable {name!r} has an empty list of values")
        for position, value in enumerate(values):
            _check_value(name, declared[name], value, position, source)
        names.append(name)
        columns.append(values)
    return VariableGrid(tuple(names), tuple(columns))


def _check_value(name: str, spec: VariableSpec, value: Any, position: int, source: str) -> None:
    if value is None and spec.required:
        raise ExpansionError(f"{source}: variable {name!r} value #{position + 1} is null, but it is required")
    try:
        bind_variables({name: VariableSpec(type=spec.type)}, {name: value})
    except RenderError as exc:
        raise ExpansionError(f"{source}: value #{position + 1}: {exc}") from None


def expansion_row(version: PromptVersion, index: int, variables: dict[str, Any]) -> dict[str, Any]:
    """One JSONL row: the combination's variables, the rendered conversation and where it came from."""
    try:
        rendered = render(version.content, variables)
    except RenderError as exc:
        shown = orjson.dumps(variables, default=str).decode()
        raise ExpansionError(f"row {index + 1} {shown}: {exc}") from None
    row: dict[str, Any] = {"variables": variables}
    if rendered.text is not None:
        row["prompt"] = rendered.text
    row["messages"] = rendered.as_messages()
    combination = index if index < _EXACT_IN_JSON else str(index)
    row["metadata"] = {"prompt": version.name, "version": version.number, "combination": combination}
    return row


@dataclass(frozen=True, slots=True)
class Expansion:
    """What :func:`expand` did: rows written out of the combinations there are."""

    rows: int
    combinations: int
    sampled: bool


def planned_rows(grid: VariableGrid, *, sample: int | None, limit: int | None) -> int:
    """How many rows an expansion with these options writes (for a progress bar)."""
    count = grid.total if sample is None else min(sample, grid.total)
    return count if limit is None else min(count, limit)


def expand(
    version: PromptVersion,
    grid: VariableGrid,
    out: Path | IO[bytes],
    *,
    sample: int | None = None,
    seed: int = 0,
    limit: int | None = None,
    on_row: Callable[[int], None] | None = None,
) -> Expansion:
    """Render the combinations (all, or a seeded sample of ``sample``) and write them as JSONL.

    ``out`` is a path (written to ``<name>.partial`` and renamed once complete, removed on error) or
    an open binary stream. ``limit`` stops after that many rows; ``on_row`` is called with the count so far.
    """
    if sample is not None and sample < 1:
        raise ExpansionError("sample must be at least 1")
    if limit is not None and limit < 1:
        raise ExpansionError("limit must be at least 1")
    indices: Iterable[int] = grid.all_indices() if sample is None else grid.sample_indices(sample, seed)
    rows = _rows(version, grid, indices, limit)
    if isinstance(out, Path):
        written = _write_file(out, rows, on_row)
    else:
        written = _write(out, rows, on_row)
    return Expansion(written, grid.total, sample is not None and sample < grid.total)


def _rows(
    version: PromptVersion, grid: VariableGrid, indices: Iterable[int], limit: int | None
) -> Iterator[dict[str, Any]]:
    for count, index in enumerate(indices):
        if limit is not None and count >= limit:
            return
        yield expansion_row(version, index, grid.combination(index))


def _write(stream: IO[bytes], rows: Iterator[dict[str, Any]], on_row: Callable[[int], None] | None) -> int:
    count = 0
    for row in rows:
        stream.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
        count += 1
        if on_row is not None:
            on_row(count)
    return count


def _write_file(path: Path, rows: Iterator[dict[str, Any]], on_row: Callable[[int], None] | None) -> int:
    partial = path.with_name(path.name + ".partial")
    try:
        with partial.open("wb") as stream:
            count = _write(stream, rows, on_row)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count
