"""Keeping channel secrets out of what is shown: webhook and Slack URLs carry their credential in the
path, headers carry tokens. Stored rules keep the full values; listings (``/api/alerts``, ``llmops alerts
list --json``), the audit log and delivery errors show ``scheme://host/***`` and ``***`` instead.

A rule read from a listing and sent back (``PUT /api/alerts/{name}``) still holds the masks:
:func:`restore_masked` puts the stored values back where a mask stands unchanged, and
:func:`masked_option` finds a mask left where nothing can be restored (refused: it would break the
channel silently).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from llmops.alerts.config import AlertRuleConfig, ChannelConfig

MASK = "***"
_SECRET_NAME = re.compile(r"(?i)(password|secret|token|api_?key|routing_?key|auth)")
_URL_IN_TEXT = re.compile(r"(https?://)(?:[^@/\s'\"]*@)?([^/\s'\"?#]+)[^\s'\"]*")


def mask_url(url: str) -> str:
    """``https://hooks.slack.com/services/T0/B0/XXX`` -> ``https://hooks.slack.com/***``."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:  # a port that is not a number: show nothing of it
        return MASK
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{f':{port}' if port else ''}/{MASK}"


def redact_text(text: str) -> str:
    """Every URL in a message (an error a channel raised) cut to its scheme and host."""
    return _URL_IN_TEXT.sub(lambda found: f"{found[1]}{found[2]}/{MASK}", text)


def _is_url_option(name: str) -> bool:
    return name == "url" or name.endswith("_url")


def _redact_value(name: str, value: Any) -> Any:
    if isinstance(value, str) and _is_url_option(name):
        return mask_url(value)
    if name == "headers" and isinstance(value, Mapping):
        return {header: MASK for header in value}
    if isinstance(value, str) and not name.endswith("_env") and _SECRET_NAME.search(name):
        return MASK
    return value


def redact_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A channel's options as they may be shown (its ``type`` and ``name`` pass unchanged)."""
    return {name: _redact_value(name, value) for name, value in options.items()}


def redact_rule_json(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A rule's JSON (:meth:`AlertRuleConfig.as_json`) with the secrets of its in-place channels masked."""
    channels = [
        redact_options(channel) if isinstance(channel, Mapping) else channel
        for channel in rule.get("channels") or ()
    ]
    return {**rule, "channels": channels}


def restore_masked(new: AlertRuleConfig, stored: AlertRuleConfig) -> AlertRuleConfig:
    """``new`` with the stored secret put back wherever it holds the stored value's mask unchanged (the
    in-place channel of the same name, else of the same position and type)."""
    named = {c.name: c for c in stored.channels if isinstance(c, ChannelConfig) and c.name}
    channels: list[str | ChannelConfig] = []
    for position, channel in enumerate(new.channels):
        if not isinstance(channel, ChannelConfig):
            channels.append(channel)
            continue
        before = named.get(channel.name or "")
        if before is None and position < len(stored.channels):
            candidate = stored.channels[position]
            if isinstance(candidate, ChannelConfig) and candidate.type == channel.type:
                before = candidate
        if before is None or before.type != channel.type:
            channels.append(channel)
            continue
        options = _restored(channel.options(), before.options())
        channels.append(ChannelConfig(type=channel.type, name=channel.name, **options))
    return new.model_copy(update={"channels": tuple(channels)})


def _restored(options: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    restored = dict(options)
    for name, value in options.items():
        if name not in stored:
            continue
        old = stored[name]
        if name == "headers" and isinstance(value, Mapping) and isinstance(old, Mapping):
            restored[name] = {
                header: old[header] if text == MASK and header in old else text
                for header, text in value.items()
            }
        elif value != old and value == _redact_value(name, old):
            restored[name] = old
    return restored


def masked_option(rule: AlertRuleConfig) -> str | None:
    """Where a mask stands in place of a secret (``channels.0.url``), if anywhere."""
    for position, channel in enumerate(rule.channels):
        if not isinstance(channel, ChannelConfig):
            continue
        for name, value in channel.options().items():
            values = value.values() if isinstance(value, Mapping) else (value,)
            for text in values:
                if isinstance(text, str) and (text == MASK or text.endswith(f"/{MASK}")):
                    return f"channels.{position}.{name}"
    return None
