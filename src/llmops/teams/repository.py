"""Team rows and their members."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from llmops.teams.tables import team_members, teams


@dataclass(frozen=True, slots=True)
class TeamRow:
    id: str
    name: str
    models: list[str] | None
    limits: dict[str, Any] | None
    metadata: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MemberRow:
    user: str
    role: str
    added_at: datetime


class TeamRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add(self, row: TeamRow) -> bool:
        """Insert a team; False when its name is taken (the unique constraint decides, race-free)."""
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(teams).values(**asdict(row)))
        except IntegrityError:
            return False
        return True

    def find(self, id_or_name: str) -> TeamRow | None:
        query = select(*_columns()).where((teams.c.id == id_or_name) | (teams.c.name == id_or_name))
        with self._engine.connect() as connection:
            found = connection.execute(query).first()
        return TeamRow(*found) if found else None

    def all(self) -> dict[str, TeamRow]:
        """Every team by id (the key cache joins keys with these)."""
        with self._engine.connect() as connection:
            return {row[0]: TeamRow(*row) for row in connection.execute(select(*_columns()))}

    def ordered(self) -> list[TeamRow]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(*_columns()).order_by(teams.c.name))
            return [TeamRow(*row) for row in rows]

    def update(self, team_id: str, values: dict[str, Any]) -> None:
        with self._engine.begin() as connection:
            connection.execute(update(teams).where(teams.c.id == team_id).values(**values))

    def members(self, team_id: str) -> list[MemberRow]:
        c = team_members.c
        query = select(c.user, c.role, c.added_at).where(c.team_id == team_id).order_by(c.user)
        with self._engine.connect() as connection:
            return [MemberRow(*row) for row in connection.execute(query)]

    def put_member(self, team_id: str, member: MemberRow) -> MemberRow | None:
        """Add a member or change their role; the previous row, if there was one."""
        c = team_members.c
        with self._engine.begin() as connection:
            found = connection.execute(
                select(c.user, c.role, c.added_at).where(c.team_id == team_id, c.user == member.user)
            ).first()
            if found is None:
                connection.execute(insert(team_members).values(team_id=team_id, **asdict(member)))
                return None
            connection.execute(
                update(team_members)
                .where(c.team_id == team_id, c.user == member.user)
                .values(role=member.role)
            )
            return MemberRow(*found)

    def remove_member(self, team_id: str, user: str) -> bool:
        c = team_members.c
        with self._engine.begin() as connection:
            return (
                connection.execute(delete(team_members).where(c.team_id == team_id, c.user == user)).rowcount
                == 1
            )


def _columns() -> tuple[Any, ...]:
    c = teams.c
    return (c.id, c.name, c.models, c.limits, c.metadata, c.created_at)
