"""Request bodies and answers of the deployment routes (/api/deployments)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from llmops.deployments.service import NAME_PATTERN
from llmops.server.admin_schema import NO_NUL
from llmops.server.prompt_schema import whole_number

_Run = Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]
_Percent = Annotated[StrictInt, Field(ge=1, le=100), BeforeValidator(whole_number)]
# JSON numbers with their bounds on each member, so that the schema states them (minimum, maximum)
_Seconds = (
    Annotated[StrictFloat, Field(gt=0, le=86_400, allow_inf_nan=False)]
    | Annotated[StrictInt, Field(gt=0, le=86_400)]
)
_Rate = (
    Annotated[StrictFloat, Field(ge=0, le=1, allow_inf_nan=False)] | Annotated[StrictInt, Field(ge=0, le=1)]
)
_Milliseconds = (
    Annotated[StrictFloat, Field(ge=1, le=3_600_000, allow_inf_nan=False)]
    | Annotated[StrictInt, Field(ge=1, le=3_600_000)]
)
_Drop = Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)] | Annotated[StrictInt, Field(ge=0)]

DeploymentPath = Annotated[
    str,
    Path(pattern=NAME_PATTERN, max_length=200, description="The public model name.", examples=["support"]),
]


class EvalGateIn(BaseModel):
    """The evaluation gate: the candidate run must not be significantly worse than the baseline run."""

    model_config = ConfigDict(extra="forbid")

    baseline: _Run = Field(description="The baseline run (id, name or label).")
    candidate: _Run = Field(description="The candidate run; the canary holds until it has finished.")
    metrics: dict[
        Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)],
        _Drop,
    ] = Field(min_length=1, max_length=50, description="Allowed drop per metric.")


class GuardsIn(BaseModel):
    """Guard rules of the canary; a rule left out (or null) is not checked, except the two defaults."""

    model_config = ConfigDict(extra="forbid")

    max_error_rate: _Rate | None = Field(0.05, description="Largest share of failed canary calls (5xx).")
    max_p95_ms: _Milliseconds | None = Field(None, description="Largest canary p95 latency in ms.")
    max_thumbs_down_rate: _Rate | None = Field(None, description="Largest thumbs-down share.")
    min_requests: Annotated[StrictInt, Field(ge=1, le=1_000_000), BeforeValidator(whole_number)] = Field(
        20, description="Below this many canary calls in the window nothing is decided."
    )
    eval_gate: EvalGateIn | None = None


class DeploymentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "example": {"ref": "support-model@3", "as": "support", "canary": 10, "steps": [10, 50, 100]}
        },
    )

    ref: Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)] = Field(
        description="A registry version: name@3, name@alias or name (latest)."
    )
    name: Annotated[str, Field(pattern=NAME_PATTERN)] = Field(
        alias="as", description="The public model name it is deployed behind."
    )
    canary: Annotated[StrictInt, Field(ge=1, le=99), BeforeValidator(whole_number)] | None = Field(
        None, description="The canary's first share of traffic in %; none: stable at once."
    )
    steps: list[_Percent] | None = Field(
        None, min_length=1, max_length=20, description="Canary percentages, e.g. [10, 50, 100]."
    )
    step_seconds: _Seconds = Field(300.0, description="How long the guards must hold at a step.")
    window_seconds: _Seconds = Field(60.0, description="Seconds of traffic the guards look at.")
    guards: GuardsIn | None = Field(
        None, description="Guard rules (default: max_error_rate 0.05, min_requests 20)."
    )
    manual: StrictBool = Field(False, description="Promote by hand only (rollback stays automatic).")


class ChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(max_length=2000, pattern=NO_NUL)] | None = Field(
        None, description="Why, for the history."
    )


class DeploymentOut(BaseModel):
    name: str
    stable: str | None = Field(description="The stable registry version; null: the configured model.")
    canary: str | None
    canary_percent: int
    steps: list[int]
    step_index: int
    guards: dict[str, Any]
    window_seconds: float
    step_seconds: float
    manual: bool
    status: str = Field(description="stable, canary, rolled_back or undeployed.")
    revision: int
    step_started_at: str | None
    created_at: str | None
    updated_at: str | None
    updated_by: str | None


class DeploymentListOut(BaseModel):
    data: list[DeploymentOut]


class DeploymentStatusOut(DeploymentOut):
    window: dict[str, Any] | None = Field(description="Figures per version over the guards' window.")
    assessment: dict[str, Any] | None = Field(description="A canary's guard verdicts and the decision.")
    next_action: str


class EventOut(BaseModel):
    id: str
    name: str
    at: str
    actor: str | None
    action: str = Field(description="deploy, promote, auto-promote, rollback, auto-rollback or undeploy.")
    revision: int
    from_: dict[str, Any] | None = Field(alias="from")
    to: dict[str, Any] | None
    reason: str | None


class HistoryOut(BaseModel):
    data: list[EventOut]
