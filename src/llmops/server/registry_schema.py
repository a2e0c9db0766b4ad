"""Request bodies and answers of the model registry routes (/api/registry)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from llmops.registry.service import ALIAS_PATTERN, KIND_PATTERN, NAME_PATTERN
from llmops.server.admin_schema import NO_NUL
from llmops.server.prompt_schema import JsonIn, whole_number

MAX_VERSION = 999_999_999

_Short = Annotated[str, Field(max_length=200, pattern=NO_NUL)]
_Long = Annotated[str, Field(max_length=2000, pattern=NO_NUL)]
_Object = dict[Annotated[str, Field(max_length=200, pattern=NO_NUL)], JsonIn]
_DatasetRef = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}(@([1-9][0-9]{0,8}|latest))?$"

# the examples name the model the schemathesis test seeds (tests/e2e/test_schemathesis.py)
ModelPath = Annotated[
    str, Path(pattern=NAME_PATTERN, description="The registered model's name.", examples=["support-model"])
]
VersionPath = Annotated[
    str,
    Path(
        pattern=r"^([1-9][0-9]{0,8}|[a-z][a-z0-9_-]{0,63})$",
        description="A version number, an alias (production) or latest.",
        examples=["1"],
    ),
]
VersionNumberPath = Annotated[
    int, Path(ge=1, le=MAX_VERSION, description="A version number (1, 2, 3, ...).", examples=[1])
]
AliasPath = Annotated[
    str,
    Path(
        pattern=ALIAS_PATTERN,
        description="An alias, e.g. production ('latest' is reserved).",
        examples=["production"],
    ),
]
AliasQuery = Annotated[
    str | None, Query(pattern=ALIAS_PATTERN, description="Only this alias's moves.", examples=["production"])
]
ForceQuery = Annotated[
    bool, Query(description="Delete even when aliases point at it (they are removed, recorded).")
]


class RegisterIn(BaseModel):
    """A new version: how to serve it and/or files already on the server, with where it came from."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "serving": {"provider": "openai", "base_url": "http://127.0.0.1:8000/v1", "model": "tuned"},
                "description": "LoRA r=8 on support answers",
                "base_model": "smollm2",
                "metrics": {"val_loss": 1.21},
            }
        },
    )

    serving: _Object | None = Field(
        None, description="A deployment as in llmops.yaml: provider, base_url, model, params, ..."
    )
    artefacts: dict[Annotated[str, Field(pattern=KIND_PATTERN)], _Long] = Field(
        default_factory=dict,
        max_length=50,
        description="KIND: an absolute path on the server (file or folder), copied into the artefact store.",
    )
    description: _Long | None = None
    base_model: _Short | None = None
    dataset: Annotated[str, Field(pattern=_DatasetRef)] | None = Field(
        None, description="The dataset version it was trained on: NAME@VERSION."
    )
    params: _Object = Field(default_factory=dict, description="Hyper-parameters.")
    metrics: _Object = Field(default_factory=dict)
    job_id: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")] | None = None
    source: _Object = Field(
        default_factory=dict, description='Where it came from, e.g. {"finetune": "<id>"}.'
    )


class AliasIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"version": 1}})

    version: Annotated[StrictInt, Field(ge=1, le=MAX_VERSION), BeforeValidator(whole_number)]


class ArtefactOut(BaseModel):
    kind: str
    uri: str
    sha256: str
    bytes: int
    is_dir: bool


class VersionOut(BaseModel):
    model: str
    version: int
    ref: str
    created_at: str
    created_by: str | None
    description: str | None
    base_model: str | None
    dataset: str | None
    dataset_version: int | None
    params: dict[str, Any]
    metrics: dict[str, Any]
    job_id: str | None
    source: dict[str, Any]
    artefacts: list[ArtefactOut]
    serving: dict[str, Any] | None
    aliases: list[str]


class VersionListOut(BaseModel):
    data: list[VersionOut]


class ModelOut(BaseModel):
    name: str
    description: str | None
    latest_version: int | None
    versions: int
    aliases: dict[str, int]
    created_by: str | None
    created_at: str
    updated_at: str


class ModelListOut(BaseModel):
    data: list[ModelOut]


class ModelDetailOut(BaseModel):
    name: str
    description: str | None
    latest_version: int | None
    aliases: dict[str, int]
    created_by: str | None
    created_at: str
    updated_at: str
    versions: list[VersionOut]


class AliasEventOut(BaseModel):
    model: str
    alias: str | None
    action: Literal["set", "remove", "delete"]
    from_version: int | None
    to_version: int | None
    at: str
    by: str | None


class AliasMoveOut(AliasEventOut):
    changed: bool = Field(description="False when the alias already pointed at that version.")


class EventListOut(BaseModel):
    data: list[AliasEventOut]


class LineageOut(BaseModel):
    data: list[dict[str, Any]] = Field(
        description="Depth first: the version (depth 0), its job, source, base model, dataset version and "
        "that version's ancestors; a dataset built from traces ends with the trace selection."
    )


class DeletedOut(BaseModel):
    deleted: str
