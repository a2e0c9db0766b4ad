"""Inline SVG plots of a drift report, written as text (no plotting library, no script, no fonts to
fetch), so that the HTML report opens anywhere offline and stays well-formed XML.

- :func:`cdf_plot`: the two empirical CDFs of a length, from their quantiles, on a log scale, with the
  largest gap (the KS statistic) marked;
- :func:`share_plot`: paired horizontal bars of category shares (languages);
- :func:`rate_plot`: paired bars of rates with their Wilson intervals;
- :func:`scatter_plot`: the prompts' embeddings on their first two principal axes, reference grey,
  current blue, novel current prompts red.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape
from typing import Any

from llmops.evals.plots import nice_ticks

__all__ = ["cdf_plot", "rate_plot", "scatter_plot", "share_plot"]

WIDTH = 520
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 30, 34
REFERENCE, CURRENT, NOVEL = "#8c8c8c", "#4c72b0", "#c44e52"


def _svg(height: float, title: str, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" role="img" font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>" + "".join(parts) + "</svg>"
    )


def _legend(y: float, entries: Sequence[tuple[str, str]]) -> list[str]:
    parts, x = [], float(LEFT)
    for label, colour in entries:
        parts.append(f'<rect x="{x:.0f}" y="{y - 9:.0f}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14:.0f}" y="{y:.0f}">{escape(label)}</text>')
        x += 22 + 7 * len(label)
    return parts


def _log_ticks(low: float, high: float) -> list[float]:
    ticks = []
    power = 10 ** math.floor(math.log10(max(low, 1.0)))
    while power <= high * 10:
        for factor in (1, 2, 5):
            value = power * factor
            if low <= value <= high:
                ticks.append(float(value))
        power *= 10
    return ticks


def cdf_plot(title: str, quantiles: dict[str, Any], gap_at: float | None) -> str:
    """Both CDFs from ``{"p": [...], "reference": [...], "current": [...]}`` (values ascending)."""
    probabilities = quantiles["p"]
    values = [*quantiles["reference"], *quantiles["current"]]
    low, high = max(1.0, min(values) + 1.0), max(values) + 1.0
    if high / low < 1.5:
        low, high = low / 1.5, high * 1.5

    def x(value: float) -> float:
        share = (math.log(value + 1.0) - math.log(low)) / (math.log(high) - math.log(low))
        return LEFT + max(0.0, min(1.0, share)) * (WIDTH - LEFT - RIGHT)

    plot = 160
    base = TOP + plot

    def y(p: float) -> float:
        return base - p * plot

    parts = [f'<text x="{LEFT}" y="16" font-weight="bold">{escape(title)}</text>']
    for p in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{LEFT}" y1="{y(p):.1f}" x2="{WIDTH - RIGHT}" y2="{y(p):.1f}" stroke="#eee"/>'
        )
        parts.append(f'<text x="{LEFT - 6}" y="{y(p) + 4:.1f}" text-anchor="end">{p:g}</text>')
    for side, colour in (("reference", REFERENCE), ("current", CURRENT)):
        points = " ".join(
            f"{x(value):.1f},{y(p):.1f}" for value, p in zip(quantiles[side], probabilities, strict=True)
        )
        parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
    if gap_at is not None:
        parts.append(
            f'<line x1="{x(gap_at):.1f}" y1="{TOP}" x2="{x(gap_at):.1f}" y2="{base}" '
            f'stroke="{NOVEL}" stroke-dasharray="4 3"><title>largest gap at {gap_at:g}</title></line>'
        )
    parts.append(f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="#444"/>')
    for tick in _log_ticks(max(1.0, low - 1.0), high - 1.0):
        parts.append(f'<text x="{x(tick):.1f}" y="{base + 14}" text-anchor="middle">{tick:g}</text>')
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{base + 28}" text-anchor="end">characters (log scale)</text>')
    parts += _legend(base + 28, (("reference", REFERENCE), ("current", CURRENT)))
    return _svg(base + BOTTOM, title, parts)


def share_plot(title: str, shares: Sequence[dict[str, Any]], label: str, most: int = 10) -> str:
    """Paired bars per category, ``[{label: name, "reference": share, "current": share}, ...]``."""
    rows = list(shares[:most])
    row_height, left = 26, 90
    top = TOP
    height = top + row_height * len(rows) + BOTTOM
    top_share = max([0.01, *(max(r["reference"] or 0, r["current"] or 0) for r in rows)])
    scale = (WIDTH - left - RIGHT - 40) / top_share
    parts = [f'<text x="{LEFT}" y="16" font-weight="bold">{escape(title)}</text>']
    for index, row in enumerate(rows):
        y = top + index * row_height
        parts.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end">{escape(str(row[label]))}</text>')
        for offset, side, colour in ((2, "reference", REFERENCE), (12, "current", CURRENT)):
            share = row[side] or 0.0
            parts.append(
                f'<rect x="{left}" y="{y + offset}" width="{max(share * scale, 0.5):.1f}" height="9" '
                f'fill="{colour}"><title>{side}: {share:.1%}</title></rect>'
            )
            parts.append(f'<text x="{left + share * scale + 4:.1f}" y="{y + offset + 8}">{share:.0%}</text>')
    parts += _legend(height - 10, (("reference", REFERENCE), ("current", CURRENT)))
    return _svg(height, title, parts)


def rate_plot(title: str, reference: dict[str, Any], current: dict[str, Any]) -> str:
    """Two bars (reference, current) with their intervals, ``{"rate", "interval": [low, high]}``."""
    plot, bar = 120, 70
    base = TOP + plot
    top_rate = max(0.01, reference["interval"][1] or 0.0, current["interval"][1] or 0.0)
    ticks = nice_ticks(0.0, top_rate, 4)
    top_rate = max(top_rate, ticks[-1])

    def y(rate: float) -> float:
        return base - rate / top_rate * plot

    parts = [f'<text x="{LEFT}" y="16" font-weight="bold">{escape(title)}</text>']
    for tick in ticks:
        parts.append(
            f'<line x1="{LEFT}" y1="{y(tick):.1f}" x2="{WIDTH - RIGHT}" y2="{y(tick):.1f}" stroke="#eee"/>'
        )
        parts.append(f'<text x="{LEFT - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.1%}</text>')
    for index, (side, data, colour) in enumerate(
        (("reference", reference, REFERENCE), ("current", current, CURRENT))
    ):
        x = LEFT + 60 + index * (bar + 60)
        rate = data["rate"] or 0.0
        parts.append(
            f'<rect x="{x}" y="{y(rate):.1f}" width="{bar}" height="{base - y(rate):.1f}" fill="{colour}">'
            f"<title>{side}: {data['count']}/{data['n']}</title></rect>"
        )
        low, high = data["interval"]
        centre = x + bar / 2
        parts.append(
            f'<line x1="{centre}" y1="{y(low or 0.0):.1f}" x2="{centre}" y2="{y(high or 0.0):.1f}" '
            'stroke="#111" stroke-width="1.5"/>'
        )
        parts.append(f'<text x="{centre}" y="{base + 14}" text-anchor="middle">{side} {rate:.1%}</text>')
    parts.append(f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="#444"/>')
    return _svg(base + BOTTOM, title, parts)


def scatter_plot(title: str, projection: dict[str, list[list[float]]], highlight: Sequence[int] = ()) -> str:
    """Reference and current points on the principal axes; current points in ``highlight`` in red."""
    points = [*projection["reference"], *projection["current"]]
    size = 300
    height = TOP + size + BOTTOM
    if not points:
        return _svg(height, title, [f'<text x="{LEFT}" y="16">{escape(title)}: no points</text>'])
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1e-9)
    cx, cy = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    left = (WIDTH - size) / 2

    def at(point: list[float]) -> tuple[float, float]:
        return (
            left + size / 2 + (point[0] - cx) / span * size * 0.95,
            TOP + size / 2 - (point[1] - cy) / span * size * 0.95,
        )

    parts = [f'<text x="{LEFT}" y="16" font-weight="bold">{escape(title)}</text>']
    parts.append(f'<rect x="{left}" y="{TOP}" width="{size}" height="{size}" fill="none" stroke="#ddd"/>')
    for point in projection["reference"]:
        px, py = at(point)
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.2" fill="{REFERENCE}" fill-opacity="0.55"/>')
    marked = set(highlight)
    for index, point in enumerate(projection["current"]):
        px, py = at(point)
        colour = NOVEL if index in marked else CURRENT
        parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.2" fill="{colour}" fill-opacity="0.7"/>')
    entries = [("reference", REFERENCE), ("current", CURRENT)]
    if marked:
        entries.append(("current, far from every reference prompt", NOVEL))
    parts += _legend(height - 10, entries)
    return _svg(height, title, parts)
