"""Rate limits and budgets of keys and teams, exact on one replica or across many (issue 9).

- :mod:`~llmops.limits.policy`: :class:`Limits` (rpm, tpm, USD budgets per day/month/total), as stored.
- :mod:`~llmops.limits.limiter`: :class:`~llmops.limits.limiter.Limiter`, what the gateway calls
  (admit, settle; the 429 answers and ``x-ratelimit-*`` headers come from :mod:`~llmops.limits.answers`).
- :mod:`~llmops.limits.backends` (this process) and :mod:`~llmops.limits.redis_backend` (replicas):
  the counters, checked and committed atomically.
- :mod:`~llmops.limits.spend`: the ``spend`` table and the ledger that writes it in batches.
- :mod:`~llmops.limits.capacity`: deployments' declared rpm/tpm shared by replicas.

Only the policy is imported here: the key cache reads it on every request, and the limiter pulls
in the gateway's errors (import it from its module).

Errors: :class:`InvalidLimits` (a limit or budget that cannot be used); the limiter raises the
gateway's ``GatewayError`` (429, 503).
"""

from llmops.limits.policy import NO_LIMITS, PERIODS, InvalidLimits, Limits, Period, parse_budget

__all__ = ["NO_LIMITS", "PERIODS", "InvalidLimits", "Limits", "Period", "parse_budget"]
