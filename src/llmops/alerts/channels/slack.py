"""A Slack-compatible incoming webhook: ``{"text": ..., "blocks": [...]}`` (Slack, Mattermost,
Rocket.Chat and others accept it): a header, the measured value against the threshold, the filters
and labels, and the summary."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from llmops.alerts.channels.base import Channel, ChannelOptions, Notification
from llmops.alerts.channels.webhook import URL, post_json

_EMOJI = {"firing": ":rotating_light:", "repeat": ":rotating_light:", "resolved": ":white_check_mark:"}


class SlackOptions(ChannelOptions):
    url: URL = Field(description="The incoming-webhook URL.")
    channel: str | None = Field(default=None, max_length=200, description="Override the webhook's channel.")
    timeout_seconds: float = Field(default=10.0, gt=0, le=120, description="Time for one attempt.")


def slack_payload(notification: Notification, channel: str | None = None) -> dict[str, Any]:
    emoji = _EMOJI.get(notification.status, ":bell:")
    fields = [
        f"*Value*\n{notification.value_text}",
        f"*Condition*\n{notification.statistic} {notification.comparison} {notification.threshold:g}"
        f" over {notification.window}",
        f"*Severity*\n{notification.severity}",
        f"*Since*\n{notification.active_since.isoformat() if notification.active_since else '-'}",
    ]
    scope = {**notification.filters, **notification.labels}
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": notification.title[:150]}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": text} for text in fields]},
    ]
    if notification.summary:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": notification.summary[:2900]}})
    if scope:
        context = "  ".join(f"`{name}={value}`" for name, value in sorted(scope.items()))
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context[:2900]}]})
    payload: dict[str, Any] = {"text": f"{emoji} {notification.text}", "blocks": blocks}
    if channel:
        payload["channel"] = channel
    return payload


class SlackChannel(Channel):
    kind: ClassVar[str] = "slack"
    Options: ClassVar[type[ChannelOptions]] = SlackOptions

    async def send(self, notification: Notification) -> None:
        options = self.options
        assert isinstance(options, SlackOptions)
        body = slack_payload(notification, options.channel)
        await post_json(options.url, body, {"User-Agent": "llmops-alerts"}, options.timeout_seconds)
