"""The gateway's side of rate limits and budgets: what a request may use, and what it used.

:class:`LimitStep` turns a request into the limiter's :class:`~llmops.limits.limiter.Demand` (its
prompt tokens counted with the route's first deployment's tokenizer, plus ``max_tokens`` per
choice or ``limits_default_max_tokens``; its cost at the dearest prices among the route's
deployments, since failover may pick any of them), admits it, and settles it from the request's
trace (a cache hit costs nothing). Tokens are counted only when a tpm limit or a budget applies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmops.gateway.auth import Principal
from llmops.gateway.catalog import ModelRoute
from llmops.gateway.endpoints import Endpoint
from llmops.gateway.errors import GatewayError
from llmops.gateway.recorder import CACHE_HITS
from llmops.gateway.usage import prompt_tokens
from llmops.limits.periods import cost_nano, to_nano
from llmops.limits.plan import Demand
from llmops.providers.base import Payload
from llmops.tracing.record import TraceRecord

if TYPE_CHECKING:  # llmops.limits.limiter imports the gateway's errors: import it only for types
    from llmops.limits.limiter import Limiter, Ticket


class LimitStep:
    def __init__(self, limiter: Limiter, *, default_max_tokens: int) -> None:
        self.limiter = limiter
        self._default_max_tokens = default_max_tokens

    async def admit(
        self, principal: Principal, endpoint: Endpoint, route: ModelRoute, payload: Payload
    ) -> Ticket:
        return await self.limiter.admit(principal, self.demand(principal, endpoint, route, payload))

    def demand(self, principal: Principal, endpoint: Endpoint, route: ModelRoute, payload: Payload) -> Demand:
        key, team = principal.limits, principal.team_limits
        budgeted = bool(key.budgets() or team.budgets())
        if key.tpm is None and team.tpm is None and not budgeted:
            return Demand()
        prompt = prompt_tokens(endpoint, route.deployments[0].provider, payload)
        completion = 0
        if endpoint.kind != "embedding":
            cap = (
                payload.get("max_completion_tokens") or payload.get("max_tokens") or self._default_max_tokens
            )
            completion = int(cap) * int(payload.get("n") or 1)
        if not budgeted:
            return Demand(prompt + completion)
        configs = [deployment.config for deployment in route.deployments]
        dearest_in = max(config.input_price_per_1m for config in configs)
        dearest_out = max(config.output_price_per_1m for config in configs)
        return Demand(prompt + completion, cost_nano(prompt, completion, dearest_in, dearest_out))

    def settle(self, ticket: Ticket, record: TraceRecord) -> None:
        """From the finished trace: its tokens and cost (0 for an answer from the cache)."""
        if record.cache_status in CACHE_HITS:
            self.limiter.settle(ticket, 0, 0)
            return
        tokens = (record.prompt_tokens or 0) + (record.completion_tokens or 0)
        self.limiter.settle(ticket, tokens, to_nano(record.cost or 0.0))


def model_not_allowed(model: str, principal: Principal) -> GatewayError:
    return GatewayError(
        403,
        f"the API key {principal.name!r} may not use the model {model!r}",
        error_type="invalid_request_error",
        param="model",
        code="model_not_allowed",
    )
