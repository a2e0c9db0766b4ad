"""The alert tables (migration 0011), on the shared metadata of :mod:`llmops.store.tables`.

``alert_rule``: rules added through the admin API (a rule's whole configuration as JSON; ``revision``
grows with every change). ``alert_state``: where each rule stands (ok, pending, firing, resolved), so
that a new leader carries on where the last one stopped and every replica can show it.
``alert_event``: the history (firing, resolved, repeated and test notifications, with what each
channel answered). ``alert_silence``: silences with an end time. ``alert_lease``: one row per
elected role, held by the replica that evaluates the rules.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, Index, Integer, String, Table, Text

from llmops.store.tables import JsonValue, UtcDateTime, metadata

alert_rules = Table(
    "alert_rule",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("config", JsonValue, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

alert_states = Table(
    "alert_state",
    metadata,
    Column("rule", String(100), primary_key=True),
    Column("state", String(10), nullable=False),
    Column("since", UtcDateTime(), nullable=False),  # when the rule entered this state
    Column("active_at", UtcDateTime(), nullable=True),  # when the condition began to hold (pending, firing)
    Column("value", Float, nullable=True),
    Column("evaluated_at", UtcDateTime(), nullable=False),
    Column("notified_at", UtcDateTime(), nullable=True),  # last firing notification sent in this episode
    Column("silence_id", String(40), nullable=True),  # the silence that held back this episode's firing
)

alert_events = Table(
    "alert_event",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("rule", String(100), nullable=False),
    Column("kind", String(10), nullable=False),  # firing, resolved, repeat, test
    Column("at", UtcDateTime(), nullable=False),
    Column("severity", String(10), nullable=False),
    Column("value", Float, nullable=True),
    Column("threshold", Float, nullable=True),
    Column("condition", String(300), nullable=False),
    Column("labels", JsonValue, nullable=True),
    Column("silence_id", String(40), nullable=True),  # recorded, not sent: this silence matched
    Column("sent", Boolean, nullable=False),  # delivered to at least one channel
    Column("deliveries", JsonValue, nullable=True),  # per channel: ok, attempts, error
    Column("message", Text, nullable=False),
    Index("ix_alert_event_rule_at", "rule", "at"),
)

alert_silences = Table(
    "alert_silence",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("rule", String(200), nullable=False),  # a glob of rule names
    Column("labels", JsonValue, nullable=True),  # every label given must equal the rule's
    Column("starts_at", UtcDateTime(), nullable=False),
    Column("ends_at", UtcDateTime(), nullable=False),
    Column("comment", Text, nullable=True),
    Column("created_by", String(200), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_alert_silence_ends_at", "ends_at"),
)

alert_leases = Table(
    "alert_lease",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("holder", String(200), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("acquired_at", UtcDateTime(), nullable=False),
)
