"""What ``alerts:`` in llmops.yaml (and ``/api/alerts``) declares: one rule per entry, and the named
channels of ``alert_channels:`` that rules send to.

A rule measures a statistic of the traffic (from the trace rollups) over a window, compares it with
a threshold, and fires when the comparison has held for ``for``; its notifications go to its
channels (names from ``alert_channels``, the built-in ``log``, or a channel written in place)::

    alert_channels:
      oncall: {type: slack, url: "https://hooks.slack.com/services/T000/B000/XXXX"}
      ops-mail: {type: smtp, host: smtp.example.com, port: 587, starttls: true, username: alerts,
                 password_env: SMTP_PASSWORD, sender: alerts@example.com, to: [ops@example.com]}
    alerts:
      - name: high-error-rate
        statistic: error_rate
        comparison: ">"
        threshold: 0.05
        window: 5m
        for: 2m
        min_requests: 20
        severity: critical
        filters: {model: gpt-4o}
        channels: [oncall, log]
        labels: {team: search}
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from llmops.guardrails.config import NAME_PATTERN
from llmops.storable import check_storable

Statistic = Literal[
    "error_rate",
    "p95_latency_ms",
    "p99_latency_ms",
    "ttft_p95_ms",
    "requests",
    "cost_per_hour",
    "thumbs_down_rate",
    "cache_hit_rate",
    "budget_use",
    "drift_score",
]
STATISTICS: tuple[str, ...] = (
    "error_rate",
    "p95_latency_ms",
    "p99_latency_ms",
    "ttft_p95_ms",
    "requests",
    "cost_per_hour",
    "thumbs_down_rate",
    "cache_hit_rate",
    "budget_use",
    "drift_score",
)
Comparison = Literal[">", ">=", "<", "<="]
Severity = Literal["info", "warning", "critical"]
DURATION_PATTERN = r"^[0-9]{1,7}[smhd]$"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(DURATION_PATTERN)
LABEL_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$"
CHANNEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
MAX_WINDOW_SECONDS = 86_400  # a day: the rollups answer it in minute or five-minute buckets
MAX_FOR_SECONDS = 7 * 86_400
TEXT = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN)]


def duration_seconds(text: str) -> int:
    """``30s``, ``5m``, ``2h``, ``1d`` -> seconds (ValueError otherwise)."""
    if not _DURATION.fullmatch(text):
        raise ValueError(f"expected a duration such as 30s, 5m, 2h or 1d, got {text!r}")
    return int(text[:-1]) * _UNITS[text[-1]]


def compare(value: float, comparison: str, threshold: float) -> bool:
    if comparison == ">":
        return value > threshold
    if comparison == ">=":
        return value >= threshold
    if comparison == "<":
        return value < threshold
    return value <= threshold


class AlertFilters(BaseModel):
    """Which traffic a rule measures: exact names (unset: all). ``key`` and ``team`` take an id or a
    name; ``budget_use`` needs one of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: TEXT | None = Field(default=None, description="The model as requested.")
    deployment: TEXT | None = Field(default=None, description="The deployment that answered.")
    key: TEXT | None = Field(default=None, description="An API key (id or name).")
    team: TEXT | None = Field(default=None, description="A team (id or name).")
    prompt: TEXT | None = Field(default=None, description="A prompt of the registry (name).")

    def given(self) -> dict[str, str]:
        return {name: value for name, value in self.model_dump().items() if value is not None}


class ChannelConfig(BaseModel):
    """A notification channel: ``type`` (webhook, slack, smtp, log, or a plugin's) and that type's own
    options beside it (see docs/monitoring.md), checked by the channel type when the rule is stored."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str = Field(min_length=1, max_length=100, pattern=CHANNEL_NAME_PATTERN, description="Channel type.")
    name: str | None = Field(
        default=None, max_length=100, pattern=CHANNEL_NAME_PATTERN, description="Shown in deliveries."
    )

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        check_storable(data, "channel")
        return data

    def options(self) -> dict[str, Any]:
        """The type's own options (everything but ``type`` and ``name``)."""
        return dict(self.model_extra or {})


class AlertRuleConfig(BaseModel):
    """One alert rule (validated when the settings load, or when the API receives it)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(pattern=NAME_PATTERN, description="Unique name; shown in notifications and history.")
    statistic: Statistic = Field(
        description="What is measured over the window: error_rate (errors / requests), p95_latency_ms, "
        "p99_latency_ms, ttft_p95_ms, requests, cost_per_hour (USD), thumbs_down_rate, cache_hit_rate, "
        "budget_use (spend / budget of the filtered key or team, the highest of its periods), or "
        "drift_score (the largest effect among the drift checks in drift, 0 when none, of the window "
        "against the reference, for the filtered model or prompt)."
    )
    comparison: Comparison = Field(default=">", description="How the value is compared with the threshold.")
    threshold: float = Field(
        ge=-1e15, le=1e15, allow_inf_nan=False, description="The value the statistic is compared with."
    )
    window: Duration = Field(
        default="5m",
        description="The span measured, ending now (1m to 1d); widened to whole minutes (five minutes "
        "when filtered by more than the model).",
    )
    for_: Duration = Field(
        default="0s",
        alias="for",
        description="How long the condition must hold before the alert fires (0s: at once).",
    )
    min_requests: int = Field(
        default=0,
        ge=0,
        le=1_000_000_000,
        description="Below this many requests in the window the rule is not judged (rates on few "
        "requests are noise).",
    )
    severity: Severity = "warning"
    filters: AlertFilters = Field(default_factory=AlertFilters)
    channels: tuple[Annotated[str, StringConstraints(pattern=CHANNEL_NAME_PATTERN)] | ChannelConfig, ...] = (
        Field(
            default=("log",),
            max_length=20,
            description="Where notifications go: names of alert_channels, 'log', or channels in place.",
        )
    )
    labels: dict[Annotated[str, StringConstraints(pattern=LABEL_PATTERN)], TEXT] = Field(
        default_factory=dict, max_length=50, description="Added to notifications; silences match them."
    )
    summary: str | None = Field(
        default=None, max_length=2000, pattern=r"^[^\x00]*$", description="A sentence for the humans paged."
    )
    repeat_interval: Duration | None = Field(
        default="4h", description="While firing, notify again this often (null: once per episode)."
    )
    reference: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[^\x00]*$",
        description="drift_score only: what the window is compared with, a window such as 7d..1d (the "
        "default) or a dataset version as dataset:NAME@VERSION.",
    )
    enabled: bool = Field(default=True, description="Off: kept, but not evaluated.")

    @model_validator(mode="after")
    def _consistent(self) -> AlertRuleConfig:
        if not 60 <= self.window_seconds <= MAX_WINDOW_SECONDS:
            raise ValueError("window: must be from 1m to 1d")
        if self.for_seconds > MAX_FOR_SECONDS:
            raise ValueError("for: must be at most 7d")
        if (
            self.repeat_interval is not None
            and not 60 <= duration_seconds(self.repeat_interval) <= 30 * 86400
        ):
            raise ValueError("repeat_interval: must be from 1m to 30d")
        if self.statistic == "budget_use" and not (self.filters.key or self.filters.team):
            raise ValueError("budget_use needs a key or a team filter (whose budget is used)")
        if self.statistic == "drift_score" and set(self.filters.given()) - {"model", "prompt"}:
            raise ValueError("drift_score filters by model or prompt only")
        if self.reference is not None and self.statistic != "drift_score":
            raise ValueError("reference: only drift_score has a reference")
        names = [channel.name for channel in self.channels if isinstance(channel, ChannelConfig)]
        names += [channel for channel in self.channels if isinstance(channel, str)]
        if len([name for name in names if name]) != len({name for name in names if name}):
            raise ValueError("channels: a channel is named twice")
        return self

    @property
    def window_seconds(self) -> int:
        return duration_seconds(self.window)

    @property
    def for_seconds(self) -> int:
        return duration_seconds(self.for_)

    @property
    def repeat_seconds(self) -> int | None:
        return None if self.repeat_interval is None else duration_seconds(self.repeat_interval)

    def condition(self) -> str:
        """``error_rate > 0.05 over 5m``: the rule in words."""
        return f"{self.statistic} {self.comparison} {self.threshold:g} over {self.window}"

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)
