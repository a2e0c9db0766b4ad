"""Routing strategies: which of a model's usable deployments takes the next attempt.

Each strategy is one small class behind :class:`Strategy`, found by its name in
:data:`STRATEGIES` (the names ``routing:`` accepts in llmops.yaml). A strategy only chooses: the
router has already removed deployments whose breaker is open and those tried in this round.
Ties are broken at random, weighted by ``weight``, so equal deployments share the load.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import ClassVar

from llmops.gateway.deployments import Deployment


def weighted_choice(candidates: Sequence[Deployment], rng: random.Random) -> Deployment:
    if len(candidates) == 1:
        return candidates[0]
    total = 0.0
    for deployment in candidates:
        total += deployment.config.weight
    point = rng.random() * total
    for deployment in candidates:
        point -= deployment.config.weight
        if point < 0:
            return deployment
    return candidates[-1]


def _best(
    candidates: Sequence[Deployment], score: Callable[[Deployment], float], rng: random.Random
) -> Deployment:
    """The lowest-scoring deployment; equal scores share by weight."""
    if len(candidates) == 1:
        return candidates[0]
    lowest = min(score(deployment) for deployment in candidates)
    return weighted_choice([deployment for deployment in candidates if score(deployment) == lowest], rng)


class Strategy:
    name: ClassVar[str] = ""

    def choose(self, candidates: Sequence[Deployment], rng: random.Random) -> Deployment:
        raise NotImplementedError


class WeightedRandom(Strategy):
    """Traffic shared in proportion to ``weight`` (the default)."""

    name = "weighted-random"

    def choose(self, candidates: Sequence[Deployment], rng: random.Random) -> Deployment:
        return weighted_choice(candidates, rng)


class LeastInFlight(Strategy):
    """The deployment with the fewest requests under way."""

    name = "least-in-flight"

    def choose(self, candidates: Sequence[Deployment], rng: random.Random) -> Deployment:
        return _best(candidates, lambda deployment: deployment.in_flight, rng)


class LowestLatency(Strategy):
    """The deployment with the lowest moving average latency; one never measured is tried first."""

    name = "lowest-latency"

    def choose(self, candidates: Sequence[Deployment], rng: random.Random) -> Deployment:
        return _best(candidates, lambda deployment: deployment.latency_seconds or 0.0, rng)


class LowestCost(Strategy):
    """The deployment with the lowest price per token."""

    name = "lowest-cost"

    def choose(self, candidates: Sequence[Deployment], rng: random.Random) -> Deployment:
        return _best(candidates, lambda deployment: deployment.config.unit_price(), rng)


class OrderedPriority(Strategy):
    """The deployment with the lowest ``priority`` number; the others only when it fails."""

    name = "priority"

    def choose(self, candidates: Sequence[Deployment], rng: random.Random) -> Deployment:
        return _best(candidates, lambda deployment: deployment.config.priority, rng)


STRATEGIES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (WeightedRandom, LeastInFlight, LowestLatency, LowestCost, OrderedPriority)
}


def strategy_for(name: str) -> Strategy:
    try:
        return STRATEGIES[name]()
    except KeyError:
        raise ValueError(f"unknown routing strategy {name!r}; known: {', '.join(STRATEGIES)}") from None
