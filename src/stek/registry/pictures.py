"""Pictures of a validation: people would rather look than read.

Charts use matplotlib's Agg backend (no display in a function); boxes are drawn with Pillow.
"""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageDraw

from stek.datasets.manifest import Box
from stek.metrics import ScoredBox

TRUTH_COLOUR = (40, 200, 70)
PREDICTION_COLOUR = (230, 40, 40)


def pr_curves_png(curves: dict[str, list[tuple[float, float]]], title: str) -> bytes:
    """Precision against recall at IoU 0.5, one line per class."""
    figure, axes = _figure()
    for name, points in curves.items():
        axes.plot([r for r, _ in points], [p for _, p in points], label=name)
    axes.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title=title)
    if curves:
        axes.legend(loc="lower left", fontsize="small")
    return _png(figure)


def confusion_png(confusion: list[list[int]], names: list[str], title: str) -> bytes:
    """Counts, truth in rows and prediction in columns."""
    figure, axes = _figure()
    axes.imshow(confusion, cmap="Blues")
    ticks = range(len(names))
    axes.set_xticks(ticks, names, rotation=45, ha="right")
    axes.set_yticks(ticks, names)
    axes.set(xlabel="predicted", ylabel="truth", title=title)
    highest = max((max(row) for row in confusion), default=0)
    for row, counts in enumerate(confusion):
        for column, count in enumerate(counts):
            colour = "white" if highest and count > highest / 2 else "black"
            axes.text(column, row, str(count), ha="center", va="center", color=colour)
    figure.tight_layout()
    return _png(figure)


def boxes_drawn(image: Image.Image, truth: list[Box], predicted: list[ScoredBox]) -> bytes:
    """Truth in green, predictions in red with class and score, as JPEG."""
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    for box in truth:
        draw.rectangle((box.x1, box.y1, box.x2, box.y2), outline=TRUTH_COLOUR, width=2)
        draw.text((box.x1 + 2, box.y2 - 12), box.label, fill=TRUTH_COLOUR)
    for scored in predicted:
        corners = (scored.x1, scored.y1, scored.x2, scored.y2)
        draw.rectangle(corners, outline=PREDICTION_COLOUR, width=2)
        draw.text(
            (scored.x1 + 2, scored.y1 + 2),
            f"{scored.label} {scored.score:.2f}",
            fill=PREDICTION_COLOUR,
        )
    return _jpeg(canvas)


def label_drawn(image: Image.Image, truth: str, predicted: str, score: float) -> bytes:
    """The truth and the predicted class written on the image, as JPEG."""
    canvas = image.convert("RGB")
    draw = ImageDraw.Draw(canvas)
    colour = TRUTH_COLOUR if truth == predicted else PREDICTION_COLOUR
    draw.rectangle((0, 0, canvas.width, 28), fill=(0, 0, 0))
    draw.text((4, 2), f"truth: {truth}", fill=(255, 255, 255))
    draw.text((4, 14), f"predicted: {predicted} {score:.2f}", fill=colour)
    return _jpeg(canvas)


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(6, 5), dpi=100)
    return figure, axes


def _png(figure: Any) -> bytes:
    from matplotlib import pyplot

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    return buffer.getvalue()


def _jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
