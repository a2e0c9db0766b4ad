"""Request bodies and answers of the dataset and job routes (/api/datasets, /api/jobs).

A row sent in a body is declared with the conventional fields' types (``input``, ``expected``,
``completion`` and ``prompt`` strings, ``messages`` a list of messages, ``metadata`` and ``variables``
objects) and any other field as a JSON value every backend keeps, so what the schema accepts is
stored exactly.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from llmops.datasets.service import NAME_PATTERN
from llmops.server.admin_schema import NO_NUL
from llmops.server.prompt_schema import JsonIn, whole_number

MAX_VERSION = 999_999_999
MAX_BODY_ROWS = 100_000

_Text = Annotated[str, Field(strict=True, pattern=NO_NUL)]
_Short = Annotated[str, Field(max_length=200, pattern=NO_NUL)]
_Long = Annotated[str, Field(max_length=2000, pattern=NO_NUL)]
_Object = dict[_Text, JsonIn]


# bounds go before the validator, or pydantic writes them as "ge"/"le" instead of minimum/maximum
JsonNumber = Annotated[StrictFloat | StrictInt, Field(allow_inf_nan=False)]
_Bool = StrictBool

# the examples name the dataset the schemathesis test seeds (tests/e2e/test_schemathesis.py)
DatasetPath = Annotated[
    str, Path(pattern=NAME_PATTERN, description="The dataset's name.", examples=["support-qa"])
]
VersionPath = Annotated[
    int, Path(ge=1, le=MAX_VERSION, description="A version number (1, 2, 3, ...).", examples=[1])
]
VersionQuery = Annotated[int, Query(ge=1, le=MAX_VERSION, description="A version number.", examples=[1])]
JobPath = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="A job id.")]


class MessageIn(BaseModel):
    """An OpenAI chat message; fields besides role and content are kept as they are."""

    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, JsonIn] = Field(init=False)

    role: _Text
    content: _Text | list[JsonIn] | None = None


class RowIn(BaseModel):
    """A dataset row: conventional fields with their types, anything else as free JSON."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"example": {"input": "Where is my order?", "expected": "Let me check."}},
    )
    __pydantic_extra__: dict[str, JsonIn] = Field(init=False)

    input: _Text | None = None
    expected: _Text | None = None
    completion: _Text | None = None
    prompt: _Text | None = None
    messages: list[MessageIn] | None = None
    metadata: _Object | None = None
    variables: _Object | None = None

    def to_row(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class RowsIn(BaseModel):
    """Rows to store as the next version of a dataset (created if new)."""

    model_config = ConfigDict(extra="forbid")

    rows: list[RowIn] = Field(max_length=MAX_BODY_ROWS, description="The rows, in order.")
    append: _Bool = Field(False, description="Add after the latest version's rows instead of replacing them.")
    message: _Long | None = Field(None, description="A note stored with the version.")
    author: _Short | None = Field(None, description="Who did it (default: the key's name).")


class TraceFilterIn(BaseModel):
    """Which traces to take; every filter is optional (status defaults to ok)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"model": "echo", "since": "7d", "feedback": "up"}}
    )

    model: _Short | None = None
    prompt: _Short | None = Field(None, description="NAME or NAME@VERSION.")
    since: _Short | None = Field(None, description="30m, 2h, 7d (ago) or an ISO date/time.")
    until: _Short | None = Field(None, description="Before this moment, same forms as since.")
    status: Literal["ok", "error", "any"] = "ok"
    feedback: Literal["up", "down"] | None = Field(None, description="At least one thumb of this kind.")
    min_score: JsonNumber | None = Field(None, description="At least one feedback score this high.")
    label: _Short | None = Field(None, description="At least one feedback with this label.")
    limit: Annotated[StrictInt, Field(ge=1, le=10_000_000), BeforeValidator(whole_number)] | None = None


class TracesIn(TraceFilterIn):
    """Which traces become rows of the next version, and a note on it."""

    message: _Long | None = None
    author: _Short | None = None


class CleanIn(BaseModel):
    """A cleaning run: a recipe over one version, written as the dataset's next version (or ``into``'s)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "recipe": {
                    "steps": [{"normalize_unicode": {}}, {"clean_whitespace": {}}, {"dedup_exact": {}}]
                }
            }
        },
    )

    version: Annotated[StrictInt, Field(ge=1, le=MAX_VERSION), BeforeValidator(whole_number)] | None = Field(
        None, description="The version to clean (default: latest)."
    )
    recipe: _Object = Field(description='`{"steps": [{NAME: {params}}, ...]}`, as in a recipe file.')
    into: Annotated[str, Field(pattern=NAME_PATTERN)] | None = None
    message: _Long | None = None
    author: _Short | None = None


class ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pii: _Bool = Field(True, description="Measure PII rates (pattern entities).")
    near_duplicates: _Bool = Field(True, description="Measure the near-duplicate rate (MinHash).")
    sample: Annotated[StrictInt, Field(ge=1, le=10_000_000), BeforeValidator(whole_number)] = Field(
        50_000, description="Rows sampled for the language, near-duplicate and PII estimates."
    )


class VersionOut(BaseModel):
    dataset: str
    version: int
    ref: str
    content_hash: str
    rows: int
    parents: list[str]
    operation: str
    params: dict[str, Any] | None
    report: list[Any] | None
    message: str | None
    author: str | None
    created_at: str


class VersionWriteOut(BaseModel):
    version: VersionOut
    created: bool = Field(description="False: the rows equal the latest version's; nothing new was stored.")


class DatasetOut(BaseModel):
    name: str
    description: str | None
    latest_version: int
    rows: int
    created_by: str | None
    created_at: str
    updated_at: str


class DatasetListOut(BaseModel):
    data: list[DatasetOut]


class DatasetDetailOut(BaseModel):
    name: str
    versions: list[VersionOut]


class RowOut(BaseModel):
    position: int
    hash: str
    row: dict[str, Any]


class RowPageOut(BaseModel):
    data: list[RowOut]
    next_offset: int | None = Field(description="The offset of the next page; null on the last one.")


class DiffOut(BaseModel):
    base: str
    other: str
    key: str | None
    added: int
    removed: int
    changed: int
    unchanged: int
    examples: dict[str, list[Any]]


class JobProgress(BaseModel):
    done: int
    total: int | None


class JobOut(BaseModel):
    id: str
    kind: str
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    stage: str | None
    progress: JobProgress
    params: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    cancel_requested: bool
    created_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


class JobListOut(BaseModel):
    data: list[JobOut]


class JobLogLine(BaseModel):
    seq: int
    at: str
    level: str
    message: str


class JobLogOut(BaseModel):
    data: list[JobLogLine]
