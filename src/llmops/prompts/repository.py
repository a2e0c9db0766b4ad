"""SQL access for the prompt registry: plain rows in, plain rows out (synchronous; call from threads).

A prompt belongs to the team of the key that created it (``team_id``; None: no team). Reads that take
a ``team`` scope (:mod:`llmops.store.scope`) leave other teams' prompts out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from llmops.ids import new_id
from llmops.prompts.tables import (
    prompt_label_events,
    prompt_labels,
    prompt_versions,
    prompts,
    registry_revisions,
)
from llmops.store.scope import ALL_TEAMS, TeamScope, owned_by, owner_of_new, sees

AREA = "prompts"


class ForeignPrompt(LookupError):
    """The prompt exists but belongs to a team the writer does not see."""


def _now() -> datetime:
    return datetime.now(UTC)


def _dict(row: Any) -> dict[str, Any]:
    return dict(row._mapping)


class PromptRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # -- the change counter replicas poll ---------------------------------------------------------

    def revision(self) -> int:
        with self._engine.connect() as connection:
            value = connection.execute(
                select(registry_revisions.c.revision).where(registry_revisions.c.area == AREA)
            ).scalar()
        return int(value or 0)

    def bump_revision(self, connection: Connection) -> None:
        updated = connection.execute(
            update(registry_revisions)
            .where(registry_revisions.c.area == AREA)
            .values(revision=registry_revisions.c.revision + 1, updated_at=_now())
        )
        if updated.rowcount == 0:
            try:
                with connection.begin_nested():
                    connection.execute(
                        insert(registry_revisions).values(area=AREA, revision=1, updated_at=_now())
                    )
            except IntegrityError:  # another writer created it at the same moment
                connection.execute(
                    update(registry_revisions)
                    .where(registry_revisions.c.area == AREA)
                    .values(revision=registry_revisions.c.revision + 1, updated_at=_now())
                )

    # -- prompts and versions ---------------------------------------------------------------------

    def get_prompt(self, name: str) -> dict[str, Any] | None:
        with self._engine.connect() as connection:
            row = connection.execute(select(prompts).where(prompts.c.name == name)).first()
        return _dict(row) if row else None

    def list_prompts(
        self, *, tag: str | None = None, search: str | None = None, team: TeamScope = ALL_TEAMS
    ) -> list[dict[str, Any]]:
        query = select(prompts).where(*owned_by(prompts.c.team_id, team)).order_by(prompts.c.name)
        if search:
            query = query.where(prompts.c.name.contains(search, autoescape=True))
        with self._engine.connect() as connection:
            rows = [_dict(row) for row in connection.execute(query)]
            labels = connection.execute(select(prompt_labels)).all()
        by_prompt: dict[str, dict[str, int]] = {}
        for label in labels:
            by_prompt.setdefault(label.prompt, {})[label.label] = label.version
        for row in rows:
            row["labels"] = by_prompt.get(row["name"], {})
        if tag:
            rows = [row for row in rows if tag in (row["tags"] or [])]
        return rows

    def add_version(
        self,
        name: str,
        kind: str,
        content_hash: str,
        content: dict[str, Any],
        *,
        message: str | None,
        author: str | None,
        description: str | None,
        tags: list[str] | None,
        team: TeamScope = ALL_TEAMS,
    ) -> tuple[dict[str, Any], bool]:
        """The version with this content, created when new; (row, created). Retries once on a race.

        A new prompt belongs to ``team`` (no team for :data:`ALL_TEAMS`); a prompt ``team`` does not
        see raises :class:`ForeignPrompt`, checked in the transaction that writes.
        """
        arguments = (name, kind, content_hash, content, message, author, description, tags, team)
        try:
            return self._add_version(*arguments)
        except IntegrityError:  # another writer stored the prompt or the version first: read it, or go on
            return self._add_version(*arguments)

    def _add_version(
        self,
        name: str,
        kind: str,
        content_hash: str,
        content: dict[str, Any],
        message: str | None,
        author: str | None,
        description: str | None,
        tags: list[str] | None,
        team: TeamScope,
    ) -> tuple[dict[str, Any], bool]:
        now = _now()
        with self._engine.begin() as connection:
            prompt = connection.execute(select(prompts).where(prompts.c.name == name)).first()
            if prompt is not None and not sees(team, prompt.team_id):
                raise ForeignPrompt(name)
            if prompt is not None:
                existing = connection.execute(
                    select(prompt_versions).where(
                        prompt_versions.c.prompt == name, prompt_versions.c.content_hash == content_hash
                    )
                ).first()
                meta_changed = (description is not None and description != prompt.description) or (
                    tags is not None and tags != (prompt.tags or [])
                )
                if meta_changed:
                    values: dict[str, Any] = {"updated_at": now}
                    if description is not None:
                        values["description"] = description
                    if tags is not None:
                        values["tags"] = tags
                    connection.execute(update(prompts).where(prompts.c.name == name).values(**values))
                    self.bump_revision(connection)
                if existing is not None:
                    return _dict(existing), False
                number = int(prompt.latest_version) + 1
                connection.execute(
                    update(prompts)
                    .where(prompts.c.name == name, prompts.c.latest_version == prompt.latest_version)
                    .values(latest_version=number, updated_at=now, kind=kind)
                )
            else:
                number = 1
                connection.execute(
                    insert(prompts).values(
                        name=name,
                        kind=kind,
                        description=description,
                        tags=tags or [],
                        latest_version=1,
                        created_at=now,
                        updated_at=now,
                        team_id=owner_of_new(team),
                    )
                )
            row = {
                "prompt": name,
                "number": number,
                "content_hash": content_hash,
                "content": content,
                "message": message,
                "author": author,
                "created_at": now,
            }
            connection.execute(insert(prompt_versions).values(**row))
            self.bump_revision(connection)
        return row, True

    def get_version(self, name: str, number: int) -> dict[str, Any] | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(prompt_versions).where(
                    prompt_versions.c.prompt == name, prompt_versions.c.number == number
                )
            ).first()
        return _dict(row) if row else None

    def versions(self, name: str) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(prompt_versions)
                .where(prompt_versions.c.prompt == name)
                .order_by(prompt_versions.c.number)
            ).all()
        return [_dict(row) for row in rows]

    # -- labels -------------------------------------------------------------------------------------

    def labels(self, name: str) -> list[dict[str, Any]]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(prompt_labels).where(prompt_labels.c.prompt == name).order_by(prompt_labels.c.label)
            ).all()
        return [_dict(row) for row in rows]

    def label(self, name: str, label: str) -> dict[str, Any] | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(prompt_labels).where(prompt_labels.c.prompt == name, prompt_labels.c.label == label)
            ).first()
        return _dict(row) if row else None

    def move_label(
        self, name: str, label: str, version: int | None, *, action: str, author: str | None
    ) -> dict[str, Any]:
        """Point ``label`` at ``version`` (None removes it); records the move. Returns the event."""
        now = _now()
        with self._engine.begin() as connection:
            current = connection.execute(
                select(prompt_labels.c.version).where(
                    prompt_labels.c.prompt == name, prompt_labels.c.label == label
                )
            ).scalar()
            if version is None:
                connection.execute(
                    prompt_labels.delete().where(
                        prompt_labels.c.prompt == name, prompt_labels.c.label == label
                    )
                )
            elif current is None:
                connection.execute(
                    insert(prompt_labels).values(
                        prompt=name, label=label, version=version, updated_at=now, updated_by=author
                    )
                )
            else:
                connection.execute(
                    update(prompt_labels)
                    .where(prompt_labels.c.prompt == name, prompt_labels.c.label == label)
                    .values(version=version, updated_at=now, updated_by=author)
                )
            event = {
                "id": new_id(),
                "prompt": name,
                "label": label,
                "from_version": current,
                "to_version": version,
                "action": action,
                "author": author,
                "created_at": now,
            }
            connection.execute(insert(prompt_label_events).values(**event))
            connection.execute(update(prompts).where(prompts.c.name == name).values(updated_at=now))
            self.bump_revision(connection)
        return event

    def label_history(self, name: str, label: str | None = None) -> list[dict[str, Any]]:
        """Oldest first."""
        query = select(prompt_label_events).where(prompt_label_events.c.prompt == name)
        if label is not None:
            query = query.where(prompt_label_events.c.label == label)
        with self._engine.connect() as connection:
            rows = connection.execute(
                query.order_by(prompt_label_events.c.created_at, prompt_label_events.c.id)
            ).all()
        return [_dict(row) for row in rows]

    def count(self) -> int:
        with self._engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(prompts)).scalar_one())
