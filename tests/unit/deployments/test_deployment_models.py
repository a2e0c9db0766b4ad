"""The overlay of managed deployments on the configured models (pure: a registry stand-in answers refs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from llmops.deployments.models import managed_models, traffic_percent
from llmops.deployments.repository import DeploymentInfo
from llmops.model_config import ModelConfig
from llmops.registry import ModelNotFound


@dataclass(frozen=True)
class _Version:
    ref: str


class _Registry:
    """Answers refs the way RegistryService does: serving config per ``name@N``, unknown refs raise."""

    def __init__(self, serving: dict[str, dict[str, Any]]) -> None:
        self.serving = serving

    def resolve(self, ref: str) -> _Version:
        if ref not in self.serving:
            raise ModelNotFound(f"no version {ref}")
        return _Version(ref)

    def serving_config(self, info: _Version) -> dict[str, Any]:
        return dict(self.serving[info.ref])


REGISTRY = _Registry(
    {
        "support-model@2": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "v2"},
        "support-model@3": {"provider": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "v3"},
    }
)
CONFIGURED = (
    ModelConfig.model_validate(
        {
            "name": "support",
            "routing": "least-in-flight",
            "fallbacks": ["echo"],
            "deployments": [
                {"provider": "echo", "id": "a", "weight": 3},
                {"provider": "echo", "id": "b", "weight": 1},
            ],
        }
    ),
    ModelConfig.model_validate({"name": "echo", "provider": "echo"}),
)


def _by_name(models: tuple[ModelConfig, ...]) -> dict[str, ModelConfig]:
    return {model.name: model for model in models}


def _weights(model: ModelConfig) -> dict[str, float]:
    return {deployment.id: deployment.weight for deployment in model.deployments}


def test_no_rows_leaves_the_configuration_alone() -> None:
    assert managed_models(CONFIGURED, [], REGISTRY) == CONFIGURED


def test_a_canary_over_the_configured_stable_splits_by_weight() -> None:
    row = DeploymentInfo("support", None, canary="support-model@3", canary_percent=10, status="canary")
    models = _by_name(managed_models(CONFIGURED, [row], REGISTRY))
    support = models["support"]
    assert support.routing == "weighted-random"
    assert support.fallbacks == ("echo",)  # the configured policies stay
    assert _weights(support) == {"a": pytest.approx(67.5), "b": pytest.approx(22.5), "support-model@3": 10.0}
    canary = support.deployments[-1]
    assert (canary.provider, canary.upstream_model, canary.name) == ("openai", "v3", "support")
    # the canary version is addressable by its ref
    assert [d.id for d in models["support-model@3"].deployments] == ["support-model@3"]
    assert traffic_percent(models.values(), ["support"]) == {
        ("support", "a"): 67.5,
        ("support", "b"): 22.5,
        ("support", "support-model@3"): 10.0,
    }


def test_a_registry_stable_and_canary() -> None:
    row = DeploymentInfo(
        "support", "support-model@2", canary="support-model@3", canary_percent=50, status="canary"
    )
    models = _by_name(managed_models(CONFIGURED, [row], REGISTRY))
    assert _weights(models["support"]) == {"support-model@2": 50.0, "support-model@3": 50.0}
    assert {"support-model@2", "support-model@3"} <= set(models)


def test_a_stable_version_alone_keeps_the_configured_routing_and_a_new_name_is_added() -> None:
    rows = [
        DeploymentInfo("support", "support-model@2", status="stable"),
        DeploymentInfo("helpdesk", "support-model@3", status="rolled_back"),
    ]
    models = _by_name(managed_models(CONFIGURED, rows, REGISTRY))
    assert models["support"].routing == "least-in-flight"
    assert _weights(models["support"]) == {"support-model@2": 1.0}
    assert _weights(models["helpdesk"]) == {"support-model@3": 1.0}
    assert models["helpdesk"].routing == "weighted-random"


def test_undeployed_rows_and_unservable_refs_leave_the_configuration() -> None:
    rows = [
        DeploymentInfo("echo", "support-model@2", status="undeployed"),
        DeploymentInfo("support", None, canary="gone@1", canary_percent=10, status="canary"),
    ]
    models = _by_name(managed_models(CONFIGURED, rows, REGISTRY))
    assert models["echo"] == CONFIGURED[1]
    assert _weights(models["support"]) == {"a": 3.0, "b": 1.0}
    assert "gone@1" not in models
    assert "support-model@2" not in models
