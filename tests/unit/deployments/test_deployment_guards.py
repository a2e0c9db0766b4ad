"""Guard rules judged on synthetic traces (inserted through TraceRepository), on SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from llmops.deployments import DeploymentService, Rollout
from llmops.deployments.guards import GuardRegistry, InvalidGuard
from llmops.ids import new_id
from llmops.store import TraceRepository

CANARY = "support-model@3"


def _trace(
    at: datetime, deployment: str, status: int = 200, ms: float = 100.0, **extra: Any
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "started_at": at,
        "ended_at": at + timedelta(milliseconds=ms),
        "endpoint": "chat",
        "requested_model": extra.pop("model", "support"),
        "deployment": deployment,
        "stream": False,
        "status": "ok" if status < 400 else "error",
        "status_code": status,
        "latency_ms": ms,
        "attributes": extra.pop("attributes", None),  # every row has the same keys (one executemany)
        **extra,
    }


def _canary(deployments: DeploymentService, **guards: Any) -> None:
    deployments.deploy(
        CANARY, name="support", canary=10, rollout=Rollout(step_seconds=1, window_seconds=60, guards=guards)
    )


def _traffic(db: Engine, rows: list[dict[str, Any]]) -> None:
    TraceRepository(db).insert_many(rows)


def test_below_min_requests_nothing_is_decided(db: Engine, deployments: DeploymentService) -> None:
    _canary(deployments, min_requests=10)
    now = datetime.now(UTC)
    _traffic(db, [_trace(now, CANARY, status=502) for _ in range(9)])
    assessment = deployments.assess(deployments.get("support"), now + timedelta(seconds=5))
    assert assessment.action == "hold"
    assert "waiting for 10 canary calls" in assessment.reason
    assert assessment.window.of(CANARY).errors == 9


def test_an_error_rate_over_the_limit_rolls_back(db: Engine, deployments: DeploymentService) -> None:
    _canary(deployments, min_requests=10, max_error_rate=0.2)
    now = datetime.now(UTC)
    # 6 canary calls answered, 4 failed with 5xx: two of them retried on the stable side (attempts),
    # two 4xx client errors that are not the canary's fault; the stable side and another model are ignored
    failed_then_stable = {
        "attributes": {
            "attempts": [
                {"model": "support", "deployment": CANARY, "status": 503, "at_ms": 0, "ms": 5},
                {"model": "support", "deployment": "support", "status": 200, "at_ms": 5, "ms": 50},
            ]
        }
    }
    rows = [_trace(now, CANARY) for _ in range(4)]
    rows += [_trace(now, CANARY, status=400) for _ in range(2)]
    rows += [_trace(now, CANARY, status=504), _trace(now, CANARY, status=500)]
    rows += [_trace(now, "support", **failed_then_stable) for _ in range(2)]
    rows += [_trace(now, "support") for _ in range(30)]
    rows += [_trace(now, CANARY, status=500, model=CANARY) for _ in range(5)]  # an eval on the version itself
    _traffic(db, rows)
    assessment = deployments.assess(deployments.get("support"), now + timedelta(seconds=5))
    canary = assessment.window.of(CANARY)
    assert (canary.calls, canary.errors) == (10, 4)
    assert assessment.window.of("support").calls == 32
    assert assessment.action == "rollback"
    assert "max_error_rate: canary error rate 0.400 (4 of 10 calls) > 0.2" in assessment.reason


def test_p95_and_thumbs_down_rules(db: Engine, deployments: DeploymentService) -> None:
    _canary(deployments, min_requests=5, max_p95_ms=500, max_thumbs_down_rate=0.5)
    now = datetime.now(UTC)
    rows = [_trace(now, CANARY, ms=100) for _ in range(19)] + [_trace(now, CANARY, ms=900)]
    _traffic(db, rows)
    later = now + timedelta(seconds=5)
    assessment = deployments.assess(deployments.get("support"), later)
    assert assessment.action == "promote", assessment.reason  # p95 of 20 is the 19th value: 100 ms
    repository = TraceRepository(db)
    for row, thumb in zip(rows[:4], ("down", "down", "down", "up"), strict=True):
        repository.add_feedback({"id": new_id(), "trace_id": row["id"], "created_at": now, "thumb": thumb})
    assessment = deployments.assess(deployments.get("support"), later)
    assert assessment.action == "rollback"
    assert "thumbs down rate 0.750 (3 of 4)" in assessment.reason
    _traffic(db, [_trace(now, CANARY, ms=2000) for _ in range(5)])
    assessment = deployments.assess(deployments.get("support"), later)
    assert "max_p95_ms: canary p95 ms 2000.000 (over 25 answers) > 500" in assessment.reason


def test_a_step_is_held_for_its_length_and_manual_waits(db: Engine, deployments: DeploymentService) -> None:
    deployments.deploy(
        CANARY,
        name="support",
        canary=10,
        rollout=Rollout(step_seconds=300, manual=True, guards={"min_requests": 1}),
    )
    now = datetime.now(UTC)
    _traffic(db, [_trace(now + timedelta(seconds=5), CANARY), _trace(now + timedelta(seconds=395), CANARY)])
    info = deployments.get("support")
    early = deployments.assess(info, now + timedelta(seconds=10))
    assert early.action == "hold"
    assert "10% for 10 s of 300 s" in early.reason
    held = deployments.assess(info, now + timedelta(seconds=400))
    assert held.action == "hold"
    assert "promotion is manual" in held.reason


def test_the_window_starts_with_the_step(db: Engine, deployments: DeploymentService) -> None:
    _canary(deployments, min_requests=1)
    before = deployments.get("support").step_started_at
    assert before is not None
    _traffic(db, [_trace(before - timedelta(seconds=1), CANARY, status=500) for _ in range(3)])
    window = deployments.window(deployments.get("support"), before + timedelta(seconds=2))
    assert window.of(CANARY).calls == 0


def test_the_eval_gate_holds_until_the_candidate_finishes(deployments: DeploymentService) -> None:
    verdicts = iter([("hold", "candidate run cand is running"), ("break", "gate failed: cand regressed")])
    _canary(deployments, min_requests=1)
    info = deployments.get("support")
    rules = GuardRegistry().build(
        {"eval_gate": {"baseline": "b", "candidate": "cand", "metrics": {"m": 0.1}}}
    )
    from llmops.deployments.guards import assess

    window = deployments.window(info)
    later = datetime.now(UTC) + timedelta(seconds=5)
    held = assess(info, window, rules, later, gate=lambda *_: next(verdicts))
    assert (held.action, held.reason) == ("hold", "eval_gate: candidate run cand is running")
    broken = assess(info, window, rules, later, gate=lambda *_: next(verdicts))
    assert (broken.action, broken.reason) == ("rollback", "eval_gate: gate failed: cand regressed")


@pytest.mark.parametrize(
    "guards",
    [
        {"eval_gate": {"baseline": "b"}},
        {"eval_gate": {"baseline": "b", "candidate": "c", "metrics": {"m": -1}}},
        {"min_requests": 0},
        {"max_p95_ms": "fast"},
    ],
)
def test_bad_rules(guards: dict[str, Any]) -> None:
    with pytest.raises(InvalidGuard):
        GuardRegistry().normalise(guards)
