"""Judge rubrics: what a judge is asked to grade, on which integer scale, seeing which fields.

The built-in rubrics are the YAML files of this package (``fluency``, ``coherence``, ``relevance``,
``factual_consistency``); a custom rubric is a file of the same shape::

    name: politeness
    title: Politeness              # optional, defaults to the name
    scale: {min: 1, max: 5}        # integers, min < max
    fields: [input, output]        # what the judge sees, in this order
    instructions: |
      Judge how polite the answer is. 1: rude ... 5: courteous throughout.

The fields are ``input``, ``output``, ``expected``, ``context`` and ``reference`` (the row's
``context`` when it has one, else its ``expected``: factual consistency checks against either).
Errors: :class:`RubricError` (a malformed file, 400) and :class:`RubricNotFound` (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from llmops.errors import NotFoundError, UserError

FieldName = Literal["input", "output", "expected", "context", "reference"]
MAX_SCALE_STEPS = 100  # a judge cannot tell 1,000 levels apart; a typo such as max: 5000 is caught
MAX_INSTRUCTIONS = 20_000


class RubricError(UserError):
    """A rubric file that cannot be read or does not have the rubric's shape."""


class RubricNotFound(NotFoundError):
    pass


class _Scale(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    min: int
    max: int

    @model_validator(mode="after")
    def _ordered(self) -> _Scale:
        if self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        if self.max - self.min > MAX_SCALE_STEPS:
            raise ValueError(f"at most {MAX_SCALE_STEPS} steps between min and max")
        return self


class _RubricFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    title: str | None = Field(default=None, max_length=200)
    scale: _Scale = Field(default_factory=lambda: _Scale(min=1, max=5))
    fields: list[FieldName] = Field(min_length=1)
    instructions: str = Field(min_length=1, max_length=MAX_INSTRUCTIONS)

    @model_validator(mode="after")
    def _shows_output(self) -> _RubricFile:
        if "output" not in self.fields:
            raise ValueError("fields must include output (the answer being judged)")
        if len(set(self.fields)) != len(self.fields):
            raise ValueError("fields must be distinct")
        return self


@dataclass(frozen=True)
class Rubric:
    name: str
    title: str
    instructions: str
    fields: tuple[str, ...]
    scale_min: int = 1
    scale_max: int = 5


def builtin_names() -> list[str]:
    folder = resources.files(__name__)
    return sorted(entry.name[: -len(".yaml")] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def builtin_rubric(name: str) -> Rubric:
    """A rubric shipped with llmops, by name."""
    if name not in builtin_names():
        known = ", ".join(builtin_names())
        raise RubricNotFound(
            f"no built-in rubric {name!r} (built in: {known}; or a rubric file FILE.yaml, or prompt:NAME)"
        )
    text = resources.files(__name__).joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return parse_rubric(yaml.safe_load(text), f"built-in rubric {name}")


def read_rubric_file(path: Path) -> Rubric:
    """A custom rubric from a YAML file (see the module docstring)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RubricNotFound(f"rubric file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RubricError(f"{path}: cannot read the rubric: {_one_line(str(exc))}") from None
    return parse_rubric(data, str(path))


def parse_rubric(data: Any, where: str) -> Rubric:
    if not isinstance(data, dict):
        raise RubricError(f"{where}: a rubric is a mapping with name, scale, fields and instructions")
    try:
        spec = _RubricFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = ".".join(str(part) for part in error["loc"])
        prefix = f"{location}: " if location else ""
        message = str(error["msg"]).removeprefix("Value error, ")
        raise RubricError(f"{where}: {prefix}{message}") from None
    return Rubric(
        name=spec.name,
        title=spec.title or spec.name,
        instructions=spec.instructions.strip(),
        fields=tuple(spec.fields),
        scale_min=spec.scale.min,
        scale_max=spec.scale.max,
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())
