"""The loss curves of a fine-tuning run as an inline SVG, written as text like the evaluation plots
(:mod:`llmops.evals.plots`): no plotting library, opens offline, well-formed XML.

Training loss is a line over the steps; validation loss, measured every few steps, is a second line
with a dot per measurement (hover shows the value).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

from llmops.evals.plots import nice_ticks

__all__ = ["loss_curve_svg"]

WIDTH = 560
HEIGHT = 300
LEFT = 52  # room for the loss ticks
RIGHT = 16
TOP = 30
BOTTOM = 40  # room for the step ticks and label
TRAIN_COLOUR = "#4c72b0"
VALIDATION_COLOUR = "#dd8452"

Point = tuple[float, float]
_Map = Callable[[float], float]  # a value to its pixel coordinate


def loss_curve_svg(curves: list[dict[str, float]], title: str) -> str:
    """Train loss (line) and validation loss (line with dots) against the step."""
    train = _points(curves, "train_loss")
    validation = _points(curves, "val_loss")
    steps = [step for step, _ in train + validation] or [0.0, 1.0]
    losses = [loss for _, loss in train + validation] or [0.0, 1.0]
    x_low, x_high = _span(min(steps), max(steps))
    y_low, y_high = _span(min(losses), max(losses))
    y_low = max(0.0, y_low) if min(losses) >= 0 else y_low

    def x(step: float) -> float:
        return LEFT + (step - x_low) / (x_high - x_low) * (WIDTH - LEFT - RIGHT)

    def y(loss: float) -> float:
        return HEIGHT - BOTTOM - (loss - y_low) / (y_high - y_low) * (HEIGHT - TOP - BOTTOM)

    parts = [f'<text x="{LEFT}" y="18" font-weight="bold">{escape(title)}</text>']
    parts += _axes(x, y, (x_low, x_high), (y_low, y_high))
    parts += _line(train, x, y, TRAIN_COLOUR, "train loss")
    parts += _line(validation, x, y, VALIDATION_COLOUR, "validation loss", dots=True)
    parts += _legend(bool(train), bool(validation))
    if not train and not validation:
        parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle">no steps yet</text>')
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>" + "".join(parts) + "</svg>"
    )


def _points(curves: Sequence[dict[str, float]], key: str) -> list[Point]:
    points = []
    for row in curves:
        value, step = row.get(key), row.get("step")
        if value is not None and step is not None and math.isfinite(value):
            points.append((float(step), float(value)))
    return points


def _span(low: float, high: float) -> tuple[float, float]:
    if high - low < 1e-12:
        pad = max(abs(low) * 0.1, 0.5)
        return low - pad, high + pad
    return low, high


def _axes(x: _Map, y: _Map, x_range: tuple[float, float], y_range: tuple[float, float]) -> list[str]:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    parts = [
        f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#444"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#444"/>',
    ]
    for tick in nice_ticks(*x_range):
        at = x(tick)
        parts.append(f'<line x1="{at:.1f}" y1="{bottom}" x2="{at:.1f}" y2="{bottom + 4}" stroke="#444"/>')
        parts.append(f'<text x="{at:.1f}" y="{bottom + 15}" text-anchor="middle">{tick:g}</text>')
    for tick in nice_ticks(*y_range):
        at = y(tick)
        parts.append(f'<line x1="{LEFT}" y1="{at:.1f}" x2="{right}" y2="{at:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{at + 4:.1f}" text-anchor="end">{tick:g}</text>')
    parts.append(f'<text x="{(LEFT + right) / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle">step</text>')
    parts.append(
        f'<text x="12" y="{(TOP + bottom) / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {(TOP + bottom) / 2:.0f})">loss</text>'
    )
    return parts


def _line(points: list[Point], x: _Map, y: _Map, colour: str, label: str, *, dots: bool = False) -> list[str]:
    if not points:
        return []
    path = " ".join(f"{x(step):.1f},{y(loss):.1f}" for step, loss in points)
    parts = [f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>']
    if dots or len(points) == 1:
        parts += [
            f'<circle cx="{x(step):.1f}" cy="{y(loss):.1f}" r="3" fill="{colour}">'
            f"<title>{escape(label)} at step {step:g}: {loss:.4f}</title></circle>"
            for step, loss in points
        ]
    return parts


def _legend(train: bool, validation: bool) -> list[str]:
    entries = [(TRAIN_COLOUR, "train loss")] * train + [(VALIDATION_COLOUR, "validation loss")] * validation
    parts = []
    for index, (colour, label) in enumerate(entries):
        left = WIDTH - RIGHT - 220 + index * 110
        parts.append(f'<rect x="{left}" y="10" width="12" height="3" fill="{colour}"/>')
        parts.append(f'<text x="{left + 16}" y="15">{label}</text>')
    return parts
