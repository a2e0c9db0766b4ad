"""Rich rendering of a :class:`~llmops.datasets.profile.DatasetProfile` for ``llmops datasets profile``."""

from __future__ import annotations

from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from llmops.datasets.profile import DatasetProfile, Distribution

BAR_WIDTH = 40
_BLOCKS = " ▏▎▍▌▋▊▉█"


def render_profile(profile: DatasetProfile) -> list[RenderableType]:
    """The profile as tables (summary, fields, lengths, languages, PII) and a length histogram."""
    parts: list[RenderableType] = [_summary(profile), _fields(profile)]
    if profile.chars is not None and profile.words is not None:
        parts.append(_lengths(profile.chars, profile.words))
        parts.append(_histogram(profile.words, "words per row"))
    if profile.languages is not None:
        parts.append(_shares("language", profile.languages, "language mix", profile))
    if profile.pii is not None:
        parts.append(_shares("entity", profile.pii, "rows with PII", profile))
    parts.extend(Text(f"note: {note}", style="yellow") for note in profile.notes)
    return parts


def _percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def _summary(profile: DatasetProfile) -> Table:
    table = Table("measure", "value", title="dataset", show_header=False)
    table.add_row("rows", f"{profile.rows:,}")
    table.add_row("text fields", ", ".join(profile.text_fields))
    table.add_row(
        "exact duplicates", f"{profile.exact_duplicates:,} ({_percent(profile.exact_duplicate_rate)})"
    )
    near = profile.near_duplicates
    if near is not None:
        table.add_row(
            "near-duplicates",
            f"{near.duplicates:,} ({_percent(near.rate)}) in {near.clusters:,} "
            f"{'cluster' if near.clusters == 1 else 'clusters'} "
            f"(Jaccard >= {near.threshold}, {near.shingle}-word shingles)",
        )
    if profile.pii_rows is not None:
        table.add_row("rows with PII", _percent(profile.pii_rows))
    if profile.sampled:
        table.add_row(
            "estimates from", f"a sample of {profile.analysed_rows:,} rows (languages, near-dups, PII)"
        )
    return table


def _fields(profile: DatasetProfile) -> Table:
    table = Table("field", "rows", "coverage", "types", title="fields")
    for item in profile.fields:
        types = ", ".join(f"{name} {count:,}" for name, count in item.types.items())
        table.add_row(item.name, f"{item.rows:,}", _percent(item.share), types)
    return table


def _lengths(chars: Distribution, words: Distribution) -> Table:
    columns = ("min", "p5", "p25", "median", "p75", "p95", "max", "mean")
    table = Table("unit", *columns, title="text length")
    for label, stats in (("chars", chars), ("words", words)):
        table.add_row(label, *(f"{getattr(stats, column):,.0f}" for column in columns))
    return table


def _histogram(distribution: Distribution, title: str) -> Table:
    table = Table("range", "rows", "", title=title, box=None)
    peak = max((bucket.count for bucket in distribution.histogram), default=0) or 1
    for bucket in distribution.histogram:
        label = f"> {bucket.low:,.0f}" if bucket.open_ended else f"{bucket.low:,.0f} - {bucket.high:,.0f}"
        table.add_row(label, f"{bucket.count:,}", bar(bucket.count / peak))
    return table


def bar(fraction: float, width: int = BAR_WIDTH) -> str:
    """A horizontal bar of block characters, eighths of a cell precise."""
    eighths = round(max(0.0, min(fraction, 1.0)) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (_BLOCKS[rest] if rest else "")


def _shares(label: str, shares: dict[str, float], title: str, profile: DatasetProfile) -> Table:
    suffix = f" (sample of {profile.analysed_rows:,})" if profile.sampled else ""
    table = Table(label, "share", "", title=title + suffix)
    for name, share in shares.items():
        table.add_row(name, _percent(share), bar(share, 20))
    return table
