"""A tray seen from above and the cuttings set into its cells. TEST DATA.

The tray is painted with numpy at image size, enlarged twice for drawing the cuttings with smooth
edges, then reduced back and exposed (lighting, noise). Each cutting stays inside its own cell,
so no two cuttings overlap and every box holds exactly one cutting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from stek.datasets.manifest import Box
from stek.synth import plant
from stek.synth.photo import Lighting, expose

SUPERSAMPLE = 2  # cuttings are drawn at twice the size, then reduced: smooth edges, cheaply
SHADOW_OFFSET = 3  # in supersampled pixels: light from the upper left


@dataclass(frozen=True)
class Cell:
    """One cell of the tray, in image pixels."""

    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class TrayStyle:
    name: str
    plastic: plant.RGB
    medium: str  # "peat": cells filled with rooting medium; "bare": empty plastic cells


TRAY_STYLES = (
    TrayStyle("black-plastic-peat", (36, 36, 38), "peat"),
    TrayStyle("grey-plastic-peat", (96, 98, 102), "peat"),
    TrayStyle("white-polystyrene", (206, 206, 198), "bare"),
    TrayStyle("black-plastic-bare", (40, 41, 44), "bare"),
)


@dataclass(frozen=True)
class PlacedCutting:
    box: Box
    condition: plant.Condition


def paint_tray(
    rng: np.random.Generator,
    size: tuple[int, int],
    *,
    rows: int,
    cols: int,
    style: TrayStyle,
    close_up: bool = False,
) -> tuple[NDArray[np.uint8], list[Cell]]:
    """The empty tray on the belt, as an (height, width, 3) array, and its cells.

    `close_up` fills the picture with the tray (a single cell for one cutting); otherwise some of
    the belt shows around it, with the tray shifted a little each time.
    """
    width, height = size
    belt = 58 + 8 * _blotches(rng, height, width, 24)
    picture = np.repeat(belt[:, :, None], 3, axis=2)

    if close_up:
        left = top = right = bottom = 0
    else:
        edge = max(2, round(min(size) * 0.06))
        left, top, right, bottom = (int(rng.integers(1, edge)) for _ in range(4))
    tray = (left, top, width - right, height - bottom)
    plastic = np.array(style.plastic, dtype=np.float32)
    picture[tray[1] : tray[3], tray[0] : tray[2]] = plastic
    picture[tray[1] : tray[3], tray[0] : tray[2]] += (
        5 * _blotches(rng, tray[3] - tray[1], tray[2] - tray[0], 16)
    )[:, :, None]

    wall = max(2, round(min(size) * rng.uniform(0.012, 0.02)))
    cells = _cells(tray, rows, cols, wall)
    peat = float(rng.uniform(48, 76)) * np.array([1.0, 0.74, 0.54], dtype=np.float32)
    for cell in cells:
        _fill_cell(picture, cell, style, peat, rng)
    return np.clip(picture, 0, 255).astype(np.uint8), cells


def _cells(tray: tuple[int, int, int, int], rows: int, cols: int, wall: int) -> list[Cell]:
    left, top, right, bottom = tray
    cell_w = (right - left - (cols + 1) * wall) / cols
    cell_h = (bottom - top - (rows + 1) * wall) / rows
    return [
        Cell(
            left + wall + col * (cell_w + wall),
            top + wall + row * (cell_h + wall),
            left + wall + col * (cell_w + wall) + cell_w,
            top + wall + row * (cell_h + wall) + cell_h,
        )
        for row in range(rows)
        for col in range(cols)
    ]


def _fill_cell(
    picture: NDArray[np.float32],
    cell: Cell,
    style: TrayStyle,
    peat: NDArray[np.float32],
    rng: np.random.Generator,
) -> None:
    x1, y1, x2, y2 = round(cell.x1), round(cell.y1), round(cell.x2), round(cell.y2)
    height, width = y2 - y1, x2 - x1
    if style.medium == "peat":
        colour = peat * float(rng.uniform(0.88, 1.12))  # each plug a little wetter or drier
        grain = 9 * rng.standard_normal((height, width), dtype=np.float32)
        clumps = 10 * _blotches(rng, height, width, 5)
        floor = colour[None, None, :] + (grain + clumps)[:, :, None]
    else:
        colour = np.array(style.plastic, dtype=np.float32) * 0.88
        floor = colour[None, None, :] + (3 * _blotches(rng, height, width, 12))[:, :, None]

    # The cell wall shades the upper-left edge of the floor.
    ramp_y = np.clip(np.arange(height, dtype=np.float32) / 4, 0, 1)
    ramp_x = np.clip(np.arange(width, dtype=np.float32) / 4, 0, 1)
    shadow = 0.75 + 0.25 * np.minimum(ramp_y[:, None], ramp_x[None, :])
    picture[y1:y2, x1:x2] = floor * shadow[:, :, None]


def _blotches(
    rng: np.random.Generator, height: int, width: int, grain_px: int
) -> NDArray[np.float32]:
    """Smooth random texture with features about `grain_px` across, values roughly in -1..1."""
    coarse = rng.standard_normal((height // grain_px + 2, width // grain_px + 2), dtype=np.float32)
    smooth = Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(smooth, dtype=np.float32)


def place_cuttings(
    tray: NDArray[np.uint8],
    cells: list[Cell],
    labels: list[str],
    rng: np.random.Generator,
    *,
    fill: tuple[float, float] = (0.7, 0.95),
) -> tuple[Image.Image, list[PlacedCutting]]:
    """Draw one cutting per label into its own cell; the picture is returned supersampled.

    `fill` is the range of the share of its cell (along the tighter side) a cutting takes up.
    """
    if len(labels) > len(cells):
        raise ValueError(f"{len(labels)} cuttings do not fit in {len(cells)} cells")
    height, width = tray.shape[:2]
    big = (width * SUPERSAMPLE, height * SUPERSAMPLE)
    canvas = Image.fromarray(tray).resize(big, Image.Resampling.BILINEAR)
    chosen = rng.choice(len(cells), size=len(labels), replace=False)

    posed: list[tuple[list[plant.Part], plant.Condition]] = []
    for label, cell_index in zip(labels, chosen, strict=True):
        condition = plant.condition_for(label, rng)
        parts = plant.design(condition, rng)
        posed.append((_fit(parts, cells[int(cell_index)], fill, rng), condition))

    _cast_shadows(canvas, [parts for parts, _ in posed])
    painter = ImageDraw.Draw(canvas)
    mask = Image.new("L", big, 0)
    masker = ImageDraw.Draw(mask)
    placed = []
    for (parts, condition), label in zip(posed, labels, strict=True):
        plant.draw(painter, parts)
        placed.append(PlacedCutting(_tight_box(mask, masker, parts, label), condition))
    return canvas, placed


def _fit(
    parts: list[plant.Part], cell: Cell, fill: tuple[float, float], rng: np.random.Generator
) -> list[plant.Part]:
    """Turn the cutting at random and scale it to a random share of its cell, never beyond it."""
    angle = float(rng.uniform(0, 2 * np.pi))
    x1, y1, x2, y2 = plant.extent(plant.pose(parts, angle=angle, scale=1.0, offset=(0, 0)))
    margin = 1.0  # pixel between a cutting and its cell wall
    room_w = (cell.x2 - cell.x1 - 2 * margin) * SUPERSAMPLE
    room_h = (cell.y2 - cell.y1 - 2 * margin) * SUPERSAMPLE
    scale = min(room_w / (x2 - x1), room_h / (y2 - y1)) * float(rng.uniform(*fill))
    slack_x = (room_w - (x2 - x1) * scale) / 2
    slack_y = (room_h - (y2 - y1) * scale) / 2
    centre_x = (cell.x1 + cell.x2) / 2 * SUPERSAMPLE + float(rng.uniform(-slack_x, slack_x))
    centre_y = (cell.y1 + cell.y2) / 2 * SUPERSAMPLE + float(rng.uniform(-slack_y, slack_y))
    return plant.pose(parts, angle=angle, scale=scale, offset=(centre_x, centre_y))


def _cast_shadows(canvas: Image.Image, cuttings: list[list[plant.Part]]) -> None:
    mask = Image.new("L", canvas.size, 0)
    masker = ImageDraw.Draw(mask)
    for parts in cuttings:
        shifted = [
            plant.Part(part.points + SHADOW_OFFSET, part.fill, part.width, part.outline)
            for part in parts
        ]
        plant.draw(masker, shifted, fill=120)
    darker = canvas.point(lambda value: value * 0.5)
    canvas.paste(darker, (0, 0), mask)


def _tight_box(
    mask: Image.Image, masker: ImageDraw.ImageDraw, parts: list[plant.Part], label: str
) -> Box:
    """The box around the pixels the cutting covers, in image (not supersampled) pixels."""
    plant.draw(masker, parts, fill=255)
    bbox = mask.getbbox()
    if bbox is None:  # cannot happen for a cutting inside the picture; guards the types
        raise ValueError("a cutting was drawn outside the picture")
    masker.rectangle(bbox, fill=0)
    x1, y1, x2, y2 = (coordinate / SUPERSAMPLE for coordinate in bbox)
    return Box(label=label, x1=x1, y1=y1, x2=x2, y2=y2)


def develop(canvas: Image.Image, lighting: Lighting, rng: np.random.Generator) -> Image.Image:
    """The supersampled scene reduced to picture size and exposed: the final RGB picture."""
    reduced = np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.uint8)
    return Image.fromarray(expose(reduced, lighting, rng))
