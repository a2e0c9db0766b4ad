"""``/api/drift``: run a drift check (current traffic against a reference window or dataset version),
read the stored checks, and a check's report as a self-contained HTML page.

A team's key compares its team's traces (and datasets) only and sees the checks its team ran.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from llmops.drift.checks import CHECK_NAMES
from llmops.drift.report import render_html
from llmops.drift.service import DriftRequest, DriftService
from llmops.server.admin_auth import Caller, services_of, team_scope
from llmops.server.admin_schema import NO_NUL, error_responses, link
from llmops.services import Services

CheckName = Literal[
    "prompt_length",
    "answer_length",
    "language",
    "embedding",
    "new_topics",
    "refusal_rate",
    "error_rate",
    "thumbs_down_rate",
]
if set(get_args(CheckName)) != set(CHECK_NAMES):  # pragma: no cover - a check added without its name here
    raise RuntimeError("admin_drift.CheckName must list llmops.drift.checks.CHECK_NAMES")

WINDOW = (
    "START..END or START (until now); each end a duration ago (30m, 12h, 7d, 2w), an ISO 8601 date or "
    "time (UTC when it has no offset), or 'now'"
)
_WINDOW_PATTERN = r"^[^\x00]*[^\s\x00][^\x00]*$"
_PROMPT_PATTERN = r"^[^@\x00]{1,200}(@[0-9]{1,9})?$"
CheckId = Annotated[str, Path(description="A drift check's id (32 hex digits).", pattern=r"^[0-9a-f]{32}$")]
_NOT_FOUND = {404: "No stored drift check has this id (or it is another team's)."}
# The page quotes users' prompts (escaped): should escaping ever slip, the browser still runs no script
# and fetches nothing.
_PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}


async def _team_drift(request: Request, principal: Caller) -> DriftService:
    return services_of(request).store.drift.for_team(team_scope(principal))


TeamDrift = Annotated[DriftService, Depends(_team_drift)]
"""The drift service as the caller's team sees it (its traces, datasets and checks)."""


class DriftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=NO_NUL, description="Only this model's traces."
    )
    prompt: str | None = Field(
        default=None, pattern=_PROMPT_PATTERN, description="Only this prompt's traces: NAME or NAME@VERSION."
    )
    current: str = Field(default="1d", max_length=200, pattern=_WINDOW_PATTERN, description=WINDOW)
    reference: str | None = Field(
        default=None,
        max_length=200,
        pattern=_WINDOW_PATTERN,
        description=f"The reference window (default 7d..1d unless a dataset is given): {WINDOW}.",
    )
    dataset: str | None = Field(
        default=None,
        min_length=1,
        max_length=220,
        pattern=NO_NUL,
        description="A dataset version as the reference instead of a window: NAME or NAME@VERSION.",
    )
    sample: int | None = Field(
        default=None, ge=20, le=100_000, description="Traces sampled per side (default: drift_sample_size)."
    )
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="Seed of the samples and permutations.")
    alpha: float | None = Field(
        default=None, gt=0, lt=1, description="Significance level (default: drift_alpha)."
    )
    checks: list[CheckName] | None = Field(
        default=None, max_length=8, description="The checks to run (default: all)."
    )
    permutations: int | None = Field(
        default=None, ge=99, le=10_000, description="Permutations of the embedding test."
    )


class SideOut(BaseModel):
    kind: Literal["window", "dataset"]
    window: str | None
    since: datetime | None
    until: datetime | None
    dataset: str | None = Field(description="NAME@VERSION when the side is a dataset version.")
    traces: int = Field(description="Traces in the window (rows of the dataset version).")
    sampled: int
    prompts: int = Field(description="Sampled traces (rows) with a prompt.")
    answers: int = Field(description="Sampled successful traces (rows) with an answer.")
    without_content: int = Field(description="Sampled traces stored without their request.")


class CheckOut(BaseModel):
    name: str
    title: str
    status: Literal["ok", "drift", "skipped"] = Field(
        description="drift: Holm-adjusted p-value below alpha; skipped: the summary says why."
    )
    summary: str
    test: str | None
    statistic: float | None
    p_value: float | None
    p_adjusted: float | None = Field(description="Holm-adjusted over the checks that ran.")
    effect: float | None = Field(description="How much moved, 0 to 1.")
    flagged: bool = Field(description="p_value below alpha, before the adjustment.")
    details: dict[str, Any]


class DriftReportOut(BaseModel):
    id: str
    created_at: datetime
    model: str | None
    prompt: str | None
    reference: SideOut
    current: SideOut
    alpha: float
    seed: int
    sample: int
    score: float = Field(description="The largest effect among the checks in drift; 0 when none is.")
    drifted: bool
    checks: list[CheckOut]
    note: str


class DriftCheckOut(BaseModel):
    id: str
    created_at: datetime
    model: str | None
    prompt: str | None
    reference: str
    current: str
    alpha: float
    score: float
    drifted: bool
    traces: int = Field(description="Traces in the current window.")
    p_values: dict[str, float | None]


class DriftCheckListOut(BaseModel):
    data: list[DriftCheckOut]


def drift_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["drift"])
    at_check = {
        "GetCheck": link("get_drift_check", check_id="$response.body#/id"),
        "GetReport": link("get_drift_report_html", check_id="$response.body#/id"),
    }

    @router.post(
        "/api/drift",
        operation_id="run_drift_check",
        response_model=DriftReportOut,
        status_code=201,
        responses={
            201: {"description": "The report of the check, stored.", "links": at_check},
            **error_responses(
                400,
                404,
                descriptions={
                    400: "A window that cannot be read or ends before it starts, both a reference and a "
                    "dataset, a bad prompt reference.",
                    404: "The reference dataset or version does not exist.",
                },
            ),
        },
    )
    def run_drift_check(service: TeamDrift, body: DriftIn) -> dict[str, Any]:
        """Compare the current window's traffic with a reference window or dataset version: prompt and
        answer lengths, language mix, prompt embeddings, new topics, refusal, error and thumbs-down rates.
        Each check has a p-value, a Holm-adjusted one and an effect; the score is the largest effect
        among the checks in drift. The check is stored (GET /api/drift)."""
        request = DriftRequest(
            current=body.current,
            reference=body.reference,
            dataset=body.dataset,
            model=body.model,
            prompt=body.prompt,
            sample=body.sample,
            seed=body.seed,
            alpha=body.alpha,
            checks=tuple(body.checks) if body.checks else None,
            permutations=body.permutations,
        )
        return service.run(request)

    @router.get(
        "/api/drift",
        operation_id="list_drift_checks",
        response_model=DriftCheckListOut,
        responses={
            200: {
                "links": {
                    "GetCheck": link("get_drift_check", check_id="$response.body#/data/0/id"),
                    "GetReport": link("get_drift_report_html", check_id="$response.body#/data/0/id"),
                }
            },
            **error_responses(400),
        },
    )
    def list_drift_checks(
        service: TeamDrift,
        model: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL)] = None,
        prompt: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> dict[str, Any]:
        """Stored drift checks, newest first: score, verdict and each check's p-value."""
        return {"data": service.list_checks(model=model, prompt=prompt, limit=limit)}

    @router.get(
        "/api/drift/{check_id}",
        operation_id="get_drift_check",
        response_model=DriftReportOut,
        responses={
            200: {"links": {"GetReport": link("get_drift_report_html", check_id="$response.body#/id")}},
            **error_responses(400, 404, descriptions=_NOT_FOUND),
        },
    )
    def get_drift_check(service: TeamDrift, check_id: CheckId) -> dict[str, Any]:
        """The stored report of one drift check."""
        return service.get_check(check_id)

    @router.get(
        "/api/drift/{check_id}/html",
        operation_id="get_drift_report_html",
        response_class=Response,  # errors keep their JSON body in the schema; the page is text/html
        responses={
            200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "The report."},
            **error_responses(400, 404, descriptions=_NOT_FOUND),
        },
    )
    def get_drift_report_html(service: TeamDrift, check_id: CheckId) -> HTMLResponse:
        """One drift check as a self-contained HTML page with its plots (inline SVG, no script)."""
        return HTMLResponse(render_html(service.get_check(check_id)), headers=_PAGE_HEADERS)

    return router
