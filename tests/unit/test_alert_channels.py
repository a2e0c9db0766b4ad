"""Alert channels over real protocols on 127.0.0.1: the JSON webhook, the Slack payload, SMTP (plain,
STARTTLS with a login), the log; retries with back-off, and failures that come back as deliveries."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alert_support import SmtpReceiver, WebhookReceiver, self_signed_certificate
from llmops.alerts.channels.base import Notification
from llmops.alerts.channels.registry import ChannelRegistry
from llmops.alerts.channels.slack import slack_payload
from llmops.alerts.config import ChannelConfig
from llmops.alerts.notify import Dispatcher

AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _notification(status: str = "firing") -> Notification:
    return Notification(
        rule="high-errors",
        status=status,
        severity="critical",
        statistic="error_rate",
        value=0.25,
        threshold=0.05,
        comparison=">",
        window="5m",
        at=AT,
        active_since=AT,
        labels={"team": "search"},
        filters={"model": "gpt-4o"},
        summary="Users see errors.",
        event_id="e1",
    )


def _dispatcher(sleeps: list[float] | None = None) -> Dispatcher:
    async def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return Dispatcher(ChannelRegistry(load_plugins=False), sleep=sleep)


async def test_the_webhook_posts_the_notification_s_json_with_its_headers() -> None:
    with WebhookReceiver() as receiver:
        channel = ChannelConfig(type="webhook", url=receiver.url, headers={"Authorization": "Bearer t"})
        [delivery] = await _dispatcher().deliver(_notification(), [("hook", channel)])
        assert (delivery.ok, delivery.attempts, delivery.channel) == (True, 1, "hook")
        [received] = receiver.received
    assert received.headers["Authorization"] == "Bearer t"
    body = received.body
    assert body["status"] == "firing"
    assert body["repeat"] is False
    assert (body["rule"], body["value"], body["threshold"], body["comparison"]) == (
        "high-errors",
        0.25,
        0.05,
        ">",
    )
    assert body["filters"] == {"model": "gpt-4o"}
    assert body["labels"] == {"team": "search"}
    assert body["dedup_key"] == f"high-errors:firing:{AT.isoformat()}"
    assert body["text"] == (
        "[FIRING] high-errors (critical): error_rate is 0.25 for model=gpt-4o over 5m (alert when > 0.05)."
        " Users see errors."
    )


async def test_a_failing_receiver_is_retried_with_back_off_then_succeeds() -> None:
    sleeps: list[float] = []
    with WebhookReceiver(fail_first=2) as receiver:
        channel = ChannelConfig(type="webhook", url=receiver.url)
        [delivery] = await _dispatcher(sleeps).deliver(_notification(), [("hook", channel)])
    assert (delivery.ok, delivery.attempts) == (True, 3)
    assert sleeps == [0.5, 1.0]
    assert len(receiver.received) == 1


async def test_failures_come_back_as_deliveries_and_spare_the_other_channels(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with WebhookReceiver(fail_first=100, fail_status=503) as failing, WebhookReceiver() as working:
        channels = [
            ("down", ChannelConfig(type="webhook", url=failing.url)),
            ("refused", ChannelConfig(type="webhook", url="http://127.0.0.1:9/nothing-listens")),
            ("up", ChannelConfig(type="slack", url=working.url)),
        ]
        down, refused, up = await _dispatcher().deliver(_notification(), channels)
    assert (down.ok, down.attempts) == (False, 3)
    assert down.error is not None
    assert "answered 503: nope" in down.error
    assert not refused.ok
    assert refused.error is not None
    assert "127.0.0.1:9" in refused.error
    assert up.ok
    assert len(working.received) == 1
    assert "channel down failed after 3 attempts" in caplog.text


def test_the_slack_payload_has_text_and_blocks() -> None:
    payload = slack_payload(_notification("resolved"), channel="#alerts")
    assert payload["channel"] == "#alerts"
    assert payload["text"].startswith(":white_check_mark: [RESOLVED] high-errors (critical)")
    kinds = [block["type"] for block in payload["blocks"]]
    assert kinds == ["header", "section", "section", "context"]
    assert payload["blocks"][0]["text"]["text"] == "[RESOLVED] high-errors (critical)"
    assert "*Value*\n0.25" in [field["text"] for field in payload["blocks"][1]["fields"]]
    assert "`model=gpt-4o`" in payload["blocks"][3]["elements"][0]["text"]


async def test_the_log_channel_logs_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="llmops.alerts")
    [delivery] = await _dispatcher().deliver(_notification(), [("log", ChannelConfig(type="log"))])
    assert delivery.ok
    [record] = [r for r in caplog.records if r.name == "llmops.alerts"]
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith("alert [FIRING] high-errors (critical): error_rate is 0.25")


async def test_smtp_plain() -> None:
    with SmtpReceiver() as server:
        channel = ChannelConfig(
            type="smtp",
            host="127.0.0.1",
            port=server.port,
            sender="llmops@example.com",
            to=["ops@example.com"],
        )
        [delivery] = await _dispatcher().deliver(_notification(), [("mail", channel)])
        assert delivery.ok, delivery.error
        [mail] = server.mails
    assert (mail.sender, mail.recipients, mail.tls, mail.login) == (
        "llmops@example.com", ["ops@example.com"], False, None,
    )  # fmt: skip
    assert mail.message["Subject"] == "[FIRING] high-errors (critical)"
    body = mail.message.get_payload()
    assert isinstance(body, str)
    assert "value:      0.25" in body
    assert "team:       search" in body


async def test_smtp_with_starttls_and_a_login_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed_certificate(tmp_path)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    with SmtpReceiver(certificate=(cert, key), users={"alerts": "s3cret"}, require_tls=True) as server:
        options = {
            "type": "smtp", "host": "127.0.0.1", "port": server.port, "sender": "llmops@example.com",
            "to": ["a@example.com", "b@example.com"], "starttls": True, "username": "alerts",
            "password_env": "TEST_SMTP_PASSWORD", "ca_file": str(cert),
        }  # fmt: skip
        [delivery] = await _dispatcher().deliver(_notification(), [("mail", ChannelConfig(**options))])
        assert delivery.ok, delivery.error
        [mail] = server.mails
        assert (mail.tls, mail.login, mail.recipients) == (True, "alerts", ["a@example.com", "b@example.com"])

        monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
        [refused] = await _dispatcher().deliver(_notification(), [("mail", ChannelConfig(**options))])
        assert not refused.ok
        assert refused.error is not None
        assert "SMTPAuthenticationError" in refused.error

        untrusted = {**options, "ca_file": None}
        [unverified] = await _dispatcher().deliver(_notification(), [("mail", ChannelConfig(**untrusted))])
        assert not unverified.ok
        assert unverified.error is not None
        assert "CERTIFICATE_VERIFY_FAILED" in unverified.error

        monkeypatch.delenv("TEST_SMTP_PASSWORD")
        [missing] = await _dispatcher().deliver(_notification(), [("mail", ChannelConfig(**options))])
        assert missing.error == "the environment variable TEST_SMTP_PASSWORD (SMTP password) is not set"
    assert len(server.mails) == 1


async def test_an_unknown_channel_type_is_a_failed_delivery_not_an_exception() -> None:
    [delivery] = await _dispatcher().deliver(_notification(), [("x", ChannelConfig(type="pager"))])
    assert (delivery.ok, delivery.attempts) == (False, 0)
    assert delivery.error is not None
    assert "unknown alert channel type 'pager'" in delivery.error


def test_the_dedup_key_names_one_message_about_one_episode() -> None:
    firing, again = _notification(), _notification()
    assert firing.event_id == again.event_id == "e1"
    assert firing.dedup_key == again.dedup_key  # a second sending of the same firing
    resolved = _notification("resolved")
    assert resolved.dedup_key != firing.dedup_key
    later = replace(_notification("repeat"), at=AT + timedelta(hours=1))
    assert later.dedup_key.startswith("high-errors:firing:")
    assert later.dedup_key != firing.dedup_key
