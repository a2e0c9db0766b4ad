"""Options that `llmops keys` and `llmops teams` share: models, limits, budgets, metadata, expiry."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from llmops.limits.policy import InvalidLimits, Limits, parse_budget

ModelsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--models",
        "-m",
        help="Model names or glob patterns it may use, e.g. 'gpt-*' (repeat, or separate with commas).",
    ),
]
AllModelsOption = Annotated[bool, typer.Option("--all-models", help="Allow every model again.")]
RpmOption = Annotated[int | None, typer.Option("--rpm", min=1, help="Requests per minute (sliding window).")]
TpmOption = Annotated[int | None, typer.Option("--tpm", min=1, help="Tokens per minute (sliding window).")]
BudgetOption = Annotated[
    list[str] | None,
    typer.Option("--budget", "-b", help="USD per period: 10/day, 250/month or 1000/total (repeatable)."),
]
MetaOption = Annotated[
    list[str] | None, typer.Option("--meta", help="A label as key=value, e.g. owner=ana (repeatable).")
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def model_patterns(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def models_change(values: list[str] | None, all_models: bool) -> Any:
    """For an update: None (every model) with --all-models, the patterns given, or UNSET (no change)."""
    from llmops.teams.service import UNSET

    if all_models:
        return None
    return model_patterns(values) if values is not None else UNSET


def limits_from_options(rpm: int | None, tpm: int | None, budgets: list[str] | None) -> Limits:
    limits = Limits(rpm=rpm, tpm=tpm)
    for text in budgets or []:
        period, usd = parse_budget(text)
        limits = limits.with_budget(period, usd)
    return limits


def merged_limits(
    current: Limits, rpm: int | None, tpm: int | None, budgets: list[str] | None
) -> Limits | None:
    """For an update: the options given replace those fields of ``current``; None if none given."""
    if rpm is None and tpm is None and not budgets:
        return None
    fields: dict[str, Any] = current.to_json()
    if rpm is not None:
        fields["rpm"] = rpm
    if tpm is not None:
        fields["tpm"] = tpm
    for text in budgets or []:
        period, usd = parse_budget(text)
        fields[f"budget_{period}"] = usd
    return Limits.from_json(fields)


def metadata_from_options(values: list[str] | None) -> dict[str, str] | None:
    if not values:
        return None
    found: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name.strip():
            raise InvalidLimits(f"--meta {value!r}: expected key=value")
        found[name.strip()] = text
    return found


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """``30d``, ``12h``, ``2w`` from now, or an ISO 8601 date or date-time (UTC without an offset)."""
    now = now or datetime.now(UTC)
    matched = _DURATION.match(text)
    if matched:
        return now + timedelta(seconds=float(matched.group(1)) * _UNIT[matched.group(2)])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidLimits(
            f"--expires {text!r}: expected 30d, 12h, 2w or an ISO date such as 2027-01-31"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_seconds(text: str) -> float:
    """A duration such as ``1d``, ``12h`` or ``0s``."""
    matched = _DURATION.match(text)
    if not matched:
        raise InvalidLimits(f"{text!r}: expected a duration such as 1d, 12h, 30m or 0s")
    return float(matched.group(1)) * _UNIT[matched.group(2)]


def format_limits(rpm: int | None, tpm: int | None, budget: dict[str, float]) -> str:
    parts = [f"{rpm} rpm" if rpm else "", f"{tpm} tpm" if tpm else ""]
    parts += [f"${usd:g}/{period}" for period, usd in budget.items()]
    return ", ".join(part for part in parts if part) or "-"


def format_spend(spend: dict[str, float]) -> str:
    if not spend:
        return "-"
    return " / ".join(f"${spend.get(period, 0.0):.4f}" for period in ("day", "month", "total"))
