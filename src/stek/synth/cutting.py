"""Synthetic close-ups of single cuttings, labelled viable or not. TEST DATA.

Generated pictures with known labels, for the classification demo and tests; they are not
photographs and say nothing about real cuttings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from stek.synth import plant, scene
from stek.synth.photo import Lighting, random_lighting

CUTTING_STREAM = 2  # keeps cutting seed n apart from tray seed n
SERIES_STREAM = 3


@dataclass(frozen=True)
class SyntheticCutting:
    """One generated close-up of a cutting in its cell (TEST DATA) and its label."""

    seed: int
    image: Image.Image  # RGB, size x size
    label: str  # one of plant.CUTTING_CLASSES
    condition: plant.Condition
    lighting: Lighting

    @property
    def metadata(self) -> dict[str, str]:
        return {
            "synthetic": "true",
            "seed": str(self.seed),
            "label": self.label,
            "condition": str(self.condition),
            **self.lighting.as_metadata(),
        }


def generate_cutting(seed: int, *, size: int = 96, label: str | None = None) -> SyntheticCutting:
    """One cutting in one tray cell, seen from above; viable or not at random when `label` is None.

    The same arguments always give the same picture, byte for byte.
    """
    if size < 32:
        raise ValueError(f"a cutting picture needs at least 32x32 pixels, not {size}")
    rng = np.random.default_rng([seed, CUTTING_STREAM])
    if label is None:
        label = plant.CUTTING_CLASSES[int(rng.integers(len(plant.CUTTING_CLASSES)))]
    style = scene.TRAY_STYLES[int(rng.integers(len(scene.TRAY_STYLES)))]
    lighting = random_lighting(rng)

    empty, cells = scene.paint_tray(rng, (size, size), rows=1, cols=1, style=style, close_up=True)
    canvas, placed = scene.place_cuttings(empty, cells, [label], rng, fill=(0.65, 0.95))
    image = scene.develop(canvas, lighting, rng)
    return SyntheticCutting(seed, image, label, placed[0].condition, lighting)


def generate_cuttings(
    seed: int, count: int, *, size: int = 96, balanced: bool = True
) -> list[SyntheticCutting]:
    """`count` cuttings; `balanced` gives each class the same number (one more for odd counts)."""
    rng = np.random.default_rng([seed, SERIES_STREAM])
    seeds = [int(value) for value in rng.integers(0, 2**62, size=count)]
    if not balanced:
        return [generate_cutting(cutting_seed, size=size) for cutting_seed in seeds]
    labels = [plant.CUTTING_CLASSES[index % 2] for index in range(count)]
    order = rng.permutation(count)
    return [
        generate_cutting(cutting_seed, size=size, label=labels[int(position)])
        for cutting_seed, position in zip(seeds, order, strict=True)
    ]
