"""Admin routes of alerts: rules (/api/alerts), their history (/api/alert-events) and silences
(/api/alert-silences).

Rules of llmops.yaml are listed (``source: config``) but changed only in the file; rules added here
are stored and evaluated by whichever replica holds the evaluator's lease, from its next round.
``POST /api/alerts/{name}/test`` measures a rule now, and with ``send`` sends a test notification
through its channels.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StringConstraints,
    field_validator,
    model_validator,
)

from llmops.alerts.config import (
    DURATION_PATTERN,
    LABEL_PATTERN,
    STATISTICS,
    TEXT,
    AlertRuleConfig,
    duration_seconds,
)
from llmops.alerts.silences import Silence
from llmops.guardrails.config import NAME_PATTERN
from llmops.server.admin_auth import Caller, actor_of
from llmops.server.admin_schema import NO_NUL, error_responses, link
from llmops.server.audit_recording import mark_audited
from llmops.services import Services
from llmops.tracing.service import DURATION_PATTERN as SINCE_DURATION
from llmops.tracing.service import ID_PATTERN, parse_since

NamePath = Annotated[
    str,
    Path(description="Letters, digits, '.', '_' or '-' (1 to 100), starting with a letter or digit.",
         pattern=NAME_PATTERN),
]  # fmt: skip
SilencePath = Annotated[str, Path(description="The silence's id.", pattern=ID_PATTERN)]
_NO_RULE = {404: "No alert rule has this name."}
_NO_SILENCE = {404: "No silence has this id."}
_SINCE_SCHEMA: dict[str, JsonValue] = {
    "anyOf": [
        {"type": "string", "pattern": SINCE_DURATION},
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
    ]
}


class AlertStatusOut(BaseModel):
    state: Literal["ok", "pending", "firing", "resolved"]
    since: datetime = Field(description="When the rule entered this state.")
    active_at: datetime | None = Field(description="When the condition began to hold (pending, firing).")
    value: float | None = Field(description="The statistic at the last evaluation (null: no data).")
    evaluated_at: datetime | None
    notified_at: datetime | None = Field(description="The last firing notification sent in this episode.")
    silence_id: str | None = Field(description="The silence holding this episode's notifications back.")


class AlertOut(AlertRuleConfig):
    source: Literal["config", "api"] = Field(description="config: llmops.yaml (read-only here); api: stored.")
    revision: int | None = Field(description="Grows with every change of a stored rule; null for config.")
    updated_at: datetime | None
    status: AlertStatusOut | None = Field(description="Null until the evaluator has seen the rule.")


class EvaluatorOut(BaseModel):
    holder: str = Field(description="The replica (host:pid:nonce) that evaluates the rules.")
    expires_at: datetime = Field(description="When its lease runs out unless renewed.")


class AlertListOut(BaseModel):
    data: list[AlertOut]
    statistics: list[str] = Field(description="The statistics a rule can measure.")
    channel_types: list[str] = Field(description="The channel types this server knows.")
    channels: list[str] = Field(description="Named channels (alert_channels of llmops.yaml, and log).")
    evaluator: EvaluatorOut | None = Field(description="Who evaluates the rules now (null: nobody yet).")


class DeliveryOut(BaseModel):
    channel: str
    type: str
    ok: bool
    attempts: int
    error: str | None
    ms: float


class AlertEventOut(BaseModel):
    id: str
    rule: str
    kind: Literal["firing", "resolved", "repeat", "test"]
    at: datetime
    severity: str
    value: float | None
    threshold: float | None
    condition: str
    labels: dict[str, str]
    silence_id: str | None = Field(description="Recorded but not sent: this silence matched.")
    sent: bool = Field(description="Delivered to at least one channel.")
    deliveries: list[DeliveryOut]
    message: str


class AlertEventPageOut(BaseModel):
    data: list[AlertEventOut]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next (older) page.")


class AlertTestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    send: StrictBool = Field(
        default=False, description="Also send a test notification through the rule's channels (one try)."
    )


class AlertTestOut(BaseModel):
    rule: str
    value: float | None = Field(description="The statistic now (null: nothing to judge; see note).")
    requests: int | None
    since: datetime | None = Field(description="Start of the window measured (aligned to the rollups).")
    until: datetime
    note: str | None
    holds: bool | None = Field(description="Whether the condition holds now (null: no value).")
    deliveries: list[DeliveryOut]
    event_id: str | None = Field(description="The history event of the test notification, if sent.")


class SilenceIn(BaseModel):
    """Give ``ends_at`` or ``duration``."""

    model_config = ConfigDict(extra="forbid")

    rule: str = Field(
        default="*", min_length=1, max_length=200, pattern=NO_NUL, description="A glob of rule names."
    )
    labels: dict[Annotated[str, StringConstraints(pattern=LABEL_PATTERN)], TEXT] = Field(
        default_factory=dict, max_length=50, description="Each must equal the rule's (severity counts)."
    )
    starts_at: datetime | None = Field(default=None, description="Default: now.")
    ends_at: datetime | None = Field(default=None, description="When it ends (at most a year ahead).")
    duration: Annotated[str, StringConstraints(pattern=DURATION_PATTERN)] | None = Field(
        default=None, description="Or how long it lasts from its start, e.g. 2h."
    )
    comment: str | None = Field(default=None, max_length=2000, pattern=NO_NUL)

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("expected an ISO 8601 date-time")  # not a number of seconds
        return value

    @model_validator(mode="after")
    def _one_end(self) -> SilenceIn:
        if (self.ends_at is None) == (self.duration is None):
            raise ValueError("give ends_at or duration (one of them)")
        return self


class SilenceOut(BaseModel):
    id: str
    rule: str
    labels: dict[str, str]
    starts_at: datetime
    ends_at: datetime
    active: bool
    comment: str | None
    created_by: str | None
    created_at: datetime | None


class SilenceListOut(BaseModel):
    data: list[SilenceOut]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def alert_routes(services: Services) -> APIRouter:
    router = APIRouter(tags=["alerts"])
    alerts = services.store.alerts

    @router.get(
        "/api/alerts",
        operation_id="list_alerts",
        response_model=AlertListOut,
        responses={
            200: {"links": {"GetAlert": link("get_alert", name="$response.body#/data/0/name")}},
            **error_responses(),
        },
    )
    def list_alerts(_: Caller) -> dict[str, Any]:
        """Every rule with its state: those of llmops.yaml first, then those added through this API."""
        lease = services.alert_evaluator.elector.current()
        return {
            "data": [view.as_dict() for view in alerts.all()],
            "statistics": list(STATISTICS),
            "channel_types": alerts.registry.names(),
            "channels": sorted({*alerts.channels(), "log"}),
            "evaluator": {"holder": lease[0], "expires_at": lease[1]} if lease and lease[0] else None,
        }

    @router.post(
        "/api/alerts",
        operation_id="create_alert",
        status_code=201,
        response_model=AlertOut,
        responses={
            201: {"links": {"GetAlert": link("get_alert", name="$response.body#/name")}},
            **error_responses(400, 409, descriptions={409: "An alert rule has this name already."}),
        },
    )
    def create_alert(principal: Caller, request: Request, body: AlertRuleConfig) -> dict[str, Any]:
        """Add a rule; its channels are checked (names known, options right for their type) first."""
        view = alerts.create(body, actor_of(request, principal))
        mark_audited(request)
        return view.as_dict()

    @router.get(
        "/api/alerts/{name}",
        operation_id="get_alert",
        response_model=AlertOut,
        responses=error_responses(400, 404, descriptions=_NO_RULE),
    )
    def get_alert(_: Caller, name: NamePath) -> dict[str, Any]:
        """One rule and its state."""
        return alerts.get(name).as_dict()

    @router.put(
        "/api/alerts/{name}",
        operation_id="replace_alert",
        response_model=AlertOut,
        responses=error_responses(
            400, 404, 409, descriptions={**_NO_RULE, 409: "The rule is declared in llmops.yaml."}
        ),
    )
    def replace_alert(
        principal: Caller, request: Request, name: NamePath, body: AlertRuleConfig
    ) -> dict[str, Any]:
        """Replace a stored rule (the body's name must be the path's); its state carries on."""
        view = alerts.replace(name, body, actor_of(request, principal))
        mark_audited(request)
        return view.as_dict()

    @router.delete(
        "/api/alerts/{name}",
        operation_id="delete_alert",
        status_code=204,
        responses=error_responses(
            400, 404, 409, descriptions={**_NO_RULE, 409: "The rule is declared in llmops.yaml."}
        ),
    )
    def delete_alert(principal: Caller, request: Request, name: NamePath) -> None:
        """Delete a stored rule (its history stays)."""
        alerts.delete(name, actor_of(request, principal))
        mark_audited(request)

    @router.post(
        "/api/alerts/{name}/test",
        operation_id="test_alert",
        response_model=AlertTestOut,
        responses={
            200: {"links": {"ListEvents": link("list_alert_events", rule="$request.path.name")}},
            **error_responses(400, 404, descriptions=_NO_RULE),
        },
    )
    async def try_alert(_: Caller, name: NamePath, body: AlertTestIn | None = None) -> dict[str, Any]:
        """Measure the rule now (value, whether it holds); with `send`, also send a test notification
        through its channels, one try each, recorded in the history."""
        send = body is not None and body.send
        result = await alerts.test(name, send=send)
        return result.as_dict()

    @router.get(
        "/api/alert-events",
        operation_id="list_alert_events",
        response_model=AlertEventPageOut,
        responses=error_responses(400),
    )
    def list_alert_events(
        _: Caller,
        rule: Annotated[str | None, Query(description="One rule's events", pattern=NAME_PATTERN)] = None,
        kind: Literal["firing", "resolved", "repeat", "test"] | None = None,
        since: Annotated[
            str | None,
            Query(
                description="30m, 2h, 7d (ago), an ISO 8601 date or date-time (UTC when it has no offset)",
                json_schema_extra=_SINCE_SCHEMA,
            ),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[
            str | None, Query(description="`next_cursor` of the previous page", pattern=ID_PATTERN)
        ] = None,
    ) -> dict[str, Any]:
        """The history, newest first: notifications sent, and those a silence held back."""
        events, cursor = alerts.history(
            rule=rule,
            kind=kind,
            since=parse_since(since) if since is not None else None,
            limit=limit,
            cursor=cursor,
        )
        return {"data": [event.as_dict() for event in events], "next_cursor": cursor}

    _silence_routes(router, services)
    return router


def _silence_routes(router: APIRouter, services: Services) -> None:
    silences = services.store.alerts.silences
    read_silence = {
        "GetSilence": link("get_alert_silence", silence_id="$response.body#/id"),
        "EndSilence": link("end_alert_silence", silence_id="$response.body#/id"),
        "DeleteSilence": link("delete_alert_silence", silence_id="$response.body#/id"),
    }

    @router.get(
        "/api/alert-silences",
        operation_id="list_alert_silences",
        response_model=SilenceListOut,
        responses={
            200: {"links": {"GetSilence": link("get_alert_silence", silence_id="$response.body#/data/0/id")}},
            **error_responses(400),
        },
    )
    def list_alert_silences(
        _: Caller,
        include_ended: Annotated[bool, Query(description="Also silences that have ended")] = False,
    ) -> dict[str, Any]:
        """Silences, newest first (by default those not yet ended)."""
        now = datetime.now(UTC)
        return {"data": [s.as_dict(now) for s in silences.all(include_ended=include_ended, now=now)]}

    @router.post(
        "/api/alert-silences",
        operation_id="create_alert_silence",
        status_code=201,
        response_model=SilenceOut,
        responses={201: {"links": read_silence}, **error_responses(400)},
    )
    def create_alert_silence(principal: Caller, request: Request, body: SilenceIn) -> dict[str, Any]:
        """Hold back the notifications of the matching rules until the end time (recorded, not sent)."""
        now = datetime.now(UTC)
        starts_at = _utc(body.starts_at) if body.starts_at is not None else now
        if body.ends_at is not None:
            ends_at = _utc(body.ends_at)
        else:
            ends_at = _plus(starts_at, duration_seconds(body.duration or "0s"))
        silence: Silence = silences.create(
            body.rule,
            ends_at,
            labels=body.labels,
            starts_at=starts_at,
            comment=body.comment,
            actor=actor_of(request, principal),
            now=now,
        )
        mark_audited(request)
        return silence.as_dict(now)

    @router.get(
        "/api/alert-silences/{silence_id}",
        operation_id="get_alert_silence",
        response_model=SilenceOut,
        responses=error_responses(400, 404, descriptions=_NO_SILENCE),
    )
    def get_alert_silence(_: Caller, silence_id: SilencePath) -> dict[str, Any]:
        """One silence."""
        return silences.get(silence_id).as_dict()

    @router.post(
        "/api/alert-silences/{silence_id}/end",
        operation_id="end_alert_silence",
        response_model=SilenceOut,
        responses=error_responses(400, 404, descriptions=_NO_SILENCE),
    )
    def end_alert_silence(principal: Caller, request: Request, silence_id: SilencePath) -> dict[str, Any]:
        """End a silence now (it stays listed with `include_ended`); notifications flow again."""
        silence = silences.end(silence_id, actor_of(request, principal))
        mark_audited(request)
        return silence.as_dict()

    @router.delete(
        "/api/alert-silences/{silence_id}",
        operation_id="delete_alert_silence",
        status_code=204,
        responses=error_responses(400, 404, descriptions=_NO_SILENCE),
    )
    def delete_alert_silence(principal: Caller, request: Request, silence_id: SilencePath) -> None:
        """Remove a silence altogether (ending it keeps it listed)."""
        silences.delete(silence_id, actor_of(request, principal))
        mark_audited(request)


def _plus(start: datetime, seconds: int) -> datetime:
    try:
        return start + timedelta(seconds=seconds)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)
