"""Labels with known mistakes, for the dataset-cleaning demo and tests. TEST DATA helpers.

Each helper takes good labels and returns them with one seeded mistake of a named kind, so a
test can assert that cleaning finds exactly that mistake.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from stek.datasets.manifest import Box

BAD_LABEL_STREAM = 5
# Misspellings and classes the project does not have, as people type them.
UNKNOWN_CLASSES = ("Viable", "non-viable", "dead", "weed", "unknown")


class BoxDefect(StrEnum):
    UNKNOWN_CLASS = "unknown_class"  # a label outside the dataset's classes
    OUTSIDE_IMAGE = "outside_image"  # a box wholly beyond the picture's edges
    ZERO_AREA = "zero_area"  # x1 == x2: a line, not a box
    NEGATIVE_AREA = "negative_area"  # corners swapped: x2 < x1 and y2 < y1
    TINY_BOX = "tiny_box"  # under one pixel across: a stray click
    DUPLICATE_BOX = "duplicate_box"  # the same box twice


def corrupt_label(label: str, seed: int) -> str:
    """A class name that is not in the dataset's classes, in place of `label`."""
    rng = np.random.default_rng([seed, BAD_LABEL_STREAM])
    candidates = [name for name in UNKNOWN_CLASSES if name != label]
    return candidates[int(rng.integers(len(candidates)))]


def corrupt_boxes(
    boxes: list[Box], seed: int, *, image_size: tuple[int, int] | None = None
) -> dict[BoxDefect, list[Box]]:
    """For each defect, a copy of `boxes` with exactly one box spoiled that way.

    The spoiled box is picked by `seed`. `image_size` (width, height) puts the outside box just
    beyond the right and bottom edges; without it the box lies at negative coordinates.
    """
    if not boxes:
        raise ValueError("corrupt_boxes needs at least one box to spoil")
    rng = np.random.default_rng([seed, BAD_LABEL_STREAM])
    index = int(rng.integers(len(boxes)))
    victim = boxes[index]
    width, height = victim.x2 - victim.x1, victim.y2 - victim.y1

    if image_size is None:
        outside = victim.model_copy(
            update={"x1": -width - 10, "y1": -height - 10, "x2": -10, "y2": -10}
        )
    else:
        right, bottom = image_size
        outside = victim.model_copy(
            update={
                "x1": right + 5,
                "y1": bottom + 5,
                "x2": right + 5 + width,
                "y2": bottom + 5 + height,
            }
        )
    tiny_side = float(rng.uniform(0.2, 0.8))
    spoiled = {
        BoxDefect.UNKNOWN_CLASS: victim.model_copy(
            update={"label": corrupt_label(victim.label, seed)}
        ),
        BoxDefect.OUTSIDE_IMAGE: outside,
        BoxDefect.ZERO_AREA: victim.model_copy(update={"x2": victim.x1}),
        BoxDefect.NEGATIVE_AREA: victim.model_copy(
            update={"x1": victim.x2, "x2": victim.x1, "y1": victim.y2, "y2": victim.y1}
        ),
        BoxDefect.TINY_BOX: victim.model_copy(
            update={"x2": victim.x1 + tiny_side, "y2": victim.y1 + tiny_side}
        ),
    }
    variants = {defect: _swap(boxes, index, box) for defect, box in spoiled.items()}
    variants[BoxDefect.DUPLICATE_BOX] = [
        *boxes[: index + 1],
        victim.model_copy(),
        *boxes[index + 1 :],
    ]
    return variants


def _swap(boxes: list[Box], index: int, replacement: Box) -> list[Box]:
    return [
        replacement if position == index else box.model_copy() for position, box in enumerate(boxes)
    ]
