"""Executing a run against a gateway: the CLI's in-process services or a running server's own.

Both paths build the same things: a model caller through the gateway (the target's calls and the
judge's), the scorers' resources, and a progress callback; the CLI also registers the run as a job, so
`llmops evals cancel` (or the admin API) from elsewhere stops it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmops.evals.gateway_caller import gateway_caller
from llmops.evals.repository import RunInfo
from llmops.evals.targets import ENDPOINT_MODEL, Target
from llmops.gateway.auth import ANONYMOUS, Principal
from llmops.progress import Progress, no_progress

if TYPE_CHECKING:
    from llmops.services import Services
    from llmops.settings import Settings


def settings_with_endpoint(settings: Settings, target: Target) -> Settings:
    """For an endpoint target: the settings plus a model that sends to that endpoint (``openai`` provider)."""
    if target.kind != "endpoint":
        return settings
    from llmops.gateway.catalog import configured_models
    from llmops.model_config import ModelConfig

    declared: dict[str, Any] = {"name": ENDPOINT_MODEL, "provider": "openai", "base_url": target.base_url}
    if target.model:
        declared["model"] = target.model
    if target.api_key_env:
        declared["api_key_env"] = target.api_key_env
    models = tuple(model for model in configured_models(settings) if model.name != ENDPOINT_MODEL)
    return settings.model_copy(update={"models": (*models, ModelConfig.model_validate(declared))})


def check_models(target: Target, judge_model: str | None, services: Services) -> None:
    """A model the run would call that the gateway does not serve is a 400 now, not an error per item."""
    from llmops.evals.service import InvalidRun

    served = sorted(route.config.name for route in services.catalog.routes())
    asked = [("model", target.model if target.kind == "model" else None), ("judge model", judge_model)]
    for what, name in asked:
        if name and services.catalog.get(name) is None:
            raise InvalidRun(
                f"unknown {what} {name!r}; the gateway serves: {', '.join(served)}", param="model"
            )


def models_used(run: RunInfo, services: Services) -> set[str]:
    """The gateway models a run calls: its target's and its judge's (to start only those)."""
    target = Target.from_dict(run.target)
    used = {default_judge(run, services)}
    if target.kind == "model" and target.model:
        used.add(target.model)
    if target.kind == "endpoint":
        used.add(ENDPOINT_MODEL)
    if target.kind == "prompt":
        used.update(_prompt_model(services, target))
    return {name for name in used if name}


def _prompt_model(services: Services, target: Target) -> set[str]:
    from llmops.prompts.services import Reference

    name, label, number = _prompt_reference(str(target.model))
    version = services.store.prompts.get(Reference(name, label=label, version=number))
    return {version.content.model} if version.content.model else set()


def _prompt_reference(text: str) -> tuple[str, str | None, int | None]:
    if "#" in text:
        name, _, number = text.partition("#")
        return name, None, int(number)
    name, _, label = text.partition("@")
    return name, label or None, None


def default_judge(run: RunInfo, services: Services) -> str:
    """The judge: as asked, else the target's model, else the first model the gateway serves."""
    chosen = run.params.get("judge_model")
    if chosen:
        return str(chosen)
    target = Target.from_dict(run.target)
    if target.kind == "model" and target.model:
        return target.model
    routes = services.catalog.routes()
    return routes[0].config.name if routes else ""


async def execute_run(
    services: Services,
    run: RunInfo,
    *,
    principal: Principal = ANONYMOUS,
    progress: Progress = no_progress,
) -> RunInfo:
    from llmops.evals.scorers.embedding import packaged_embedder
    from llmops.evals.scorers.registry import ScorerRegistry, ScorerResources

    caller = gateway_caller(
        services.gateway, run_id=run.id, principal=principal, use_cache=bool(run.params.get("use_cache"))
    )
    resources = ScorerResources(
        caller=caller,
        judge_model=default_judge(run, services),
        engine=services.store.engine,
        embedder=packaged_embedder(services.settings),  # loads MiniLM on its first use only
        settings=services.settings,
    )
    target = Target.from_dict(run.target)
    return await services.store.evals.execute(
        run.id,
        ScorerRegistry(),
        resources,
        caller=caller if target.calls_model else None,
        progress=progress,
    )
