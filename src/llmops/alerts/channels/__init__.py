"""Alert notification channels: a generic JSON webhook, a Slack-compatible webhook, e-mail over SMTP
and the log, each one :class:`Channel` found by name in the :class:`ChannelRegistry`."""

from llmops.alerts.channels.base import Channel, ChannelError, ChannelOptions, InvalidChannel, Notification
from llmops.alerts.channels.registry import ChannelRegistry

__all__ = ["Channel", "ChannelError", "ChannelOptions", "ChannelRegistry", "InvalidChannel", "Notification"]
