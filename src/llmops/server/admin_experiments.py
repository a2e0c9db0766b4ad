"""Admin routes for experiments (/api/experiments): the service functions behind `llmops experiments`.

Bodies and parameters declare the service's own rules (name and label patterns, two to 20 variants
with distinct names, versions and weights in range), so what the schema accepts is not refused as
invalid: a missing prompt, version, experiment or variant is 404, and what contradicts the
experiment's state (a taken name, another experiment running on the label, an experiment that has
ended) is 409. An experiment belongs to the team of its prompt: another team's answers 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from llmops.gateway.auth import Principal
from llmops.gateway.errors import GatewayError
from llmops.prompts.experiments import (
    MAX_DESCRIPTION,
    MAX_VARIANTS,
    MAX_WEIGHT,
    ExperimentConflict,
)
from llmops.prompts.spec import LABEL_SCHEMA_PATTERN, MAX_VERSION, NAME_PATTERN
from llmops.server.admin_auth import Caller
from llmops.server.admin_schema import NO_NUL, error_responses, link
from llmops.server.team_views import TeamExperiments
from llmops.services import Services

_Label = Annotated[str, Field(pattern=LABEL_SCHEMA_PATTERN, max_length=100)]
_Name = Annotated[str, Field(pattern=NAME_PATTERN)]


def _whole(value: Any) -> Any:
    """JSON Schema counts 2.0 as an integer: take it as 2 (strings and booleans stay refused)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


_Version = Annotated[int, Field(ge=1, le=MAX_VERSION), BeforeValidator(_whole)]
_Author = Annotated[str, Field(max_length=200, pattern=NO_NUL, description="Who (default: the key's name).")]


_KEY = "The experiment's name or id."
# the examples name the experiments the schemathesis test creates (tests/e2e/test_schemathesis.py)
KeyPath = Annotated[str, Path(pattern=NAME_PATTERN, description=_KEY, examples=["greeting-tone"])]
StopKeyPath = Annotated[str, Path(pattern=NAME_PATTERN, description=_KEY, examples=["greeting-length"])]


# --- bodies -----------------------------------------------------------------------------------------


class VariantIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    version: _Version = Field(description="The prompt version this variant serves.")
    weight: float = Field(
        default=1.0,
        gt=0,
        le=MAX_WEIGHT,
        allow_inf_nan=False,
        description="Its share of the traffic is weight / the sum of the weights.",
    )


class ExperimentCreateIn(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "greeting-style",
                    "prompt": "greeting",
                    "label": "staging",
                    "variants": {"a": {"version": 1}, "b": {"version": 2, "weight": 3}},
                    "description": "Does the shorter greeting get more thumbs up?",
                }
            ]
        },
    )

    name: _Name = Field(description="Unique among experiments.")
    prompt: _Name = Field(description="The prompt whose versions compete.")
    variants: dict[_Label, VariantIn] = Field(
        min_length=2,
        max_length=MAX_VARIANTS,
        description="Variant name -> version and weight. The first name in sort order is the control.",
        json_schema_extra={"additionalProperties": False},  # names match the pattern, no others
    )
    label: _Label = Field(
        default="production", description="Requests for the prompt at this label take part."
    )
    sticky_by: Literal["user", "header"] = Field(
        default="user",
        description="user: the request's `user` field keeps a user on one variant; header: `x-llmops-user`.",
    )
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION, pattern=NO_NUL)
    author: _Author | None = None


class PromoteIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [{"variant": "b"}]})

    variant: _Label = Field(description="The winner: the experiment's label moves to its version.")
    author: _Author | None = None


# --- answers ----------------------------------------------------------------------------------------


class VariantOut(BaseModel):
    name: str
    version: int
    weight: float


class ExperimentOut(BaseModel):
    id: str
    name: str
    prompt: str
    label: str
    status: Literal["running", "promoted", "stopped"]
    sticky_by: Literal["user", "header"]
    variants: list[VariantOut] = Field(description="In name order; the first is the default control.")
    description: str | None
    winner: str | None = Field(description="The promoted variant, once there is one.")
    created_by: str | None
    created_at: datetime
    ended_at: datetime | None


class RateOut(BaseModel):
    count: int
    n: int
    value: float | None = Field(description="count / n; null when n is 0.")
    low: float | None = Field(description="Wilson 95% interval.")
    high: float | None


class MeanOut(BaseModel):
    n: int
    value: float | None
    low: float | None = Field(description="t 95% interval (null below two values).")
    high: float | None
    std_dev: float | None


class VariantResultOut(BaseModel):
    name: str
    version: int
    weight: float
    planned_share: float
    share: float | None = Field(description="Of the experiment's requests so far.")
    requests: int
    errors: int
    error_rate: RateOut
    latency_ms: MeanOut = Field(description="Of the answered (status ok) requests.")
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    ttft_ms: float | None = Field(description="Mean time to first token of streamed answers.")
    prompt_tokens: int
    completion_tokens: int
    cost: float
    cost_per_request: float | None
    thumbs_up: RateOut = Field(description="Thumbs up of the traces with a thumb (the latest per trace).")
    score: MeanOut = Field(description="Human score per trace (the mean of its scores).")
    eval_scores: dict[str, MeanOut] = Field(description="Evaluation scores; empty until evaluations exist.")


class ComparisonOut(BaseModel):
    variant: str
    control: str
    metric: Literal["thumbs_up_rate", "score", "error_rate", "latency_ms"]
    test: str = Field(description="two-proportion z-test (rates) or Welch's t-test (means).")
    higher_is_better: bool
    unit: str = Field(description="What one sample is.")
    control_n: int
    variant_n: int
    control_value: float | None
    variant_value: float | None
    difference: float | None = Field(description="variant - control.")
    difference_low: float | None = Field(description="Interval of the difference at level 1 - alpha.")
    difference_high: float | None
    statistic: float | None = Field(description="z or t.")
    df: float | None = Field(description="Welch-Satterthwaite degrees of freedom.")
    p_value: float | None = Field(description="Two-sided; null when the test cannot run yet (see note).")
    alpha: float
    significant: bool
    better: str | None
    needed_per_variant: int | None = Field(
        description="Samples per variant to detect the observed difference with 80% power."
    )
    more_samples: int | None
    more_requests: int | None
    note: str | None


class RecommendationOut(BaseModel):
    text: str
    winner: str | None
    more_requests: int | None


class ExperimentResultsOut(BaseModel):
    experiment: ExperimentOut
    control: str
    alpha: float = Field(description="0.05 shared among the comparisons with the control (Bonferroni).")
    power: float
    confidence: float
    variants: list[VariantResultOut]
    comparisons: list[ComparisonOut]
    recommendation: RecommendationOut
    notes: list[str]


# --- routes -----------------------------------------------------------------------------------------

_NOT_FOUND = {404: "No experiment has this name or id."}
_FROM_LIST = {
    "GetExperiment": link("get_experiment", key="$response.body#/0/id"),
    "ExperimentResults": link("experiment_results", key="$response.body#/0/id"),
    "PromoteExperiment": {
        **link("promote_experiment", key="$response.body#/0/id"),
        "requestBody": {"variant": "$response.body#/0/variants/1/name"},
    },
    "StopExperiment": link("stop_experiment", key="$response.body#/0/id"),
}


@contextmanager
def _conflicts() -> Iterator[None]:
    try:
        yield
    except ExperimentConflict as exc:
        raise GatewayError(409, str(exc), code="conflict") from None


def _author(given: str | None, principal: Principal) -> str:
    return given if given is not None else principal.name


def experiment_routes(services: Services) -> APIRouter:
    """The experiments' routes; each sees the experiments on the caller's team's prompts only."""
    router = APIRouter(tags=["experiments"])

    @router.get(
        "/api/experiments",
        operation_id="list_experiments",
        response_model=list[ExperimentOut],
        responses={200: {"links": _FROM_LIST}, **error_responses(400)},
    )
    def list_experiments(
        experiments: TeamExperiments,
        prompt: Annotated[str | None, Query(pattern=NAME_PATTERN, description="Only this prompt's.")] = None,
        status: Literal["running", "promoted", "stopped"] | None = None,
    ) -> list[dict[str, Any]]:
        """Experiments: running ones first, newest first."""
        return [experiment.as_dict() for experiment in experiments.find(prompt=prompt, status=status)]

    @router.post(
        "/api/experiments",
        operation_id="create_experiment",
        response_model=ExperimentOut,
        status_code=201,
        responses={
            **error_responses(
                400,
                404,
                409,
                descriptions={
                    404: "The prompt or one of the versions does not exist.",
                    409: "The name is taken, or an experiment already runs on this prompt and label.",
                },
            ),
        },
    )
    def create_experiment(
        principal: Caller, experiments: TeamExperiments, body: ExperimentCreateIn
    ) -> dict[str, Any]:
        """Start an experiment: requests for the prompt at the label are split between the variants."""
        with _conflicts():
            experiment = experiments.create(
                body.name,
                body.prompt,
                [(name, variant.version, variant.weight) for name, variant in body.variants.items()],
                label=body.label,
                sticky_by=body.sticky_by,
                description=body.description,
                author=_author(body.author, principal),
            )
        return experiment.as_dict()

    @router.get(
        "/api/experiments/{key}",
        operation_id="get_experiment",
        response_model=ExperimentOut,
        responses={
            200: {"links": {"ExperimentResults": link("experiment_results", key="$response.body#/id")}},
            **error_responses(400, 404, descriptions=_NOT_FOUND),
        },
    )
    def get_experiment(experiments: TeamExperiments, key: KeyPath) -> dict[str, Any]:
        """One experiment's definition and state."""
        return experiments.get(key).as_dict()

    @router.get(
        "/api/experiments/{key}/results",
        operation_id="experiment_results",
        response_model=ExperimentResultsOut,
        responses=error_responses(
            400, 404, descriptions={404: "No experiment has this name or id, or no variant is `control`."}
        ),
    )
    def experiment_results(
        experiments: TeamExperiments,
        key: KeyPath,
        control: Annotated[
            str | None,
            Query(
                pattern=LABEL_SCHEMA_PATTERN,
                max_length=100,
                description="Compare the others with this variant (default: the first by name).",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Per-variant figures with 95% intervals, tests against the control, and a recommendation."""
        return experiments.results(key, control=control).as_dict()

    @router.post(
        "/api/experiments/{key}/promote",
        operation_id="promote_experiment",
        response_model=ExperimentOut,
        responses=error_responses(
            400,
            404,
            409,
            descriptions={
                404: "No experiment has this name or id, or it has no such variant.",
                409: "The experiment has ended already.",
            },
        ),
    )
    def promote_experiment(
        principal: Caller, experiments: TeamExperiments, key: KeyPath, body: PromoteIn
    ) -> dict[str, Any]:
        """Promote the winner: the label moves to its version and the experiment ends."""
        with _conflicts():
            experiment = experiments.promote(key, body.variant, author=_author(body.author, principal))
        return experiment.as_dict()

    @router.post(
        "/api/experiments/{key}/stop",
        operation_id="stop_experiment",
        response_model=ExperimentOut,
        responses=error_responses(
            400, 404, 409, descriptions={**_NOT_FOUND, 409: "The experiment has ended already."}
        ),
    )
    def stop_experiment(experiments: TeamExperiments, key: StopKeyPath) -> dict[str, Any]:
        """End the experiment without a winner; the label stays where it is."""
        with _conflicts():
            experiment = experiments.stop(key)
        return experiment.as_dict()

    return router
