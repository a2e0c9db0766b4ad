"""Spend in the database: what counters start from after a restart, and what key listings show.

:class:`SpendRepository` reads and adds rows of the ``spend`` table (one per scope, id, period and
bucket, in nano-USD). :class:`SpendLedger` collects the amounts settled on the request path in
memory and adds them in one batch every ``spend_flush_seconds`` from a thread, so no request waits
on a database write; a failed batch is kept and tried again with the next one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from llmops.limits.periods import buckets, to_usd
from llmops.limits.plan import SpendKey
from llmops.limits.policy import PERIODS, Period
from llmops.limits.tables import spend


class SpendRepository:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def read(self, keys: Iterable[SpendKey]) -> dict[SpendKey, int]:
        """Settled nano-USD of each key (0 for a key with no row)."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        c = spend.c
        query = select(c.scope, c.scope_id, c.period, c.bucket, c.nano_usd).where(
            or_(
                *(
                    and_(c.scope == scope, c.scope_id == scope_id, c.period == period, c.bucket == bucket)
                    for scope, scope_id, period, bucket in wanted
                )
            )
        )
        with self._engine.connect() as connection:
            found = {
                (r.scope, r.scope_id, r.period, r.bucket): int(r.nano_usd) for r in connection.execute(query)
            }
        return {key: found.get(key, 0) for key in wanted}

    def add(self, amounts: dict[SpendKey, int], now: datetime | None = None) -> None:
        """Add each amount to its row (created at 0 when missing), in one statement."""
        if not amounts:
            return
        moment = now or datetime.now(UTC)
        rows = [
            {
                "scope": scope,
                "scope_id": scope_id,
                "period": period,
                "bucket": bucket,
                "nano_usd": nano,
                "updated_at": moment,
            }
            for (scope, scope_id, period, bucket), nano in sorted(
                amounts.items()
            )  # one lock order for every replica
        ]
        dialect = self._engine.dialect.name
        insert = postgresql.insert(spend) if dialect == "postgresql" else sqlite.insert(spend)
        statement = insert.on_conflict_do_update(
            index_elements=[spend.c.scope, spend.c.scope_id, spend.c.period, spend.c.bucket],
            set_={
                "nano_usd": spend.c.nano_usd + insert.excluded.nano_usd,
                "updated_at": insert.excluded.updated_at,
            },
        )
        with self._engine.begin() as connection:
            connection.execute(statement, rows)

    def current(
        self, scope: str, ids: Iterable[str], now: float | None = None
    ) -> dict[str, dict[Period, float]]:
        """Spend in USD of today, this month and in total (UTC) for each id; ids without spend get 0."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        current = buckets(time.time() if now is None else now)
        c = spend.c
        query = select(c.scope_id, c.period, c.nano_usd).where(
            c.scope == scope,
            c.scope_id.in_(wanted),
            or_(*(and_(c.period == period, c.bucket == bucket) for period, bucket in current.items())),
        )
        result: dict[str, dict[Period, float]] = {
            scope_id: dict.fromkeys(PERIODS, 0.0) for scope_id in wanted
        }
        with self._engine.connect() as connection:
            for row in connection.execute(query):
                result[row.scope_id][row.period] = to_usd(int(row.nano_usd))
        return result


class SpendLedger:
    """Settled amounts not yet in the database, added in batches by :meth:`flush`."""

    def __init__(self, repository: SpendRepository) -> None:
        self.repository = repository
        self._pending: dict[SpendKey, int] = {}
        self._writing: dict[SpendKey, int] = {}
        self._lock = asyncio.Lock()

    def add(self, key: SpendKey, nano: int) -> None:
        self._pending[key] = self._pending.get(key, 0) + nano

    def pending(self, key: SpendKey) -> int:
        """Not yet known to be in the database (a batch being written counts: better over than under)."""
        return self._pending.get(key, 0) + self._writing.get(key, 0)

    @property
    def size(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Write what is pending; on failure it stays pending and the error propagates."""
        async with self._lock:
            if not self._pending:
                return 0
            self._writing, self._pending = self._pending, {}
            try:
                await asyncio.to_thread(self.repository.add, self._writing)
            except BaseException:
                for key, nano in self._writing.items():
                    self.add(key, nano)
                raise
            finally:
                written, self._writing = self._writing, {}
            return len(written)
