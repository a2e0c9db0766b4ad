"""Deploy, promote, roll back, undeploy and history on SQLite and Postgres; compare-and-set under races."""

from __future__ import annotations

import threading

import pytest

from llmops.deployments import DeploymentConflict, DeploymentNotFound, DeploymentService, Rollout
from llmops.errors import NotFoundError, UserError
from llmops.registry import RegistryService


def test_a_version_deployed_without_canary_is_stable_at_once(deployments: DeploymentService) -> None:
    info = deployments.deploy("support-model@2", name="support", actor="cli:alice")
    assert (info.stable, info.canary, info.status, info.revision) == ("support-model@2", None, "stable", 1)
    assert deployments.uses("support-model@2") == "deployed behind 'support' as its stable version"
    assert deployments.uses("support-model@3") is None
    event = deployments.history("support")[0]
    assert (event.action, event.actor, event.from_state) == ("deploy", "cli:alice", None)
    assert event.to_state == {
        "stable": "support-model@2",
        "canary": None,
        "canary_percent": 0,
        "step_index": 0,
        "status": "stable",
    }


def test_a_canary_steps_up_to_stable(deployments: DeploymentService) -> None:
    deployments.deploy("support-model@2", name="support")
    canary = deployments.deploy(
        "support-model@3", name="support", canary=10, rollout=Rollout(steps=[10, 50, 100]), actor="a"
    )
    assert (canary.canary, canary.canary_percent, canary.steps, canary.status) == (
        "support-model@3",
        10,
        (10, 50, 100),
        "canary",
    )
    assert deployments.uses("support-model@3") == "deployed behind 'support' as the canary at 10%"
    with pytest.raises(DeploymentConflict, match="has a canary"):
        deployments.deploy("support-model@1", name="support", canary=5)
    half = deployments.promote("support", actor="b")
    assert (half.canary_percent, half.step_index, half.status) == (50, 1, "canary")
    done = deployments.promote("support", actor="c")
    assert (done.stable, done.canary, done.status) == ("support-model@3", None, "stable")
    assert [event.action for event in deployments.history("support")] == [
        "promote",
        "promote",
        "deploy",
        "deploy",
    ]
    with pytest.raises(DeploymentConflict, match="no canary to promote"):
        deployments.promote("support")


def test_rollback_and_undeploy(deployments: DeploymentService) -> None:
    deployments.deploy("support-model@3", name="support", canary=20)  # over the configured model
    rolled = deployments.rollback("support", actor="api:ops", reason="bad answers")
    assert (rolled.stable, rolled.canary, rolled.status) == (None, None, "rolled_back")
    event = deployments.history("support")[0]
    assert (event.action, event.reason, event.from_state["canary"]) == (
        "rollback",
        "bad answers",
        "support-model@3",
    )
    with pytest.raises(DeploymentConflict, match="no canary to roll back"):
        deployments.rollback("support")
    gone = deployments.undeploy("support", actor="x")
    assert gone.status == "undeployed"
    assert not gone.serving
    assert deployments.list_deployments() == []
    with pytest.raises(DeploymentConflict, match="not deployed"):
        deployments.undeploy("support")
    again = deployments.deploy("support-model@1", name="support")  # the row lives on: revisions grow
    assert again.revision == 4


def test_mistakes_are_one_line_errors(deployments: DeploymentService, registry: RegistryService) -> None:
    with pytest.raises(NotFoundError):
        deployments.deploy("support-model@9", name="support")
    with pytest.raises(DeploymentConflict, match="no stable version"):
        deployments.deploy("support-model@3", name="elsewhere", canary=10)
    with pytest.raises(UserError, match="increase"):
        deployments.deploy("support-model@3", name="support", rollout=Rollout(steps=[50, 10]))
    with pytest.raises(UserError, match="unknown guard rule"):
        deployments.deploy("support-model@3", name="support", canary=10, rollout=Rollout(guards={"nope": 1}))
    with pytest.raises(UserError, match="max_error_rate must be between"):
        deployments.deploy(
            "support-model@3", name="support", canary=10, rollout=Rollout(guards={"max_error_rate": 2})
        )
    gate = {"baseline": "base", "candidate": "cand", "metrics": {"exact": 0.0}}
    with pytest.raises(NotFoundError):  # an eval gate naming a run that does not exist
        deployments.deploy(
            "support-model@3", name="support", canary=10, rollout=Rollout(guards={"eval_gate": gate})
        )
    with pytest.raises(DeploymentNotFound):
        deployments.promote("nothing")
    deployments.deploy("support-model@2", name="support")
    with pytest.raises(UserError, match="already the stable version"):
        deployments.deploy("support-model@2", name="support", canary=10)
    registry.set_alias("support-model", "production", 3)
    info = deployments.deploy("support-model@production", name="support", canary=10)
    assert info.canary == "support-model@3"  # an alias is resolved once, when deployed
    assert info.steps == (10, 50, 100)


def test_two_controllers_apply_one_transition(deployments: DeploymentService) -> None:
    """Both read the same revision and decide the same rollback: exactly one applies it."""
    info = deployments.deploy("support-model@3", name="support", canary=10)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def controller() -> None:
        barrier.wait()
        try:
            deployments.rollback(
                "support", actor="controller", expected_revision=info.revision, automatic=True
            )
            outcomes.append("applied")
        except DeploymentConflict:
            outcomes.append("stale")

    threads = [threading.Thread(target=controller) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["applied", "stale"]
    actions = [event.action for event in deployments.history("support")]
    assert actions == ["auto-rollback", "deploy"]
    assert deployments.get("support").revision == info.revision + 1


def test_the_signature_changes_on_every_change(deployments: DeploymentService) -> None:
    seen = {deployments.signature()}
    deployments.deploy("support-model@2", name="support")
    seen.add(deployments.signature())
    deployments.deploy("support-model@3", name="support", canary=10)
    seen.add(deployments.signature())
    deployments.rollback("support")
    seen.add(deployments.signature())
    deployments.undeploy("support")
    seen.add(deployments.signature())
    assert len(seen) == 5
