"""Teams: create, list, show, change their models and limits, and manage members.

Errors: :class:`TeamNotFound` (404), :class:`TeamConflict` (409), :class:`InvalidTeamRequest` (400),
all :class:`llmops.errors.UserError`, so the CLI and the API report them alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from llmops.audit.actor import Actor
from llmops.errors import ConflictError, NotFoundError, UserError
from llmops.ids import new_id
from llmops.limits.policy import NO_LIMITS, InvalidLimits, Limits
from llmops.teams.repository import MemberRow, TeamRepository, TeamRow
from llmops.teams.roles import ROLES

_MAX_NAME = 200
UNSET: Any = object()  # "not given" where None means something (allow every model)
_MAX_PATTERNS = 200


class InvalidTeamRequest(UserError):
    pass


class TeamNotFound(NotFoundError):
    pass


class TeamConflict(ConflictError):
    pass


class AuditSink(Protocol):
    """Where changes are recorded (:class:`llmops.audit.service.AuditService`)."""

    def record(
        self,
        actor: Actor,
        action: str,
        target_type: str,
        target: str | None,
        *,
        before: Any = None,
        after: Any = None,
        team_id: str | None = None,
    ) -> None: ...


class SpendReader(Protocol):
    """(scope, ids) → spend per id and period (``day``, ``month``, ``total``) in USD."""

    def __call__(self, scope: str, ids: Iterable[str]) -> Mapping[str, Mapping[Any, float]]: ...


@dataclass(frozen=True, slots=True)
class TeamView:
    team: TeamRow
    members: list[MemberRow]
    key_count: int
    spend: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            **team_fields(self.team),
            "members": [asdict(member) for member in self.members],
            "key_count": self.key_count,
            "spend": self.spend,
        }


def team_fields(row: TeamRow) -> dict[str, Any]:
    limits = Limits.from_json(row.limits)
    return {
        "id": row.id,
        "name": row.name,
        "models": row.models,
        "rpm": limits.rpm,
        "tpm": limits.tpm,
        "budget": limits.budgets(),
        "metadata": row.metadata or {},
        "created_at": row.created_at,
    }


def check_name(name: str, what: str = "name") -> str:
    if any(ch < " " or ch == "\x7f" for ch in name):
        raise InvalidTeamRequest(f"{what}: control characters are not allowed", param=what)
    name = name.strip()
    if not name or len(name) > _MAX_NAME:
        raise InvalidTeamRequest(f"{what}: needs 1 to {_MAX_NAME} characters", param=what)
    return name


def check_models(models: list[str] | None) -> list[str] | None:
    """Model names or glob patterns (``gpt-*``); None allows every model, an empty list none."""
    if models is None:
        return None
    if len(models) > _MAX_PATTERNS:
        raise InvalidTeamRequest(f"models: at most {_MAX_PATTERNS} names or patterns", param="models")
    return [check_name(pattern, "models") for pattern in models]


class TeamService:
    def __init__(
        self,
        teams: TeamRepository,
        *,
        audit: AuditSink | None = None,
        key_count: Callable[[str], int] | None = None,
        spend: SpendReader | None = None,
        trace_spend: Callable[[str], dict[str, float]] | None = None,
    ) -> None:
        self._teams = teams
        self.audit = audit
        self._key_count = key_count
        self.spend = spend
        self._trace_spend = trace_spend  # for teams no limit counts: what their keys' traces cost

    def create(
        self,
        name: str,
        *,
        models: list[str] | None = None,
        limits: Limits = NO_LIMITS,
        metadata: dict[str, Any] | None = None,
        actor: Actor | None = None,
    ) -> TeamRow:
        row = TeamRow(
            id=f"team_{new_id()}",
            name=check_name(name),
            models=check_models(models),
            limits=limits.to_json() or None,
            metadata=metadata or None,
            created_at=datetime.now(UTC),
        )
        if not self._teams.add(row):
            raise TeamConflict(f"name: a team named {row.name!r} exists already", param="name")
        self._record(actor, "create_team", row, after=team_fields(row))
        return row

    def get(self, team: str) -> TeamRow:
        row = self._teams.find(team)
        if row is None:
            raise TeamNotFound(f"no team with id or name {team!r}", param="team")
        return row

    def list(self) -> list[TeamView]:
        return [self._view(row, members=False) for row in self._teams.ordered()]

    def show(self, team: str) -> TeamView:
        return self._view(self.get(team), members=True)

    def update(
        self,
        team: str,
        *,
        models: Any = UNSET,
        limits: Limits | None = None,
        metadata: dict[str, Any] | None = None,
        actor: Actor | None = None,
    ) -> TeamRow:
        """Change what is given: ``models`` (pass None to allow every model), limits, metadata."""
        row = self.get(team)
        values: dict[str, Any] = {}
        if models is not UNSET:
            values["models"] = check_models(models)
        if limits is not None:
            values["limits"] = limits.to_json() or None
        if metadata is not None:
            values["metadata"] = metadata or None
        if values:
            self._teams.update(row.id, values)
        updated = self.get(row.id)
        self._record(actor, "update_team", updated, before=team_fields(row), after=team_fields(updated))
        return updated

    def add_member(
        self, team: str, user: str, role: str = "viewer", *, actor: Actor | None = None
    ) -> MemberRow:
        row = self.get(team)
        user = check_name(user, "user")
        if role not in ROLES:
            raise InvalidTeamRequest(f"role: expected one of {', '.join(ROLES)}, got {role!r}", param="role")
        member = MemberRow(user=user, role=role, added_at=datetime.now(UTC))
        previous = self._teams.put_member(row.id, member)
        if self.audit is not None and actor is not None:
            self.audit.record(
                actor,
                "add_team_member",
                "team",
                row.name,
                before=asdict(previous) if previous else None,
                after={"user": user, "role": role},
                team_id=row.id,
            )
        return previous if previous is not None and previous.role == role else member

    def remove_member(self, team: str, user: str, *, actor: Actor | None = None) -> None:
        row = self.get(team)
        if not self._teams.remove_member(row.id, user):
            raise TeamNotFound(f"{user!r} is not a member of team {row.name!r}", param="user")
        if self.audit is not None and actor is not None:
            self.audit.record(
                actor, "remove_team_member", "team", row.name, before={"user": user}, team_id=row.id
            )

    def _view(self, row: TeamRow, *, members: bool) -> TeamView:
        spend = dict(self.spend("team", [row.id]).get(row.id, {})) if self.spend else {}
        if self._trace_spend is not None and not any(spend.values()):
            spend = self._trace_spend(row.id)
        return TeamView(
            team=row,
            members=self._teams.members(row.id) if members else [],
            key_count=self._key_count(row.id) if self._key_count else 0,
            spend=dict(spend),
        )

    def _record(self, actor: Actor | None, action: str, row: TeamRow, **change: Any) -> None:
        if self.audit is not None and actor is not None:
            self.audit.record(actor, action, "team", row.name, team_id=row.id, **change)


def parse_limits(rpm: int | None, tpm: int | None, budgets: dict[str, float] | None) -> Limits:
    """Limits from the fields of a request or the CLI's options, with readable errors."""
    fields: dict[str, Any] = {"rpm": rpm, "tpm": tpm}
    for period, usd in (budgets or {}).items():
        fields[f"budget_{period}"] = usd
    unknown = set(budgets or {}) - {"day", "month", "total"}
    if unknown:
        raise InvalidTeamRequest(
            f"budget: unknown period {sorted(unknown)[0]!r} (day, month or total)", param="budget"
        )
    try:
        return Limits.from_json(fields)
    except InvalidLimits as exc:
        raise InvalidTeamRequest(str(exc)) from None
