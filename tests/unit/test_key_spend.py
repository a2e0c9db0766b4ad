"""Keys are listed with their spend: counted by the limiter for limited keys, from traces for the rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from llmops.gateway.keys import KeyService
from llmops.ids import new_id
from llmops.limits.policy import Limits
from llmops.limits.spend import SpendRepository
from llmops.store import KeyRepository, TraceRepository
from llmops.store.traces import spend_by_key
from llmops.teams.repository import TeamRepository


def _trace(key_id: str, cost: float, when: datetime) -> dict[str, object]:
    return {
        "id": new_id(),
        "started_at": when,
        "ended_at": when,
        "endpoint": "chat.completions",
        "requested_model": "m",
        "stream": False,
        "status": "ok",
        "status_code": 200,
        "api_key_id": key_id,
        "latency_ms": 10.0,
        "cost": cost,
    }


def test_an_unlimited_keys_spend_comes_from_its_traces(db: Engine) -> None:
    keys = KeyService(
        KeyRepository(db),
        TeamRepository(db),
        spend=SpendRepository(db).current,
        trace_spend=lambda ids: spend_by_key(db, ids),
    )
    free = keys.create("free", "inference").row
    capped = keys.create("capped", "inference", limits=Limits(budget_day=5.0)).row
    now = datetime.now(UTC)
    last_year = now - timedelta(days=400)
    TraceRepository(db).insert_many(
        [_trace(free.id, 0.25, now), _trace(free.id, 0.5, now), _trace(free.id, 2.0, last_year)]
    )
    listed = {view.row.name: view.spend for view in keys.list()}
    assert listed["free"] == {"day": 0.75, "month": 0.75, "total": 2.75}
    assert listed["capped"] == {"day": 0.0, "month": 0.0, "total": 0.0}
    assert capped.id != free.id


def test_an_unlimited_teams_spend_is_what_its_keys_traces_cost(db: Engine) -> None:
    from llmops.store.traces import spend_of_keys
    from llmops.teams.service import TeamService

    key_repository, team_repository = KeyRepository(db), TeamRepository(db)
    teams = TeamService(
        team_repository,
        spend=SpendRepository(db).current,
        trace_spend=lambda team_id: spend_of_keys(db, key_repository.ids_of_team(team_id)),
    )
    keys = KeyService(key_repository, team_repository)
    team = teams.create("search")
    first = keys.create("a", "inference", team="search").row
    second = keys.create("b", "inference", team="search").row
    outsider = keys.create("c", "inference").row
    now = datetime.now(UTC)
    TraceRepository(db).insert_many(
        [_trace(first.id, 0.25, now), _trace(second.id, 0.5, now), _trace(outsider.id, 9.0, now)]
    )
    assert teams.show(team.id).spend == {"day": 0.75, "month": 0.75, "total": 0.75}
    assert [view.spend for view in teams.list()] == [{"day": 0.75, "month": 0.75, "total": 0.75}]
