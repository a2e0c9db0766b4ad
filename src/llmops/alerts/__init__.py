"""Alerts: rules over the traffic's statistics (error rate, latency percentiles, cost per hour,
thumbs-down rate, budget use, ...), evaluated in the background by one elected replica, with
notifications to webhooks, Slack, e-mail and the log, silences and a history.

Importing this package imports the rule model and the channel base only; the service
(:mod:`llmops.alerts.service`), the evaluator (:mod:`llmops.alerts.evaluator`) and the leader election
(:mod:`llmops.alerts.leader`) are imported where they are built.
"""

from llmops.alerts.channels.base import Channel, ChannelError, ChannelOptions, InvalidChannel, Notification
from llmops.alerts.channels.registry import ChannelRegistry
from llmops.alerts.config import STATISTICS, AlertFilters, AlertRuleConfig, ChannelConfig

__all__ = [
    "STATISTICS",
    "AlertFilters",
    "AlertRuleConfig",
    "Channel",
    "ChannelConfig",
    "ChannelError",
    "ChannelOptions",
    "ChannelRegistry",
    "InvalidChannel",
    "Notification",
]
