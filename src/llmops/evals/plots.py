"""Inline SVG plots for comparison reports, written as text: no plotting library, no script, no fonts
to fetch, so an HTML report opens anywhere, offline, and stays well-formed XML.

Two plots: :func:`distribution_plot` (each run's scores as a histogram, all on one scale, with the
mean and its interval marked) and :func:`difference_plot` (the per-item paired differences as a
histogram, with 0, the mean difference and its interval marked).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from llmops.stats import Interval

__all__ = ["difference_plot", "distribution_plot", "histogram", "nice_ticks"]

WIDTH = 560
LEFT = 110  # room for run labels
RIGHT = 16
TOP = 24
AXIS = 28  # room for the x axis below the plot
ROW = 64  # height of one run's histogram
BINS = 20
PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")

Series = tuple[str, Sequence[float], float | None, Interval | None]  # label, values, mean, mean's interval


@dataclass(frozen=True)
class _Scale:
    """Maps values in [low, high] to x pixels in [left, right]."""

    low: float
    high: float
    left: float
    right: float

    def x(self, value: float) -> float:
        share = (value - self.low) / (self.high - self.low)
        return self.left + share * (self.right - self.left)


def _range(values: Sequence[float], *anchors: float) -> tuple[float, float]:
    """The span of the values and anchors, widened when it is a single point so that it has a width."""
    points = [*values, *anchors]
    low, high = (min(points), max(points)) if points else (0.0, 1.0)
    if high - low < 1e-12:
        pad = max(abs(low) * 0.1, 0.5)
        low, high = low - pad, high + pad
    return low, high


def histogram(values: Sequence[float], low: float, high: float, bins: int = BINS) -> list[int]:
    """Counts of ``values`` in ``bins`` equal bins over [low, high]; the last bin includes ``high``."""
    counts = [0] * bins
    width = (high - low) / bins
    for value in values:
        index = min(bins - 1, max(0, int((value - low) / width)))
        counts[index] += 1
    return counts


def nice_ticks(low: float, high: float, most: int = 6) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) inside [low, high]."""
    raw = (high - low) / max(1, most - 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(power * factor for factor in (1, 2, 5, 10) if power * factor >= raw)
    first = math.ceil(low / step - 1e-9) * step
    count = int(math.floor((high - first) / step + 1e-9)) + 1
    return [round(first + index * step, 12) for index in range(count)]


def _svg(height: float, title: str, parts: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" role="img" font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>" + "".join(parts) + "</svg>"
    )


def _axis(scale: _Scale, y: float) -> list[str]:
    parts = [f'<line x1="{scale.left}" y1="{y}" x2="{scale.right}" y2="{y}" stroke="#444"/>']
    for tick in nice_ticks(scale.low, scale.high):
        x = scale.x(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#444"/>')
        parts.append(f'<text x="{x:.1f}" y="{y + 15}" text-anchor="middle">{tick:g}</text>')
    return parts


def _bars(counts: Sequence[int], scale: _Scale, base: float, height: float, colour: str) -> list[str]:
    tallest = max(counts) or 1
    width = (scale.right - scale.left) / len(counts)
    parts = []
    for index, count in enumerate(counts):
        if count:
            bar = height * count / tallest
            x = scale.left + index * width
            parts.append(
                f'<rect x="{x:.1f}" y="{base - bar:.1f}" width="{max(width - 1, 0.5):.1f}" '
                f'height="{bar:.1f}" fill="{colour}" fill-opacity="0.75"><title>{count}</title></rect>'
            )
    return parts


def _band(interval: Interval | None, scale: _Scale, top: float, height: float, colour: str) -> list[str]:
    if interval is None:
        return []
    left, right = scale.x(interval.low), scale.x(interval.high)
    return [
        f'<rect x="{left:.1f}" y="{top:.1f}" width="{max(right - left, 1.0):.1f}" height="{height:.1f}" '
        f'fill="{colour}" fill-opacity="0.2">'
        f"<title>interval {interval.low:.4g} to {interval.high:.4g}</title></rect>"
    ]


def _vline(value: float | None, scale: _Scale, top: float, bottom: float, style: str) -> list[str]:
    if value is None:
        return []
    x = scale.x(value)
    return [f'<line x1="{x:.1f}" y1="{top:.1f}" x2="{x:.1f}" y2="{bottom:.1f}" {style}/>']


def distribution_plot(metric: str, series: Sequence[Series]) -> str:
    """One histogram per run, stacked, sharing the x scale; each run's mean is a line and its
    interval a shaded band."""
    low, high = _range([value for _, values, _, _ in series for value in values])
    scale = _Scale(low, high, LEFT, WIDTH - RIGHT)
    height = TOP + ROW * len(series) + AXIS
    parts = [f'<text x="{LEFT}" y="15" font-weight="bold">{escape(metric)}: score distribution</text>']
    for index, (label, values, mean, interval) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        top, base = TOP + ROW * index + 4, TOP + ROW * (index + 1)
        parts += _bars(histogram(values, low, high), scale, base, base - top - 4, colour)
        parts += _band(interval, scale, top, base - top, "#111")
        parts += _vline(mean, scale, top, base, 'stroke="#111" stroke-width="2"')
        short = label if len(label) <= 16 else label[:15] + "…"
        parts.append(
            f'<text x="{LEFT - 6}" y="{base - ROW / 2 + 4:.0f}" text-anchor="end">{escape(short)}</text>'
        )
        parts.append(f'<line x1="{LEFT}" y1="{base}" x2="{WIDTH - RIGHT}" y2="{base}" stroke="#ddd"/>')
    parts += _axis(scale, TOP + ROW * len(series))
    return _svg(height, f"{metric}: score distribution per run", parts)


def difference_plot(
    metric: str, label: str, differences: Sequence[float], mean: float | None, interval: Interval | None
) -> str:
    """The histogram of per-item differences (positive: the candidate did better), with 0 dashed,
    the mean difference as a line and its interval as a shaded band."""
    anchors = [0.0, *(() if interval is None else (interval.low, interval.high))]
    low, high = _range(differences, *anchors)
    scale = _Scale(low, high, LEFT, WIDTH - RIGHT)
    plot = ROW * 2
    base = TOP + plot
    parts = [
        f'<text x="{LEFT}" y="15" font-weight="bold">{escape(metric)}: {escape(label)} vs baseline, '
        "per item (right of 0: better)</text>",
    ]
    parts += _bars(histogram(differences, low, high, BINS + 5), scale, base, plot - 4, PALETTE[0])
    parts += _band(interval, scale, TOP, plot, "#c44e52")
    parts += _vline(0.0, scale, TOP, base, 'stroke="#888" stroke-dasharray="4 3"')
    parts += _vline(mean, scale, TOP, base, 'stroke="#c44e52" stroke-width="2"')
    parts += _axis(scale, base)
    return _svg(base + AXIS, f"{metric}: paired differences, {label} vs baseline", parts)
