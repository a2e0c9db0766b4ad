"""Alert rules: the rule model, llmops.yaml's rules beside stored ones, checks, audit, silences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from llmops.alerts.channels.base import InvalidChannel
from llmops.alerts.config import AlertRuleConfig, ChannelConfig, duration_seconds
from llmops.alerts.service import AlertConflict, AlertNotFound, AlertService, InvalidAlert, parse_rule
from llmops.alerts.silences import InvalidSilence, SilenceNotFound
from llmops.alerts.statistics import Measurer
from llmops.audit import AuditService, cli_actor
from llmops.settings import Settings, SettingsError, load_settings

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


class _NoTraffic:
    """A window source with nothing in it (these tests never measure)."""

    def window(self, since: datetime, until: datetime, filters: object) -> object:
        raise AssertionError("not measured here")


def _service(
    db: Engine, configured: tuple[AlertRuleConfig, ...] = (), **channels: ChannelConfig
) -> AlertService:
    return AlertService(
        db,
        Measurer(_NoTraffic()),  # type: ignore[arg-type]
        configured=lambda: configured,
        channels=lambda: channels,
        audit=AuditService(db),
    )


def _rule(name: str = "errors", **fields: object) -> AlertRuleConfig:
    return parse_rule({"name": name, "statistic": "error_rate", "threshold": 0.05, **fields})


# ---- the rule model ----------------------------------------------------------------------------------


def test_a_rule_reads_as_written_in_llmops_yaml() -> None:
    rule = parse_rule(
        {
            "name": "slow",
            "statistic": "p95_latency_ms",
            "comparison": ">=",
            "threshold": 2000,
            "window": "10m",
            "for": "2m",
            "filters": {"model": "gpt-4o"},
            "channels": ["oncall", {"type": "webhook", "url": "http://127.0.0.1:9/x", "name": "hook"}],
            "labels": {"team": "search"},
        }
    )
    assert (rule.window_seconds, rule.for_seconds, rule.repeat_seconds) == (600, 120, 4 * 3600)
    assert rule.condition() == "p95_latency_ms >= 2000 over 10m"
    assert rule.as_json()["for"] == "2m"
    assert parse_rule(rule.as_json()) == rule
    assert isinstance(rule.channels[1], ChannelConfig)
    assert rule.channels[1].options() == {"url": "http://127.0.0.1:9/x"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"window": "30s"}, "window: must be from 1m to 1d"),
        ({"window": "2d"}, "window: must be from 1m to 1d"),
        ({"window": "5 minutes"}, "window: String should match pattern"),
        ({"for": "8d"}, "for: must be at most 7d"),
        ({"repeat_interval": "10s"}, "repeat_interval: must be from 1m to 30d"),
        ({"statistic": "budget_use"}, "budget_use needs a key or a team filter"),
        ({"statistic": "latency"}, "statistic: Input should be"),
        ({"comparison": "=="}, "comparison: Input should be"),
        ({"threshold": float("nan")}, "threshold: Input should be a finite number"),
        ({"threshold": 1e16}, "threshold: Input should be less than or equal to 1000000000000000"),
        ({"channels": ["log", "log"]}, "channels: a channel is named twice"),
        ({"surprise": 1}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_bad_rules_are_refused_with_one_line(fields: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidAlert) as caught:
        _rule(**fields)
    assert message in caught.value.message
    assert "\n" not in caught.value.message


def test_durations() -> None:
    assert [duration_seconds(text) for text in ("0s", "45s", "5m", "2h", "1d")] == [0, 45, 300, 7200, 86400]
    with pytest.raises(ValueError, match="expected a duration"):
        duration_seconds("5")


def test_settings_read_rules_and_channels_and_refuse_a_name_twice(tmp_path: object) -> None:
    settings = Settings(
        alerts=[{"name": "a", "statistic": "requests", "comparison": "<", "threshold": 1}],
        alert_channels={"oncall": {"type": "slack", "url": "https://hooks.example/x"}},
    )
    assert settings.alerts[0].comparison == "<"
    assert settings.alert_channels["oncall"].options() == {"url": "https://hooks.example/x"}
    twice = [{"name": "a", "statistic": "requests", "threshold": 1}] * 2
    with pytest.raises(SettingsError, match="alert name 'a' is declared twice"):
        load_settings(alerts=twice)


# ---- stored rules beside the file's ------------------------------------------------------------------


def test_stored_rules_are_listed_after_the_file_s_and_changed_with_an_audit_trail(db: Engine) -> None:
    service = _service(db, (_rule("from-file"),))
    created = service.create(_rule("stored", channels=["log"]), cli_actor())
    assert (created.source, created.revision) == ("api", 1)
    assert [(view.config.name, view.source) for view in service.all()] == [
        ("from-file", "config"),
        ("stored", "api"),
    ]
    replaced = service.replace("stored", _rule("stored", threshold=0.2), cli_actor())
    assert (replaced.config.threshold, replaced.revision) == (0.2, 2)
    service.delete("stored", cli_actor())
    assert [view.config.name for view in service.all()] == ["from-file"]
    actions = [event["action"] for event in AuditService(db).list(limit=10).items]
    assert actions == ["alert.delete", "alert.update", "alert.create"]


def test_names_conflicts_and_the_file_s_rules_are_read_only(db: Engine) -> None:
    service = _service(db, (_rule("from-file"),))
    service.create(_rule("stored"))
    with pytest.raises(AlertConflict, match="exists already"):
        service.create(_rule("stored"))
    with pytest.raises(AlertConflict, match="exists already"):
        service.create(_rule("from-file"))
    with pytest.raises(AlertConflict, match="declared in llmops.yaml"):
        service.delete("from-file")
    with pytest.raises(AlertConflict, match="declared in llmops.yaml"):
        service.replace("from-file", _rule("from-file"))
    with pytest.raises(InvalidAlert, match="differs from the one in the path"):
        service.replace("stored", _rule("other"))
    with pytest.raises(AlertNotFound):
        service.get("nothing")


def test_channels_are_checked_before_a_rule_is_stored(db: Engine) -> None:
    service = _service(db, oncall=ChannelConfig(type="slack", url="https://hooks.example/x"))
    service.create(_rule("named", channels=["oncall", "log"]))
    with pytest.raises(InvalidChannel, match="no channel named 'pager'.*known: log, oncall"):
        service.create(_rule("unknown", channels=["pager"]))
    with pytest.raises(InvalidChannel, match="unknown alert channel type 'webhok'.*did you mean 'webhook'"):
        service.create(_rule("typo", channels=[{"type": "webhok", "url": "http://x"}]))
    with pytest.raises(InvalidChannel, match="channels.0.url: String should match pattern"):
        service.create(_rule("bad-url", channels=[{"type": "webhook", "url": "ftp://x"}]))
    smtp = {"type": "smtp", "host": "h", "sender": "a@b.c", "to": ["d@e.f"], "ssl": True, "starttls": True}
    with pytest.raises(InvalidChannel, match="channels.0: Value error, choose ssl or starttls"):
        service.create(_rule("bad-smtp", channels=[smtp]))
    assert [view.config.name for view in service.all()] == ["named"]


def test_a_bad_channel_in_llmops_yaml_stops_the_start(db: Engine) -> None:
    service = _service(db, (_rule("file", channels=["pager"]),))
    with pytest.raises(InvalidAlert, match="alert 'file': channels: no channel named 'pager'"):
        service.check_configured()
    broken = _service(db, oncall=ChannelConfig(type="webhook"))
    with pytest.raises(InvalidChannel, match="alert_channels.oncall.url: Field required"):
        broken.check_configured()


def test_rules_in_force_skip_disabled_ones_and_the_stored_twin_of_a_file_rule(db: Engine) -> None:
    service = _service(db)
    service.create(_rule("twin", threshold=0.9))
    service.create(_rule("off", enabled=False))
    service.create(_rule("on"))
    service.configured = lambda: (_rule("twin", threshold=0.1),)
    assert [(rule.name, rule.threshold) for rule in service.in_force()] == [("twin", 0.1), ("on", 0.05)]


def test_a_name_held_by_a_stored_rule_that_no_longer_reads_is_a_conflict_not_a_crash(db: Engine) -> None:
    from llmops.alerts.tables import alert_rules

    with db.begin() as connection:
        connection.execute(
            alert_rules.insert().values(
                name="old", config={"name": "old", "statistic": "gone"}, revision=1, created_at=NOW,
                updated_at=NOW,
            )
        )  # fmt: skip
    service = _service(db)
    assert service.all() == []  # skipped (and logged): it cannot be read
    with pytest.raises(AlertConflict, match="exists already"):
        service.create(_rule("old"))


async def test_trying_a_rule_reads_the_database_off_the_event_loop(db: Engine) -> None:
    import threading

    from sqlalchemy import event

    class _Quiet:
        def window(self, since: datetime, until: datetime, filters: object) -> object:
            from llmops.monitoring.stats import StatsRow

            return StatsRow()

    service = AlertService(db, Measurer(_Quiet()), configured=lambda: (_rule("tried"),))  # type: ignore[arg-type]
    loop_thread = threading.get_ident()
    on_the_loop: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if threading.get_ident() == loop_thread:
            on_the_loop.append(statement)

    event.listen(db, "before_cursor_execute", seen)
    try:
        result = await service.test("tried", send=True)
    finally:
        event.remove(db, "before_cursor_execute", seen)
    assert result.measurement.note == "no data"
    assert [delivery.ok for delivery in result.deliveries] == [True]
    assert on_the_loop == []


# ---- silences ---------------------------------------------------------------------------------------------


def test_silences_match_rule_globs_and_labels_until_they_end(db: Engine) -> None:
    silences = _service(db).silences
    made = silences.create("latency-*", NOW + timedelta(hours=1), labels={"team": "search"}, now=NOW)
    assert silences.matching("latency-p95", {"team": "search", "severity": "warning"}, NOW) == made
    assert silences.matching("latency-p95", {"team": "ads"}, NOW) is None
    assert silences.matching("errors", {"team": "search"}, NOW) is None
    assert silences.matching("latency-p95", {"team": "search"}, NOW + timedelta(hours=2)) is None
    assert [item.id for item in silences.all(now=NOW)] == [made.id]
    ended = silences.end(made.id, cli_actor(), now=NOW + timedelta(minutes=5))
    assert ended.ends_at == NOW + timedelta(minutes=5)
    assert silences.matching("latency-p95", {"team": "search"}, NOW + timedelta(minutes=6)) is None
    assert silences.all(now=NOW + timedelta(minutes=6)) == []
    assert [item.id for item in silences.all(include_ended=True, now=NOW)] == [made.id]
    with pytest.raises(SilenceNotFound):
        silences.get("0" * 32)


def test_bad_silences(db: Engine) -> None:
    silences = _service(db).silences
    for ends_at, starts_at, message in [
        (NOW - timedelta(minutes=1), None, "must be in the future"),
        (NOW + timedelta(hours=1), NOW + timedelta(hours=2), "must be after starts_at"),
        (NOW + timedelta(days=400), None, "at most a year from now"),
    ]:
        with pytest.raises(InvalidSilence, match=message):
            silences.create("*", ends_at, starts_at=starts_at, now=NOW)
    assert silences.all(include_ended=True, now=NOW) == []


# ---- the guide ----------------------------------------------------------------------------------------


def test_the_guide_s_alerts_section_is_a_valid_config_and_its_commands_parse(db: Engine) -> None:
    import yaml
    from test_docs import _llmops_commands, _parse_cli

    text = (Path(__file__).parents[2] / "docs" / "monitoring.md").read_text()
    section = text.split("\n## Alerts\n", 1)[1].split("\n## ", 1)[0]
    config = yaml.safe_load(section.split("```yaml\n", 1)[1].split("```", 1)[0])
    settings = Settings(**config)
    assert {rule.statistic for rule in settings.alerts} >= {"error_rate", "budget_use", "drift_score"}
    service = _service(db, settings.alerts, **settings.alert_channels)
    service.check_configured()
    commands = {_parse_cli(args)[0] for args in _llmops_commands(section)}
    names = ("list", "test", "silence", "silences", "unsilence", "history", "add", "remove")
    assert commands == {f"alerts {name}" for name in names}
