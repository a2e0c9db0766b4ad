"""Guardrail rules: those of llmops.yaml and those added through the admin API, as one set.

:class:`GuardrailService` stores API rules in the ``guardrail`` table (a rule is checked by building
its guardrail before it is stored, so a bad rule is refused with one line, never stored) and lists
both kinds. A rule of llmops.yaml is read-only here: the file owns it.

:class:`GuardrailKeeper` gives the gateway the rules in force: it builds a
:class:`~llmops.guardrails.engine.GuardrailSet` from the file's rules and the table's, rebuilds it
when this replica changes a rule (at once) or another replica did (it reads the table's revision
every ``guardrail_refresh_seconds``), and after a configuration reload.

Errors: :class:`GuardrailNotFound` (404), :class:`GuardrailConflict` (409: the name is taken, or
the rule belongs to llmops.yaml), and :class:`~llmops.guardrails.base.GuardrailError` (400).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import Engine, delete, func, insert, select, update

from llmops.errors import ConflictError, NotFoundError
from llmops.guardrails.base import GuardrailError
from llmops.guardrails.config import GuardrailConfig
from llmops.guardrails.engine import GuardrailSet, check_rule
from llmops.guardrails.registry import GuardrailRegistry
from llmops.guardrails.tables import guardrail_rules

if TYPE_CHECKING:
    from llmops.audit import Actor, AuditService

log = logging.getLogger("llmops.guardrails")


class GuardrailNotFound(NotFoundError):
    """No guardrail rule of that name."""


class GuardrailConflict(ConflictError):
    """The name is taken, or the rule is declared in llmops.yaml (read-only through the API)."""


@dataclass(frozen=True, slots=True)
class RuleView:
    config: GuardrailConfig
    source: str  # "config" (llmops.yaml) or "api"
    revision: int | None = None
    updated_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.config.model_dump(mode="json"),
            "source": self.source,
            "revision": self.revision,
            "updated_at": self.updated_at,
        }


def parse_config(data: dict[str, Any]) -> GuardrailConfig:
    """A rule from JSON; GuardrailError with the first problem on one line."""
    try:
        return GuardrailConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "rule"
        raise GuardrailError(f"{where}: {first['msg']}", param=where) from exc


class GuardrailService:
    def __init__(
        self,
        engine: Engine,
        configured: Callable[[], Sequence[GuardrailConfig]],
        registry: Callable[[], GuardrailRegistry],
        audit: AuditService | None = None,
    ) -> None:
        self._engine = engine
        self._configured = configured  # llmops.yaml's rules, as the settings are now
        self._registry = registry
        self._audit = audit
        self.on_change: Callable[[], None] | None = None  # the keeper's "rebuild now"

    def all(self) -> list[RuleView]:
        views = [RuleView(config, "config") for config in self._configured()]
        with self._engine.connect() as connection:
            rows = connection.execute(select(guardrail_rules).order_by(guardrail_rules.c.name)).all()
        views.extend(
            RuleView(GuardrailConfig.model_validate(row.config), "api", row.revision, row.updated_at)
            for row in rows
        )
        return views

    def stored(self) -> list[GuardrailConfig]:
        """The API's rules, in name order (what the keeper adds to the file's)."""
        return [view.config for view in self.all() if view.source == "api"]

    def get(self, name: str) -> RuleView:
        for view in self.all():
            if view.config.name == name:
                return view
        raise GuardrailNotFound(f"no guardrail named {name!r}")

    def create(self, config: GuardrailConfig, actor: Actor | None = None) -> RuleView:
        self.check(config)
        if any(view.config.name == config.name for view in self.all()):
            raise GuardrailConflict(f"a guardrail named {config.name!r} exists already", param="name")
        now = datetime.now(UTC)
        with self._engine.begin() as connection:
            connection.execute(
                insert(guardrail_rules).values(
                    name=config.name,
                    config=config.model_dump(mode="json"),
                    revision=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            self._record(actor, "guardrail.create", config.name, None, config, connection)
        self._changed()
        return self.get(config.name)

    def replace(self, name: str, config: GuardrailConfig, actor: Actor | None = None) -> RuleView:
        before = self._stored_view(name)
        if config.name != name:
            raise GuardrailError("the name in the body differs from the one in the path", param="name")
        self.check(config)
        with self._engine.begin() as connection:
            connection.execute(
                update(guardrail_rules)
                .where(guardrail_rules.c.name == name)
                .values(
                    config=config.model_dump(mode="json"),
                    revision=guardrail_rules.c.revision + 1,
                    updated_at=datetime.now(UTC),
                )
            )
            self._record(actor, "guardrail.update", name, before.config, config, connection)
        self._changed()
        return self.get(name)

    def delete(self, name: str, actor: Actor | None = None) -> None:
        before = self._stored_view(name)
        with self._engine.begin() as connection:
            connection.execute(delete(guardrail_rules).where(guardrail_rules.c.name == name))
            self._record(actor, "guardrail.delete", name, before.config, None, connection)
        self._changed()

    def check(self, config: GuardrailConfig) -> None:
        """Build the rule's guardrail now: an unknown type or a bad parameter is refused here."""
        try:
            guard = self._registry().build(config.type, config.params)
        except GuardrailError as exc:
            raise type(exc)(f"guardrail {config.name!r}: {exc.message}", param=exc.param) from exc
        check_rule(config, guard)

    def signature(self) -> tuple[int, int, datetime | None]:
        """Changes when any API rule does: (count, revision sum, latest update)."""
        with self._engine.connect() as connection:
            row = connection.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(guardrail_rules.c.revision), 0),
                    func.max(guardrail_rules.c.updated_at),
                )
            ).one()
        return int(row[0]), int(row[1]), row[2]

    def _stored_view(self, name: str) -> RuleView:
        view = self.get(name)
        if view.source != "api":
            raise GuardrailConflict(
                f"the guardrail {name!r} is declared in llmops.yaml; change it there", param="name"
            )
        return view

    def _record(
        self,
        actor: Actor | None,
        action: str,
        name: str,
        before: GuardrailConfig | None,
        after: GuardrailConfig | None,
        connection: Any,
    ) -> None:
        if self._audit is None or actor is None:
            return
        self._audit.record(
            actor,
            action,
            "guardrail",
            name,
            before=before.model_dump(mode="json") if before else None,
            after=after.model_dump(mode="json") if after else None,
            connection=connection,
        )

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()


class GuardrailKeeper:
    """Builds the rules in force and keeps the gateway's copy current (see the module doc)."""

    def __init__(
        self,
        service: GuardrailService,
        configured: Callable[[], Sequence[GuardrailConfig]],
        registry: GuardrailRegistry,
        apply: Callable[[GuardrailSet], None],
        *,
        refresh_seconds: float,
    ) -> None:
        self._service = service
        self._configured = configured
        self._registry = registry
        self._apply = apply
        self._refresh_seconds = refresh_seconds
        self._signature: tuple[int, int, datetime | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def build(self) -> GuardrailSet:
        """The file's rules and the table's (a stored rule that no longer builds is skipped, logged)."""
        rules = GuardrailSet.build(self._configured(), self._registry)
        stored = []
        for config in self._service.stored():
            if any(rule.name == config.name for rule in rules.rules):
                log.warning(
                    "guardrail %s is in llmops.yaml and the database; the file's is used", config.name
                )
                continue
            try:
                GuardrailSet.build([config], self._registry)
            except GuardrailError as exc:
                log.error("guardrail %s cannot be built, skipped: %s", config.name, exc.message)
                continue
            stored.append(config)
        return GuardrailSet.build([*self._configured(), *stored], self._registry)

    def load(self) -> None:
        """Build and apply now (at start, in a thread)."""
        self._signature = self._service.signature()
        self._apply(self.build())

    def start(self) -> None:
        loop = asyncio.get_running_loop()

        # API routes change rules from worker threads: wake the event loop's task thread-safely
        def wake() -> None:
            loop.call_soon_threadsafe(self._wake.set)

        self._service.on_change = wake
        self._task = asyncio.create_task(self._follow())

    def changed(self) -> None:
        """Rebuild soon (a rule changed here, or the configuration was reloaded)."""
        self._signature = None
        self._wake.set()

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._refresh_seconds):
                    await self._wake.wait()
            self._wake.clear()
            try:
                signature = await asyncio.to_thread(self._service.signature)
                if signature != self._signature or self._signature is None:
                    rules = await asyncio.to_thread(self.build)
                    self._apply(rules)
                    self._signature = signature
            except Exception as exc:  # boundary: keep the rules in force, try again next round
                log.warning("guardrails: could not refresh the rules: %s", exc)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
