"""Synthetic trays of cuttings photographed from above, with a box per cutting. TEST DATA.

These pictures are generated, not photographed: they exist so that the demo and the tests have
detection data with known answers. Nothing learnt from them says anything about real cuttings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from stek.datasets.manifest import Box
from stek.synth import plant, scene
from stek.synth.photo import Lighting, random_lighting

TRAY_STREAM = 1  # keeps tray seed n apart from cutting seed n
GRIDS = ((2, 2), (2, 3), (3, 2), (3, 3))  # rows, columns of the tray section in view
MIN_CUTTINGS, MAX_CUTTINGS = 2, 6


@dataclass(frozen=True)
class SyntheticTray:
    """One generated tray picture (TEST DATA) and the answers a detector should find."""

    seed: int
    tray_id: str
    image: Image.Image  # RGB
    boxes: list[Box]  # one per cutting, tight around it; label in plant.CUTTING_CLASSES
    conditions: list[plant.Condition]  # why each cutting has its label, same order as boxes
    lighting: Lighting
    tray_style: str
    grid: tuple[int, int]  # rows, columns

    @property
    def metadata(self) -> dict[str, str]:
        """What a machine would send along with the picture, plus what made it."""
        return {
            "synthetic": "true",
            "tray_id": self.tray_id,
            "seed": str(self.seed),
            "tray_style": self.tray_style,
            "cuttings": str(len(self.boxes)),
            **self.lighting.as_metadata(),
        }


def generate_tray(
    seed: int,
    *,
    size: tuple[int, int] = (256, 256),
    cuttings: int | None = None,
    viable_fraction: float = 0.5,
) -> SyntheticTray:
    """A tray holding `cuttings` cuttings (2-6 at random when None), each viable or not.

    Each cutting is viable with probability `viable_fraction`. The same arguments always give
    the same picture, byte for byte. `size` is (width, height) in pixels.
    """
    _check(size, cuttings, viable_fraction)
    rng = np.random.default_rng([seed, TRAY_STREAM])
    count = int(rng.integers(MIN_CUTTINGS, MAX_CUTTINGS + 1)) if cuttings is None else cuttings
    rows, cols = _grid_for(count, rng)
    style = scene.TRAY_STYLES[int(rng.integers(len(scene.TRAY_STYLES)))]
    lighting = random_lighting(rng)

    empty, cells = scene.paint_tray(rng, size, rows=rows, cols=cols, style=style)
    labels = [
        plant.VIABLE if rng.random() < viable_fraction else plant.NON_VIABLE for _ in range(count)
    ]
    canvas, placed = scene.place_cuttings(empty, cells, labels, rng)
    image = scene.develop(canvas, lighting, rng)

    return SyntheticTray(
        seed=seed,
        tray_id=f"synthetic-tray-{seed}",
        image=image,
        boxes=[cutting.box for cutting in placed],
        conditions=[cutting.condition for cutting in placed],
        lighting=lighting,
        tray_style=style.name,
        grid=(rows, cols),
    )


def _check(size: tuple[int, int], cuttings: int | None, viable_fraction: float) -> None:
    if min(size) < 64:
        raise ValueError(f"a tray picture needs at least 64x64 pixels, not {size[0]}x{size[1]}")
    if cuttings is not None and not MIN_CUTTINGS <= cuttings <= MAX_CUTTINGS:
        raise ValueError(f"a tray holds {MIN_CUTTINGS}-{MAX_CUTTINGS} cuttings, not {cuttings}")
    if not 0.0 <= viable_fraction <= 1.0:
        raise ValueError(f"viable_fraction is a share between 0 and 1, not {viable_fraction}")


def _grid_for(count: int, rng: np.random.Generator) -> tuple[int, int]:
    """A grid with at least as many cells as cuttings; empty cells are normal on a tray."""
    fitting = [grid for grid in GRIDS if grid[0] * grid[1] >= count]
    rows, cols = fitting[int(rng.integers(len(fitting)))]
    return rows, cols
