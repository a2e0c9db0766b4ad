"""The loss-curve SVG: well-formed XML with a train line, validation points, ticks and an escaped title."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from llmops.training.curves import loss_curve_svg

SVG = "{http://www.w3.org/2000/svg}"


def _curves() -> list[dict[str, float]]:
    points: list[dict[str, float]] = []
    for step in range(1, 21):
        point = {
            "step": float(step),
            "train_loss": 3.0 / step + 0.5,
            "learning_rate": 2e-4,
            "tokens_per_second": 900.0,
        }
        if step % 5 == 0:
            point["val_loss"] = 3.2 / step + 0.6
        points.append(point)
    return points


def test_train_loss_is_one_line_and_validation_loss_a_line_with_a_dot_per_measurement() -> None:
    root = ET.fromstring(loss_curve_svg(_curves(), "LoRA <smollm2> & data"))
    assert root.tag == f"{SVG}svg"
    assert root.find(f"{SVG}title").text == "LoRA <smollm2> & data"
    lines = root.findall(f"{SVG}polyline")
    assert len(lines) == 2
    assert [len(line.get("points", "").split()) for line in lines] == [20, 4]
    dots = root.findall(f"{SVG}circle")
    assert [dot.find(f"{SVG}title").text for dot in dots][-1] == "validation loss at step 20: 0.7600"
    assert len(dots) == 4


def test_axes_carry_round_ticks_and_labels() -> None:
    root = ET.fromstring(loss_curve_svg(_curves(), "run"))
    texts = [element.text for element in root.iter(f"{SVG}text")]
    assert {"step", "loss", "train loss", "validation loss"} <= set(texts)
    assert {"5", "10", "15", "20"} <= set(texts)  # step ticks
    assert "1" in texts or "1.5" in texts  # loss ticks between 0.66 and 3.5


def test_the_train_line_falls_as_the_loss_falls() -> None:
    root = ET.fromstring(loss_curve_svg(_curves(), "run"))
    train = root.findall(f"{SVG}polyline")[0].get("points", "").split()
    ys = [float(point.split(",")[1]) for point in train]
    assert ys == sorted(ys)  # lower loss is further down the y axis, i.e. a larger y pixel


def test_no_points_and_one_point_still_draw_a_well_formed_plot() -> None:
    empty = ET.fromstring(loss_curve_svg([], "nothing yet"))
    assert "no steps yet" in [element.text for element in empty.iter(f"{SVG}text")]
    single = ET.fromstring(loss_curve_svg([{"step": 1.0, "train_loss": 2.0}], "one step"))
    assert len(single.findall(f"{SVG}circle")) == 1
    assert len(single.findall(f"{SVG}polyline")) == 1
