"""`models:` in llmops.yaml: the one-deployment form, deployments, routing policies, validation."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmops.gateway.catalog import effective_deployment
from llmops.model_config import ModelConfig, Timeouts
from llmops.settings import Settings


def test_the_original_one_deployment_form_still_works() -> None:
    model = ModelConfig.model_validate(
        {
            "name": "gpt",
            "provider": "openai",
            "base_url": "http://u/v1",
            "model": "gpt-4o",
            "input_price_per_1m": 2,
        }
    )
    [deployment] = model.deployments
    assert (deployment.id, deployment.name, deployment.provider) == ("gpt", "gpt", "openai")
    assert deployment.upstream_model == "gpt-4o"
    assert deployment.cost(1_000_000, 0) == pytest.approx(2)
    assert (model.provider, model.upstream_model, model.base_url) == ("openai", "gpt-4o", "http://u/v1")
    assert model.routing == "weighted-random"
    assert model.cache.mode == "off"


def test_deployments_get_ids_and_the_public_name() -> None:
    model = ModelConfig.model_validate(
        {
            "name": "chat",
            "routing": "least-in-flight",
            "deployments": [
                {"provider": "openai", "base_url": "http://a/v1", "weight": 2},
                {"id": "b-east", "provider": "openai", "base_url": "http://b/v1", "model": "llama3"},
            ],
        }
    )
    first, second = model.deployments
    assert (first.id, second.id) == ("chat#1", "b-east")
    assert (first.name, second.name) == ("chat", "chat")
    assert (first.upstream_model, second.upstream_model) == ("chat", "llama3")
    assert first.weight == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "m", "provider": "echo", "deployments": [{"provider": "echo"}]}, "not both"),
        ({"name": "m"}, "deployments"),
        ({"name": "m", "model": "x"}, "needs a provider"),
        ({"name": "m", "deployments": []}, "at least 1"),
        (
            {"name": "m", "deployments": [{"id": "x", "provider": "echo"}, {"id": "x", "provider": "echo"}]},
            "twice",
        ),
        ({"name": "m", "provider": "echo", "routing": "round-robin"}, "routing"),
        ({"name": "m", "provider": "echo", "fallbacks": ["m"]}, "own fallback"),
        ({"name": "m", "provider": "echo", "weight": 0}, "greater than 0"),
        ({"name": "m", "provider": "echo", "timeouts": {"total": -1}}, "greater than 0"),
        ({"name": "m", "provider": "echo", "cache": {"mode": "fuzzy"}}, "mode"),
        ({"name": "m", "provider": "echo", "retry": {"max_attempts": 0}}, "max_attempts"),
        ({"name": "m", "deployments": [{"provider": "echo", "name": "other"}]}, "no name of its own"),
    ],
)
def test_bad_model_entries_are_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModelConfig.model_validate(data)


def test_fallbacks_must_name_declared_models() -> None:
    with pytest.raises(ValidationError, match="not declared"):
        Settings(models=(ModelConfig.model_validate({"name": "a", "provider": "echo", "fallbacks": ["b"]}),))
    Settings(
        models=(
            ModelConfig.model_validate({"name": "a", "provider": "echo", "context_window_fallbacks": ["b"]}),
            ModelConfig.model_validate({"name": "b", "provider": "echo"}),
        )
    )


def test_timeouts_model_over_deployment_over_server_defaults() -> None:
    model = ModelConfig.model_validate(
        {
            "name": "m",
            "timeouts": {"first_token": 2},
            "deployments": [
                {"provider": "echo", "timeouts": {"connect": 1, "first_token": 9}},
                {"provider": "echo"},
            ],
        }
    )
    defaults = Timeouts(connect=10, first_token=None, total=600)
    first = effective_deployment(model, model.deployments[0], defaults).timeouts
    second = effective_deployment(model, model.deployments[1], defaults).timeouts
    assert (first.connect, first.first_token, first.total) == (1, 2, 600)
    assert (second.connect, second.first_token, second.total) == (10, 2, 600)


def test_the_earlier_timeout_param_becomes_timeouts_total() -> None:
    model = ModelConfig.model_validate({"name": "m", "provider": "openai", "params": {"timeout_seconds": 5}})
    [deployment] = model.deployments
    assert deployment.timeouts.total == 5
    assert "timeout_seconds" not in deployment.params
