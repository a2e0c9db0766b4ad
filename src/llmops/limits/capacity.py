"""Deployment capacity (a deployment's declared ``rpm``/``tpm``) shared by every replica through Redis.

Without Redis the router keeps each deployment's capacity per replica. With Redis, before calling a
deployment that declares a capacity the router asks :meth:`DeploymentCapacity.admit`: the same
admission script and sliding windows as keys' limits, keyed by model and deployment id. The rpm
window counts the call; the tpm window admits it while it holds fewer tokens than the capacity (as
the per-replica check does), and a call's tokens are counted when it ends
(:meth:`DeploymentCapacity.record_tokens`, what the deployment's usage forwards). A refusal
answers the seconds until the deployment has room, and the router tries another deployment.

When Redis fails, ``rate_limit_on_redis_error`` decides as for keys: ``fail_open`` calls the
deployment (this replica's own window still applies), ``fail_closed`` treats it as full for a second.
"""

from __future__ import annotations

import logging
from typing import Any

from llmops.ids import new_id
from llmops.limits.limiter import LOG_EVERY_SECONDS, FailMode
from llmops.limits.plan import Plan, RateCheck, Shape
from llmops.limits.redis_backend import RedisBackend
from llmops.throttled_log import ThrottledLog
from llmops.tracing.metrics import LimitMetrics

log = logging.getLogger("llmops.limits")

_MAX_SHAPES = 10_000
_CLOSED_WAIT = 1.0


class DeploymentCapacity:
    def __init__(
        self, backend: RedisBackend, metrics: LimitMetrics, *, on_error: FailMode = "fail_open"
    ) -> None:
        self._backend = backend
        self._metrics = metrics
        self._on_error = on_error
        self._shapes: dict[tuple[str, int | None, int | None], Shape] = {}
        self._log = ThrottledLog(log, LOG_EVERY_SECONDS)

    def _shape(self, scope_id: str, rpm: int | None, tpm: int | None) -> Shape:
        shape = self._shapes.get((scope_id, rpm, tpm))
        if shape is None:
            if len(self._shapes) >= _MAX_SHAPES:
                self._shapes.clear()
            checks = []
            if rpm is not None:
                checks.append(RateCheck("deployment", scope_id, scope_id, "rpm", rpm))
            if tpm is not None:  # admitted while fewer than tpm tokens are in the window
                checks.append(RateCheck("deployment", scope_id, scope_id, "tpm", tpm - 1))
            shape = self._shapes[(scope_id, rpm, tpm)] = Shape(tuple(checks))
        return shape

    async def admit(self, model: str, deployment_id: str, rpm: int | None, tpm: int | None) -> float | None:
        """None when the call may go to the deployment, else the seconds until it has room."""
        plan = Plan(self._shape(f"{model}/{deployment_id}", rpm, tpm), new_id())
        try:
            outcome = await self._backend.admit(plan)
        except self._backend.errors as exc:
            self._metrics.backend_errors.inc(("capacity",))
            outcome_name = "admitted" if self._on_error == "fail_open" else "refused"
            self._metrics.error_decisions.inc((outcome_name,))
            self._log.warning(
                "capacity",
                "limits: deployment capacity could not be checked on Redis (%s: %s); calls are %s "
                "(rate_limit_on_redis_error=%s)",
                type(exc).__name__,
                exc,
                outcome_name,
                self._on_error,
            )
            return None if self._on_error == "fail_open" else _CLOSED_WAIT
        if outcome.admitted:
            return None
        return max(state.wait_seconds for state in outcome.rates if not state.ok)

    def record_tokens(self, model: str, deployment_id: str, tokens: int) -> None:
        """A finished call's tokens, counted in the deployment's shared tpm window (in the background)."""
        if tokens <= 0:
            return
        scope_id = f"{model}/{deployment_id}"
        check = RateCheck("deployment", scope_id, scope_id, "tpm", 0)
        self._backend.add(check, new_id(), tokens, self._added)

    def _added(self, reply: Any) -> None:
        if isinstance(reply, BaseException):
            self._metrics.backend_errors.inc(("capacity",))
            self._log.warning("tokens", "limits: deployment tokens could not be counted on Redis (%s)", reply)
