"""What a limited caller reads: OpenAI's ``x-ratelimit-*`` headers, and the 429 answers.

The headers are OpenAI's trios for requests (rpm) and tokens (tpm), from the tighter of the key's
and the team's window; ``reset`` is the time until the oldest admitted entry leaves the window
(when the next one frees up), written like OpenAI's (``20ms``, ``1s``, ``6m0s``). A refusal names
the limit that keeps the caller waiting longest, with ``Retry-After`` in whole seconds (at least 1),
none for a total budget or a request that can never fit.
"""

from __future__ import annotations

import math

from llmops.gateway.errors import GatewayError
from llmops.limits.periods import describe, usd_text
from llmops.limits.plan import BudgetState, Outcome, RateState
from llmops.tracing.metrics import LimitMetrics

Headers = list[tuple[bytes, bytes]]
_SUFFIX = {"rpm": b"requests", "tpm": b"tokens"}


def ratelimit_headers(outcome: Outcome) -> Headers:
    tightest: dict[str, tuple[int, RateState]] = {}
    for state in outcome.rates:
        used = state.used + (state.amount if outcome.admitted else 0)
        remaining = max(0, state.check.limit - used)
        kind = state.check.kind
        if kind not in tightest or remaining < tightest[kind][0]:
            tightest[kind] = (remaining, state)
    headers: Headers = []
    for kind in ("rpm", "tpm"):
        if kind in tightest:
            remaining, state = tightest[kind]
            suffix = _SUFFIX[kind]
            headers += (
                (b"x-ratelimit-limit-" + suffix, b"%d" % state.check.limit),
                (b"x-ratelimit-remaining-" + suffix, b"%d" % remaining),
                (b"x-ratelimit-reset-" + suffix, duration_text(state.wait_seconds).encode()),
            )
    return headers


def refusal(outcome: Outcome, now: float, metrics: LimitMetrics) -> GatewayError:
    """The 429 for a refused outcome (counted in ``metrics``)."""
    refused: list[tuple[float, RateState | BudgetState]] = [
        (state.wait_seconds, state) for state in outcome.rates if not state.ok
    ]
    for budget in outcome.budgets:
        if not budget.ok:
            ends = budget.check.ends_at
            refused.append((math.inf if ends is None else ends - now, budget))
    wait, worst = max(refused, key=lambda item: item[0])
    retry: int | None
    if isinstance(worst, RateState):
        metrics.rejections.inc((worst.check.scope, worst.check.kind))
        message, retry = _rate_message(worst)
        error = GatewayError(429, message, error_type="rate_limit_error", code="rate_limit_exceeded")
    else:
        check = worst.check
        metrics.rejections.inc((check.scope, f"budget_{check.period}"))
        retry = None if math.isinf(wait) or worst.amount > check.limit else whole_seconds(wait)
        error = GatewayError(
            429, _budget_message(worst, wait), error_type="insufficient_quota", code="insufficient_quota"
        )
    headers = ratelimit_headers(outcome)
    if retry is not None:
        headers.append((b"retry-after", b"%d" % retry))
    error.headers = headers
    return error


def _rate_message(state: RateState) -> tuple[str, int | None]:
    check = state.check
    who = f"rate limit of {check.scope} {check.name!r}"
    if check.kind == "rpm":
        retry = whole_seconds(state.wait_seconds)
        return f"{who}: {check.limit} requests per minute; retry in {retry}s", retry
    if state.amount > check.limit:
        return (
            f"{who}: {check.limit} tokens per minute; this request counts {state.amount} "
            "(prompt + max_tokens), more than the limit allows",
            None,
        )
    retry = whole_seconds(state.wait_seconds)
    return (
        f"{who}: {check.limit} tokens per minute (this request counts {state.amount}); retry in {retry}s",
        retry,
    )


def _budget_message(state: BudgetState, wait: float) -> str:
    check = state.check
    head = f"budget of {check.scope} {check.name!r} reached: {usd_text(check.limit)} {describe(check.period)}"
    if state.amount > check.limit:
        return f"{head}; this request may cost up to {usd_text(state.amount)}, more than the whole budget"
    detail = f"spent {usd_text(state.spent)}"
    if state.reserved:
        detail += f", {usd_text(state.reserved)} held by requests under way"
    detail += f", and this request may cost up to {usd_text(state.amount)}"
    if math.isinf(wait):
        return f"{head}; {detail}"
    return f"{head}; {detail}; it resets in {duration_text(wait)}"


def whole_seconds(wait: float) -> int:
    """Whole seconds to wait, at least 1 (Retry-After)."""
    return max(1, math.ceil(wait - 1e-9))


def duration_text(seconds: float) -> str:
    """OpenAI's reset format: ``20ms``, ``1s``, ``6m0s``, ``2h3m4s``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    whole = math.ceil(seconds - 1e-9)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
