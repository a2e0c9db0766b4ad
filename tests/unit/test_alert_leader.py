"""Leader election through the database (SQLite and Postgres): one lease, exactly one holder; the other
takes over when the holder stops renewing, or at once when it lets go."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from llmops.alerts.leader import LeaseElector
from llmops.store import open_database

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def test_exactly_one_of_two_leads_and_the_other_takes_over_when_renewals_stop(db: Engine) -> None:
    clock = Clock()
    first = LeaseElector(db, "evaluator", ttl_seconds=10, holder="a", clock=clock)
    second = LeaseElector(db, "evaluator", ttl_seconds=10, holder="b", clock=clock)
    assert first.acquire()
    assert not second.acquire()
    for _ in range(5):  # the holder renews every round; the other keeps asking
        clock.now += timedelta(seconds=4)
        assert first.acquire()
        assert not second.acquire()
    assert second.current() == ("a", clock.now + timedelta(seconds=10))
    clock.now += timedelta(seconds=9)  # a stops renewing: still its lease for a moment
    assert not second.acquire()
    clock.now += timedelta(seconds=2)
    assert second.acquire()
    assert not first.acquire()
    assert not first.leading
    assert second.current() == ("b", clock.now + timedelta(seconds=10))


def test_release_hands_over_at_once_and_names_are_separate_leases(db: Engine) -> None:
    first = LeaseElector(db, "evaluator", ttl_seconds=60, holder="a")
    second = LeaseElector(db, "evaluator", ttl_seconds=60, holder="b")
    elsewhere = LeaseElector(db, "another-role", ttl_seconds=60, holder="b")
    assert first.acquire()
    assert elsewhere.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    assert not first.acquire()


def test_racing_electors_on_separate_connections_elect_exactly_one(database_url: str) -> None:
    """Eight replicas (each its own engine, as separate processes have) ask at once, round after round."""
    engines = [open_database(database_url) for _ in range(8)]
    try:
        clock = Clock()
        electors = [
            LeaseElector(engine, "evaluator", ttl_seconds=5, holder=f"replica-{index}", clock=clock)
            for index, engine in enumerate(engines)
        ]
        for round_number in range(4):
            clock.now = T0 + timedelta(seconds=10 * round_number)  # every lease expired: a free-for-all
            barrier = threading.Barrier(len(electors))
            won: list[str] = []

            def ask(
                elector: LeaseElector, barrier: threading.Barrier = barrier, won: list[str] = won
            ) -> None:
                barrier.wait()
                if elector.acquire():
                    won.append(elector.holder)

            threads = [threading.Thread(target=ask, args=(elector,)) for elector in electors]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            assert len(won) == 1, won
            assert electors[0].current() == (won[0], clock.now + timedelta(seconds=5))
    finally:
        for engine in engines:
            engine.dispose()
