"""Channel secrets (webhook and Slack URLs, header tokens) are stored in full but never shown: listings
over the API and the CLI, the audit log and delivery errors show ``scheme://host/***``; a listed rule
sent back keeps its stored secrets, and a mask that cannot be restored is refused."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from alert_support import WebhookReceiver
from llmops.alerts.channels.base import Notification
from llmops.alerts.channels.registry import ChannelRegistry
from llmops.alerts.config import ChannelConfig
from llmops.alerts.notify import Dispatcher
from llmops.alerts.redact import mask_url, redact_text
from llmops.alerts.service import AlertService, InvalidAlert, parse_rule
from llmops.alerts.statistics import Measurer
from llmops.audit import AuditService, cli_actor

SLACK = "https://hooks.slack.com/services/T000/B000/SLACKSECRET"
HOOK = "http://user:PASSWORD@127.0.0.1:9000/hook/HOOKSECRET?token=QUERYSECRET"
SECRETS = ("SLACKSECRET", "HOOKSECRET", "QUERYSECRET", "PASSWORD", "BEARERSECRET")


class _NoTraffic:
    def window(self, since: datetime, until: datetime, filters: object) -> object:
        raise AssertionError("not measured here")


def _service(db: Engine) -> AlertService:
    return AlertService(db, Measurer(_NoTraffic()), audit=AuditService(db))  # type: ignore[arg-type]


def _rule(name: str = "hooks", **fields: Any) -> dict[str, Any]:
    channels = [
        {"type": "slack", "url": SLACK, "name": "chat"},
        {"type": "webhook", "url": HOOK, "headers": {"Authorization": "Bearer BEARERSECRET"}},
        "log",
    ]
    return {"name": name, "statistic": "error_rate", "threshold": 0.05, "channels": channels, **fields}


def _assert_no_secret(shown: Any) -> None:
    text = json.dumps(shown, default=str)
    for secret in SECRETS:
        assert secret not in text


def test_mask_url_keeps_scheme_and_host_only() -> None:
    assert mask_url(SLACK) == "https://hooks.slack.com/***"
    assert mask_url(HOOK) == "http://127.0.0.1:9000/***"
    assert mask_url("http://[::1]:8080/x/y") == "http://[::1]:8080/***"
    assert mask_url("http://host:notaport/x") == "***"
    assert (
        redact_text(f"{HOOK} answered 404: not found") == "http://127.0.0.1:9000/*** answered 404: not found"
    )


def test_listings_and_the_audit_log_mask_channel_secrets_the_store_keeps_them(db: Engine) -> None:
    service = _service(db)
    created = service.create(parse_rule(_rule()), cli_actor())
    shown = created.as_dict()
    _assert_no_secret(shown)
    slack, hook, log = shown["channels"]
    assert (slack["url"], slack["name"], slack["type"]) == ("https://hooks.slack.com/***", "chat", "slack")
    assert (hook["url"], hook["headers"]) == ("http://127.0.0.1:9000/***", {"Authorization": "***"})
    assert log == "log"
    _assert_no_secret([view.as_dict() for view in service.all()])
    stored = service.get("hooks").config.channels
    assert isinstance(stored[0], ChannelConfig)
    assert isinstance(stored[1], ChannelConfig)
    assert stored[0].options()["url"] == SLACK  # what is sent to is the full URL
    assert stored[1].options()["headers"] == {"Authorization": "Bearer BEARERSECRET"}
    service.replace("hooks", parse_rule(_rule(threshold=0.2)), cli_actor())
    audit = AuditService(db).list(limit=10).items
    assert [event["action"] for event in audit] == ["alert.update", "alert.create"]
    _assert_no_secret(audit)


def test_a_listed_rule_sent_back_keeps_its_secrets_and_a_mask_alone_is_refused(db: Engine) -> None:
    service = _service(db)
    service.create(parse_rule(_rule()))
    listed = service.get("hooks").as_dict()
    body = {
        name: value
        for name, value in listed.items()
        if name not in ("source", "revision", "updated_at", "status")
    }
    replaced = service.replace("hooks", parse_rule({**body, "threshold": 0.2}))
    slack, hook, _ = replaced.config.channels
    assert isinstance(slack, ChannelConfig)
    assert isinstance(hook, ChannelConfig)
    assert (replaced.config.threshold, slack.options()["url"], hook.options()["url"]) == (0.2, SLACK, HOOK)
    assert hook.options()["headers"] == {"Authorization": "Bearer BEARERSECRET"}
    new_url = {**body["channels"][0], "url": "https://hooks.slack.com/services/T1/B1/NEW"}
    changed = service.replace("hooks", parse_rule({**body, "channels": [new_url, "log"]}))
    assert changed.config.channels[0].options()["url"] == "https://hooks.slack.com/services/T1/B1/NEW"  # type: ignore[union-attr]
    with pytest.raises(InvalidAlert, match=r"channels\.0\.url: a masked value"):
        service.create(parse_rule({**body, "name": "copy"}))
    assert [view.config.name for view in service.all()] == ["hooks"]


def test_the_cli_lists_rules_with_masked_secrets(tmp_path: Path) -> None:
    from llmops.cli.main import app

    rule = tmp_path / "rule.json"
    rule.write_text(json.dumps(_rule()))
    base = ["--database-url", f"sqlite:///{tmp_path / 'llmops.db'}", "alerts"]
    runner = CliRunner()
    added = runner.invoke(app, [*base, "add", str(rule)])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, [*base, "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [shown] = json.loads(listed.output)
    assert shown["channels"][0]["url"] == "https://hooks.slack.com/***"
    _assert_no_secret(listed.output)
    table = runner.invoke(app, [*base, "list"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    _assert_no_secret(table.output)


async def test_delivery_errors_and_logs_show_no_webhook_path(caplog: pytest.LogCaptureFixture) -> None:
    async def no_sleep(_: float) -> None:
        return None

    notification = Notification(
        "hooks", "firing", "warning", "error_rate", 0.5, 0.05, ">", "5m", datetime(2026, 11, 20, tzinfo=UTC)
    )
    caplog.set_level(logging.INFO, logger="llmops.alerts")
    with WebhookReceiver(fail_first=100, fail_status=404) as receiver:
        url = f"{receiver.url}/HOOKSECRET"
        dispatcher = Dispatcher(ChannelRegistry(load_plugins=False), sleep=no_sleep)
        [delivery] = await dispatcher.deliver(
            notification, [("hook", ChannelConfig(type="webhook", url=url))]
        )
    assert not delivery.ok
    assert delivery.error is not None
    assert "answered 404" in delivery.error
    assert mask_url(url) in delivery.error
    _assert_no_secret([delivery.as_json(), caplog.text])
