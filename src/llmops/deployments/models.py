"""The gateway's view of managed deployments: configured models with the deployment rows laid over them.

:func:`managed_models` is pure (given the registry's answers): it turns the stored rows into the
:class:`~llmops.model_config.ModelConfig` entries the catalog is built from.

- A managed name whose ``stable`` is a registry ref is served by that version (deployment id = the
  ref); with ``stable`` None it keeps the deployments of the configured model of that name.
- While a canary runs, routing is weighted-random: the stable deployments share ``100 - p`` (in
  proportion to their own weights) and the canary deployment, whose id is its ref, gets ``p``.
  Every trace then says which version answered (``trace.deployment``) and /metrics counts calls
  per deployment id.
- Every deployed registry version is also served under its ref as a model of its own
  (``model="support-model@3"``), so an evaluation run can target exactly that version.

A ref the registry cannot serve any more (deleted, no servable artefact) is logged and left out:
the name keeps its other deployments rather than the whole catalog failing to build.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from llmops.deployments.repository import DeploymentInfo
from llmops.errors import UserError
from llmops.model_config import ModelConfig

log = logging.getLogger("llmops.deployments")

TOTAL_PERCENT = 100


class ServingSource(Protocol):
    """What the overlay needs of the model registry (:class:`llmops.registry.RegistryService`)."""

    def resolve(self, ref: str) -> Any: ...

    def serving_config(self, info: Any) -> dict[str, Any]: ...


def managed_models(
    configured: tuple[ModelConfig, ...], rows: Iterable[DeploymentInfo], registry: ServingSource
) -> tuple[ModelConfig, ...]:
    """The models to serve: ``configured`` with every serving deployment row applied, plus one model per
    deployed registry version (named by its ref) unless a configured model already has that name."""
    configs = _ServingConfigs(registry)
    served: dict[str, ModelConfig] = {model.name: model for model in configured}
    live = [row for row in rows if row.serving]
    for row in live:
        model = _managed(row, served.get(row.name), configs)
        if model is not None:
            served[row.name] = model
    for row in live:
        for ref in row.refs():
            if ref in served:
                continue
            serving = configs.get(ref)
            if serving is not None:
                model = _model(ref, None, [{**serving, "id": ref}], routing=None)
                if model is not None:
                    served[ref] = model
    return tuple(served.values())


def traffic_percent(models: Iterable[ModelConfig], names: Iterable[str]) -> dict[tuple[str, str], float]:
    """Each deployment's share of its model's traffic under weighted-random routing, for ``names``."""
    wanted = set(names)
    shares: dict[tuple[str, str], float] = {}
    for model in models:
        if model.name not in wanted:
            continue
        total = sum(deployment.weight for deployment in model.deployments)
        for deployment in model.deployments:
            shares[(model.name, deployment.id)] = round(TOTAL_PERCENT * deployment.weight / total, 3)
    return shares


class _ServingConfigs:
    """The registry's serving config per ref, asked once per build; None when it cannot be served."""

    def __init__(self, registry: ServingSource) -> None:
        self._registry = registry
        self._found: dict[str, dict[str, Any] | None] = {}

    def get(self, ref: str) -> dict[str, Any] | None:
        if ref not in self._found:
            self._found[ref] = self._ask(ref)
        return self._found[ref]

    def _ask(self, ref: str) -> dict[str, Any] | None:
        try:
            return dict(self._registry.serving_config(self._registry.resolve(ref)))
        except UserError as exc:
            log.error("deployed version %s cannot be served: %s", ref, exc)
            return None


def _managed(
    row: DeploymentInfo, configured: ModelConfig | None, configs: _ServingConfigs
) -> ModelConfig | None:
    canary = configs.get(row.canary) if row.canary is not None and row.status == "canary" else None
    percent = row.canary_percent if canary is not None else 0
    if row.stable is not None:
        serving = configs.get(row.stable)
        stable = [] if serving is None else [{**serving, "id": row.stable}]
    else:
        stable = [] if configured is None else [item.model_dump() for item in configured.deployments]
    if not stable:
        log.error("deployment %s has no servable stable version: left as configured", row.name)
        return None
    if canary is None:
        return _model(row.name, configured, stable, routing=None)
    total = sum(float(item.get("weight", 1.0)) for item in stable)
    share = TOTAL_PERCENT - percent
    stable = [{**item, "weight": float(item.get("weight", 1.0)) * share / total} for item in stable]
    split = [*stable, {**canary, "id": row.canary, "weight": float(percent)}]
    model = _model(row.name, configured, split, routing="weighted-random")
    if model is None:  # the canary's serving config is unusable here: serve the stable side alone
        return _model(row.name, configured, stable, routing=None)
    return model


def _model(
    name: str,
    configured: ModelConfig | None,
    deployments: Sequence[Mapping[str, Any]],
    *,
    routing: str | None,
) -> ModelConfig | None:
    base: dict[str, Any] = {} if configured is None else configured.model_dump(exclude={"deployments"})
    data: dict[str, Any] = {**base, "name": name, "deployments": [_fresh(item) for item in deployments]}
    if routing is not None:
        data["routing"] = routing
    try:
        return ModelConfig.model_validate(data)
    except ValueError as exc:
        log.error("deployment %s cannot be served: %s", name, str(exc).splitlines()[0])
        return None


def _fresh(deployment: Mapping[str, Any]) -> dict[str, Any]:
    """A deployment's fields without its public name (the model entry gives it)."""
    return {key: value for key, value in deployment.items() if key != "name"}
