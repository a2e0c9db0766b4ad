"""DriftService on SQLite and Postgres: traces of two windows, dataset references, stored checks, scores,
team scopes and the errors a request can cause."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event, insert

from drift_support import REFERENCE_MIX, SHIFTED_MIX, WordHashEmbedder, prompts, trace_row
from llmops.datasets.service import DatasetNotFound, DatasetService
from llmops.drift.features import InvalidWindow, TraceFilter, parse_window, trace_sample
from llmops.drift.service import DriftCheckNotFound, DriftError, DriftRequest, DriftService
from llmops.ids import new_id
from llmops.store import ApiKeyRow, KeyRepository, TraceRepository
from llmops.store.tables import feedback

pytest.importorskip("numpy")
pytest.importorskip("py3langid")

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
TEAM_A, TEAM_B = "team_" + "a" * 32, "team_" + "b" * 32
KEY_A = "key_" + "a" * 32


def _service(db: Engine) -> DriftService:
    return DriftService(db, DatasetService(db), permutations=999, sample=400, embedder=WordHashEmbedder)


def _seed(db: Engine, *, shifted: bool, key: str | None = None) -> None:
    """200 traces between 3 and 2 days ago, 200 in the last hour (30% German when ``shifted``), a few
    errors and thumbs on each side."""
    rng = random.Random(11)
    rows = []
    for _side, mix, start in (
        ("reference", REFERENCE_MIX, NOW - timedelta(days=3)),
        ("current", SHIFTED_MIX if shifted else REFERENCE_MIX, NOW - timedelta(hours=1)),
    ):
        for index, text in enumerate(prompts(rng, 200, mix)):
            rows.append(trace_row(start + timedelta(seconds=10 * index), text, api_key_id=key))
        for index in range(3):
            rows.append(
                trace_row(
                    start + timedelta(seconds=5 + index),
                    "failing request",
                    status="error",
                    status_code=500,
                    response_text=None,
                    api_key_id=key,
                )
            )
        rows.append(trace_row(start, "other model", requested_model="gpt-x", api_key_id=key))
    TraceRepository(db).insert_many(rows)
    notes = [
        {"id": new_id(), "trace_id": row["id"], "created_at": NOW, "thumb": "down" if n % 4 == 0 else "up"}
        for n, row in enumerate(rows[:40] + rows[210:250])
    ]
    with db.begin() as connection:
        connection.execute(insert(feedback), notes)


def test_a_shifted_window_is_drift_and_is_stored(db: Engine) -> None:
    _seed(db, shifted=True)
    service = _service(db)
    report = service.run(DriftRequest(model="echo", reference="3d..2d", current="2h"), now=NOW)
    assert report["drifted"] is True
    assert report["score"] > 0.2
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["language"]["status"] == "drift"
    assert checks["new_topics"]["status"] == "drift"
    assert checks["error_rate"]["status"] == "ok"
    assert checks["error_rate"]["details"]["current"] == {
        "count": 3,
        "n": 203,
        "rate": pytest.approx(3 / 203, abs=1e-6),
        "interval": checks["error_rate"]["details"]["current"]["interval"],
    }
    assert checks["thumbs_down_rate"]["details"]["reference"]["n"] == 40
    assert report["reference"]["traces"] == 203  # the other model's trace is not counted
    assert report["current"]["prompts"] == 203
    assert report["current"]["answers"] == 200  # errors have no answer
    assert report["reference"]["since"].startswith("2026-11-17T12:00")

    listed = service.list_checks(model="echo")
    assert [row["id"] for row in listed] == [report["id"]]
    assert listed[0]["drifted"] is True
    assert listed[0]["reference"] == "3d..2d"
    assert listed[0]["p_values"]["language"] == checks["language"]["p_value"]
    assert service.get_check(report["id"]) == report
    assert service.list_checks(model="gpt-x") == []


def test_one_population_is_not_drift(db: Engine) -> None:
    _seed(db, shifted=False)
    report = _service(db).run(
        DriftRequest(model="echo", reference="3d..2d", current="2h"), now=NOW, save=False
    )
    assert report["drifted"] is False, [c["summary"] for c in report["checks"] if c["status"] == "drift"]
    assert report["score"] == 0.0
    assert _service(db).list_checks() == []  # save=False


def test_score_reuses_a_recent_check(db: Engine) -> None:
    _seed(db, shifted=True)
    service = _service(db)
    first = service.score(model="echo", reference="3d..2d", current="2h", now=NOW)
    assert first.drifted
    assert first.p_values["language"] is not None
    assert first.p_values["language"] < 0.01
    again = service.score(
        model="echo", reference="3d..2d", current="2h", max_age=timedelta(minutes=5), now=NOW
    )
    assert again == first
    later = NOW + timedelta(minutes=10)
    fresh = service.score(
        model="echo", reference="3d..2d", current="2h", max_age=timedelta(minutes=5), now=later
    )
    assert fresh.check_id != first.check_id
    assert len(service.list_checks()) == 2


def test_a_dataset_version_as_the_reference(db: Engine) -> None:
    _seed(db, shifted=True)
    datasets = DatasetService(db)
    rng = random.Random(2)
    rows = [{"input": text, "expected": text} for text in prompts(rng, 150, REFERENCE_MIX)]
    datasets.create_version("golden", rows, operation="import")
    service = _service(db)
    report = service.run(DriftRequest(model="echo", dataset="golden@1", current="2h"), now=NOW)
    assert report["reference"]["kind"] == "dataset"
    assert report["reference"]["dataset"] == "golden@1"
    assert report["reference"]["traces"] == 150
    checks = {check["name"]: check for check in report["checks"]}
    assert checks["error_rate"]["status"] == "skipped"
    assert checks["language"]["status"] == "drift"
    assert service.list_checks()[0]["reference"] == "dataset:golden@1"
    scored = service.score(
        model="echo", dataset="golden@1", current="2h", max_age=timedelta(minutes=5), now=NOW
    )
    assert scored.check_id == report["id"]  # the stored check is reused
    with pytest.raises(DatasetNotFound):
        service.run(DriftRequest(dataset="missing@1"), now=NOW)
    with pytest.raises(DriftError, match="not both"):
        service.run(DriftRequest(dataset="golden@1", reference="7d..1d"), now=NOW)


def test_a_team_sees_its_own_traces_and_checks(db: Engine) -> None:
    keys = KeyRepository(db)
    keys.add(ApiKeyRow(KEY_A, "a", "viewer", "sk-llmops-xx", NOW, None, team_id=TEAM_A), "a" * 64)
    _seed(db, shifted=True, key=KEY_A)
    service = _service(db)
    mine = service.for_team(TEAM_A).run(DriftRequest(model="echo", reference="3d..2d", current="2h"), now=NOW)
    assert mine["current"]["traces"] == 203
    theirs = service.for_team(TEAM_B).run(
        DriftRequest(model="echo", reference="3d..2d", current="2h"), now=NOW
    )
    assert theirs["current"]["traces"] == 0
    assert all(check["status"] == "skipped" for check in theirs["checks"])
    assert theirs["score"] == 0.0
    assert [row["id"] for row in service.for_team(TEAM_B).list_checks()] == [theirs["id"]]
    with pytest.raises(DriftCheckNotFound):
        service.for_team(TEAM_B).get_check(mine["id"])
    assert {row["id"] for row in service.list_checks()} == {mine["id"], theirs["id"]}  # an admin sees both


BAD_REQUESTS = [
    (DriftRequest(current="soon"), InvalidWindow, "current: expected START..END"),
    (DriftRequest(reference="1d..7d"), InvalidWindow, "reference: the window '1d..7d' ends before"),
    (DriftRequest(prompt="a@b@c"), DriftError, "prompt: expected NAME or NAME@VERSION"),
    (DriftRequest(sample=5), DriftError, "sample: must be 20 to 100000"),
    (DriftRequest(alpha=1.5), DriftError, "alpha: must be between 0 and 1"),
    (DriftRequest(checks=("colour",)), DriftError, "checks: unknown check"),
    (DriftRequest(permutations=10), DriftError, "permutations: must be"),
    (DriftRequest(seed=-1), DriftError, "seed: must be 0 to"),  # numpy would raise a ValueError
]


def test_bad_requests_are_user_errors(db: Engine) -> None:
    service = _service(db)
    for request, error, message in BAD_REQUESTS:
        with pytest.raises(error, match=message):
            service.run(request, now=NOW)
    assert service.list_checks() == []


def test_unknown_checks_and_limits(db: Engine) -> None:
    service = _service(db)
    for bad in ("nope", "f" * 32):
        with pytest.raises(DriftCheckNotFound):
            service.get_check(bad)
    with pytest.raises(DriftError, match="limit"):
        service.list_checks(limit=0)


def test_the_database_draws_the_sample(db: Engine) -> None:
    """Only the sampled ids leave the database (no pass over every id of a big window in Python), and the
    sample is seeded, of the asked size, and covers the window."""
    rng = random.Random(12)
    TraceRepository(db).insert_many(
        [
            trace_row(NOW - timedelta(minutes=50, seconds=n), text)
            for n, text in enumerate(prompts(rng, 300, REFERENCE_MIX))
        ]
    )
    where = TraceFilter(parse_window("1h", NOW), model="echo")
    statements: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(" ".join(statement.split()).lower())

    event.listen(db, "before_cursor_execute", record)
    try:
        sample = trace_sample(db, where, 50, seed=3)
    finally:
        event.remove(db, "before_cursor_execute", record)
    assert (sample.total, sample.sampled, len(sample.prompts)) == (300, 50, 50)
    reads = [s for s in statements if " from trace" in s and "count(" not in s]
    assert reads
    assert all(" limit " in s or " in (" in s for s in reads), reads  # by id, or at most `size` ids
    assert trace_sample(db, where, 50, seed=3).prompts == sample.prompts
    assert trace_sample(db, where, 50, seed=4).prompts != sample.prompts
    assert trace_sample(db, where, 1000, seed=3).sampled == 300  # the whole window when it is small
    seen = {text for seed in range(40) for text in trace_sample(db, where, 50, seed=seed).prompts}
    assert len(seen) >= 0.9 * len(set(trace_sample(db, where, 1000, seed=0).prompts))
