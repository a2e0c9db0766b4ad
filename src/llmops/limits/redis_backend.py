"""Counters in Redis, shared by every replica: one Lua script admits, another settles.

The admission script (:mod:`llmops.limits.scripts`) checks every counter of the plan (the key's
and its team's windows, their reservations and budgets) and commits all or nothing, in one round
trip; Redis runs scripts one at a time, so N replicas behave as one. Time is the Redis server's
(``TIME``), so replica clocks do not matter for windows (budget buckets follow each replica's UTC
calendar).

Keys, under ``llmops:limits:`` (the prefix): ``<scope>:<id>:rpm`` (sorted set of admitted requests,
scored by time), ``<scope>:<id>:tpm`` (``<member>:<tokens>`` scored by time) with ``:tpm:t`` (their
sum), ``<scope>:<id>:res`` (``<member>:<nano-USD>`` scored by deadline) with ``:res:t`` (their sum),
and ``<scope>:<id>:s:<period>:<bucket>`` (settled nano-USD). Windows expire a minute after their last
admission, reservations after their hold, day and month counters a day after their period; the
total never expires. A spend counter that does not exist (a new period, or Redis restarted) is
reported by the script instead of being read as 0: the limiter seeds it from the ``spend`` table.

Each caller's commands are encoded once per shape (keys, kinds, limits) and completed per request
with five values, then sent through :class:`~llmops.limits.redis_pipeline.Pipeline`.

Errors: ``redis.exceptions.RedisError`` (including :class:`RedisUnavailable` while the breaker
fails fast after a connection failure) and ``OSError``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from llmops.gateway.cache.redis_store import Breaker, RedisUnavailable, connect
from llmops.limits.backends import LimitBackend, Settled
from llmops.limits.periods import PERIOD_NAMES, period_end
from llmops.limits.plan import BudgetState, Outcome, Plan, RateCheck, RateState, Shape, SpendKey
from llmops.limits.redis_pipeline import Pipeline, bulk, command
from llmops.limits.scripts import SHA, TEXTS

DEFAULT_PREFIX = "llmops:limits:"
_DAY = 86_400

__all__ = ["DEFAULT_PREFIX", "RedisBackend", "RedisUnavailable"]


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A shape's two commands, encoded but for the per-request values, and its spend key names."""

    admit_head: bytes  # array header, EVALSHA, sha, key count, keys
    admit_tail: bytes  # kind and limit per check
    settle_head: bytes | None  # None: nothing to settle (rpm windows only)
    settle_tail: bytes
    spend_names: dict[bytes, SpendKey]


class RedisBackend(LimitBackend):
    """The counters of every replica that shares this Redis (and prefix)."""

    name = "redis"
    errors = (RedisError, OSError)

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] | None = None,
        client: Redis | None = None,
        retry_after: float = 2.0,
    ) -> None:
        self._client = client if client is not None else connect(url)
        self._prefix = prefix
        self._clock = clock  # tests only: windows on a fake clock; otherwise the server's TIME
        self._breaker = Breaker(retry_after)
        self._pipeline = Pipeline(self._client, TEXTS.values())
        self._slot = f"redis:{prefix}"  # where this backend keeps its compiled commands in a shape

    @property
    def prefix(self) -> str:
        return self._prefix

    def _name(self, scope: str, scope_id: str, what: str) -> str:
        return f"{self._prefix}{scope}:{scope_id}:{what}"

    def spend_name(self, key: SpendKey) -> str:
        scope, scope_id, period, bucket = key
        return self._name(scope, scope_id, f"s:{period}:{bucket}")

    def _compiled(self, shape: Shape) -> _Compiled:
        found: _Compiled | None = shape.compiled.get(self._slot)
        if found is None:
            found = shape.compiled[self._slot] = self._compile(shape)
        return found

    def _compile(self, shape: Shape) -> _Compiled:
        admit_keys: list[str] = []
        admit_args: list[str | int] = []
        settle_keys: list[str] = []
        settle_kinds: list[str] = []
        for check in shape.rates:
            window = [self._name(check.scope, check.scope_id, check.kind)]
            if check.kind == "tpm":
                window.append(self._name(check.scope, check.scope_id, "tpm:t"))
                settle_keys += window
                settle_kinds.append("tpm")
            admit_keys += window
            admit_args += (check.kind, check.limit)
        spend_names: dict[bytes, SpendKey] = {}
        for reservation in shape.reservations:  # shape.budgets follow their scope's reservation
            scope, scope_id = reservation.scope, reservation.scope_id
            held = [self._name(scope, scope_id, "res"), self._name(scope, scope_id, "res:t")]
            admit_keys += held
            admit_args += ("res", 0)
            settle_keys += held
            settle_kinds.append("res")
            for budget in shape.budgets:
                if (budget.scope, budget.scope_id) == (scope, scope_id):
                    name = self.spend_name(budget.spend_key)
                    spend_names[name.encode()] = budget.spend_key
                    admit_keys.append(name)
                    admit_args += ("bud", budget.limit)
                    settle_keys.append(name)
                    settle_kinds.append("bud")
        admit_count = 3 + len(admit_keys) + 5 + len(admit_args)
        settle_count = 3 + len(settle_keys) + 5 + len(settle_kinds)
        return _Compiled(
            admit_head=_head(admit_count, SHA["admit"], admit_keys),
            admit_tail=b"".join(bulk(arg) for arg in admit_args),
            settle_head=_head(settle_count, SHA["settle"], settle_keys) if settle_kinds else None,
            settle_tail=b"".join(bulk(kind) for kind in settle_kinds),
            spend_names=spend_names,
        )

    async def admit(self, plan: Plan) -> Outcome:
        compiled = self._compiled(plan.shape)
        now = b"" if self._clock is None else str(int(self._clock() * 1000)).encode()
        packed = b"".join(
            (
                compiled.admit_head,
                bulk(now),
                bulk(plan.member),
                bulk(int(plan.hold_seconds * 1000)),
                bulk(plan.tokens),
                bulk(plan.nano),
                compiled.admit_tail,
            )
        )
        reply: list[Any] = await self._breaker.call(lambda: self._pipeline.call(packed))
        return _outcome(plan, reply, compiled.spend_names)

    def settle(self, plan: Plan, tokens: int, nano: int, done: Settled) -> None:
        compiled = self._compiled(plan.shape)
        if compiled.settle_head is None:
            done([])
            return

        def settled(reply: Any) -> None:
            done(reply if isinstance(reply, BaseException) else [int(value) for value in reply])

        packed = b"".join(
            (
                compiled.settle_head,
                bulk(plan.member),
                bulk(tokens),
                bulk(nano),
                bulk(plan.tokens),
                bulk(plan.nano),
                compiled.settle_tail,
            )
        )
        self._pipeline.submit(packed, settled)

    def add(self, check: RateCheck, member: str, amount: int, done: Callable[[Any], None]) -> None:
        """Count ``amount`` in a tpm window now, without checking its limit (``done`` gets the reply)."""
        now = b"" if self._clock is None else str(int(self._clock() * 1000)).encode()
        keys = (
            self._name(check.scope, check.scope_id, "tpm"),
            self._name(check.scope, check.scope_id, "tpm:t"),
        )
        self._pipeline.submit(command(("EVALSHA", SHA["add"], 2, *keys, now, member, amount)), done)

    async def seed(self, values: dict[SpendKey, int]) -> None:
        """``SET NX``: a counter another replica seeded (or settled into) meanwhile is kept."""
        now = time.time()
        pipe = self._client.pipeline(transaction=False)
        for key, value in values.items():
            ends = period_end(PERIOD_NAMES[key[2]], now)
            name = self.spend_name(key)
            if ends is None:
                pipe.set(name, value, nx=True)
            else:
                pipe.set(name, value, nx=True, exat=int(ends) + _DAY)
        await self._breaker.call(pipe.execute)

    async def flush(self) -> None:
        await self._pipeline.drained()

    async def aclose(self) -> None:
        await self._pipeline.aclose()
        await self._client.aclose()


def _head(count: int, sha: str, keys: list[str]) -> bytes:
    parts = [b"*%d\r\n" % count, bulk("EVALSHA"), bulk(sha), bulk(len(keys))]
    return b"".join(parts + [bulk(key) for key in keys])


def _outcome(plan: Plan, reply: list[Any], spend_names: dict[bytes, SpendKey]) -> Outcome:
    status = int(reply[0])
    if status == 2:
        return Outcome(False, missing=tuple(spend_names[bytes(name)] for name in reply[1:]))
    shape = plan.shape
    states = reply[2:]
    rates = tuple(
        RateState(
            check, int(states[3 * i]), states[3 * i + 1] == 1, states[3 * i + 2] / 1000, plan.amount(check)
        )
        for i, check in enumerate(shape.rates)
    )
    if status == 0:  # admitted: every budget passed, and only refusals need their figures
        return Outcome(True, rates)
    offset = 3 * len(shape.rates)
    budgets = tuple(
        BudgetState(
            check,
            int(states[offset + 3 * i]),
            int(states[offset + 3 * i + 2]),
            states[offset + 3 * i + 1] == 1,
            plan.nano,
        )
        for i, check in enumerate(shape.budgets)
    )
    return Outcome(False, rates, budgets)
