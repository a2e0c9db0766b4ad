"""Leader election through the database: exactly one replica holds a named lease at a time.

The lease is one row of ``alert_lease`` (holder, expiry). A replica takes or renews it with one
compare-and-set ``UPDATE ... WHERE name = :name AND (expires_at < :now OR holder = :me)``: the
database lets exactly one of several racing replicas change the row, on SQLite and on Postgres alike.
The holder renews every round (and during a long round, see the evaluator); if it stops (crash,
network) the lease runs out after ``ttl_seconds`` and the next replica to ask takes it.
:meth:`LeaseElector.release` ends it at once (a clean stop). :meth:`LeaseElector.holds` fences a write:
checked inside the writing transaction (the lease row locked on Postgres), it refuses a replica that
lost the lease while it paused.

Times come from each replica's clock: replicas whose clocks differ by more than a fraction of the ttl
could overlap briefly (keep clocks in sync, as NTP does).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from llmops.alerts.tables import alert_leases
from llmops.ids import new_id

_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def default_holder() -> str:
    """``host:pid:random``: unique per process, readable in the table."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{new_id()[-8:]}"


class LeaseElector:
    def __init__(
        self,
        engine: Engine,
        name: str,
        *,
        ttl_seconds: float,
        holder: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self.name = name
        self.holder = holder or default_holder()
        self.ttl_seconds = ttl_seconds
        self._ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock
        self.leading = False

    def acquire(self) -> bool:
        """Take or renew the lease; True while this replica holds it."""
        now = self._clock()
        c = alert_leases.c
        statement = (
            update(alert_leases)
            .where(c.name == self.name, (c.expires_at < now) | (c.holder == self.holder))
            .values(holder=self.holder, expires_at=now + self._ttl)
        )
        with self._engine.begin() as connection:
            taken = connection.execute(statement).rowcount == 1
        if not taken and not self._exists():
            self._create()
            return self.acquire()
        if taken and not self.leading:
            with self._engine.begin() as connection:  # when this holder's term began (for listings)
                connection.execute(
                    update(alert_leases)
                    .where(c.name == self.name, c.holder == self.holder)
                    .values(acquired_at=now)
                )
        self.leading = taken
        return taken

    def release(self) -> None:
        """Give the lease up now (if held), so that another replica takes over at its next round."""
        c = alert_leases.c
        with self._engine.begin() as connection:
            connection.execute(
                update(alert_leases)
                .where(c.name == self.name, c.holder == self.holder)
                .values(expires_at=_NEVER)
            )
        self.leading = False

    def holds(self, connection: Connection | None = None) -> bool:
        """Whether this replica holds the lease now (read in ``connection``'s transaction, if given)."""
        c = alert_leases.c
        query = select(c.holder, c.expires_at).where(c.name == self.name).with_for_update()
        if connection is None:
            with self._engine.connect() as own:
                row = own.execute(query).first()
        else:
            row = connection.execute(query).first()
        return row is not None and row.holder == self.holder and row.expires_at > self._clock()

    def current(self) -> tuple[str, datetime] | None:
        """(holder, expiry) of the lease, if any replica ever held it."""
        c = alert_leases.c
        with self._engine.connect() as connection:
            row = connection.execute(select(c.holder, c.expires_at).where(c.name == self.name)).first()
        return (row.holder, row.expires_at) if row else None

    def _exists(self) -> bool:
        with self._engine.connect() as connection:
            found = connection.execute(select(alert_leases.c.name).where(alert_leases.c.name == self.name))
            return found.first() is not None

    def _create(self) -> None:
        """The row, expired (whoever asks next takes it); a racing replica's insert wins harmlessly."""
        # another replica may create it first: then the UPDATE decides who leads
        with contextlib.suppress(IntegrityError), self._engine.begin() as connection:
            connection.execute(
                insert(alert_leases).values(name=self.name, holder="", expires_at=_NEVER, acquired_at=_NEVER)
            )
