"""Request bodies and answers of the evaluation routes (/api/evals)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt

from llmops.server.admin_schema import NO_NUL
from llmops.server.dataset_schema import JsonNumber, TraceFilterIn
from llmops.server.prompt_schema import JsonIn, whole_number

_Short = Annotated[str, Field(max_length=200, pattern=NO_NUL)]
_Metric = Annotated[str, Field(min_length=1, max_length=2000, pattern=NO_NUL)]
_Ref = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}(@([0-9]{1,9}|latest))?$"

# the examples name the run the schemathesis test seeds (tests/e2e/test_schemathesis.py)
RunPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=NO_NUL,
        description="A run id, run name or label.",
        examples=["baseline"],
    ),
]


class TargetIn(BaseModel):
    """What to evaluate: a model of the gateway, a prompt of the registry, or outputs in a row field."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["model", "prompt", "column", "traces"]
    model: _Short | None = Field(None, description="model: its name; prompt: NAME@LABEL or NAME#VERSION.")
    column: _Short | None = Field(None, description="column: the row field holding the output.")
    params: dict[Annotated[str, Field(pattern=NO_NUL)], JsonIn] = Field(
        default_factory=dict, description="Request parameters: temperature, max_tokens, seed, ..."
    )


class RunIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "dataset": "support-qa@1",
                "target": {"kind": "model", "model": "echo", "params": {"temperature": 0}},
                "metrics": ["exact_match", "rouge_l"],
                "name": "echo-baseline",
            }
        },
    )

    dataset: Annotated[str, Field(pattern=_Ref)] | None = Field(None, description="NAME or NAME@VERSION.")
    traces: TraceFilterIn | None = Field(None, description="For a traces target: which traces.")
    target: TargetIn
    metrics: list[_Metric] = Field(min_length=1, max_length=50)
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")] | None = None
    concurrency: Annotated[StrictInt, Field(ge=1, le=64), BeforeValidator(whole_number)] = 8
    judge_model: _Short | None = None
    thresholds: dict[Annotated[str, Field(pattern=NO_NUL)], JsonNumber] = Field(default_factory=dict)
    use_cache: StrictBool = False
    limit: Annotated[StrictInt, Field(ge=1, le=10_000_000), BeforeValidator(whole_number)] | None = None


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"label": "production"}})

    label: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9._-]{0,99}$")]


class RunOut(BaseModel):
    id: str
    name: str | None
    dataset: str | None
    target: dict[str, Any]
    metrics: list[str]
    params: dict[str, Any]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    job_id: str | None
    progress: dict[str, int | None]
    summary: dict[str, Any] | None
    error: str | None
    labels: list[str]
    created_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


class RunListOut(BaseModel):
    data: list[RunOut]


class ResultOut(BaseModel):
    position: int
    row_hash: str | None
    output: str | None
    scores: dict[str, float | None]
    details: dict[str, Any] | None
    latency_ms: float | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost: float | None
    trace_id: str | None
    error: str | None
    created_at: str


class ResultPageOut(BaseModel):
    data: list[ResultOut]
    next_offset: int | None


class GateMetricIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metric: _Metric
    max_drop: JsonNumber = Field(0.0, description="The drop allowed, in the metric's units.")


class GateIn(BaseModel):
    """A CI gate: is the candidate significantly worse than the baseline by more than each allowed drop?"""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "baseline": "baseline",
                "candidate": "candidate",
                "metrics": [{"metric": "exact_match", "max_drop": 0.02}],
                "alpha": 0.05,
            }
        },
    )

    baseline: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
    candidate: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
    metrics: list[GateMetricIn] = Field(min_length=1, max_length=50)
    alpha: Annotated[JsonNumber, Field(gt=0, lt=0.5)] = 0.05
    seed: Annotated[StrictInt, Field(ge=0, le=2**31 - 1), BeforeValidator(whole_number)] = 0


class GateCheckOut(BaseModel):
    metric: str
    failed: bool
    message: str


class GateOut(BaseModel):
    passed: bool
    exit_code: int
    summary: str
    checks: list[GateCheckOut]
