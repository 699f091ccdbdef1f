"""How a synthetic cutting looks: a stem with leaves, healthy or not. TEST DATA, not a plant model.

A cutting is designed in its own frame (base at the origin, growing along +y, stem length 1),
as a list of flat parts (lines and polygons). `pose` turns and scales those parts into a cell of
an image; `draw` paints them. The classes differ mostly by colour (green against yellow/brown)
and by shape (spread leaves against small drooping or shrivelled ones, or a snapped stem), so a
small network trained from scratch can tell them apart within a minute.
"""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np
from numpy.typing import NDArray
from PIL import ImageDraw

VIABLE = "viable"
NON_VIABLE = "non_viable"
CUTTING_CLASSES: tuple[str, str] = (VIABLE, NON_VIABLE)

RGB = tuple[int, int, int]
Points = NDArray[np.float64]
# Point and unit tangent of a stem at a fraction of its length.
StemCurve = Callable[[float], tuple[Points, Points]]


class Condition(StrEnum):
    """Why a cutting has its class; kept in the metadata so a test can tell what it drew."""

    HEALTHY = "healthy"  # viable: green, large leaves spread forwards
    WILTED = "wilted"  # non-viable: yellowed, small leaves hanging back along the stem
    BROKEN = "broken"  # non-viable: stem snapped, top bent away, leaves yellowing
    DECAYED = "decayed"  # non-viable: brown stem, few shrivelled brown leaves


NON_VIABLE_CONDITIONS = (Condition.WILTED, Condition.BROKEN, Condition.DECAYED)


@dataclass(frozen=True)
class Part:
    """One flat piece of a cutting: a thick line (`width` > 0) or a filled polygon."""

    points: Points  # (n, 2) x, y
    fill: RGB
    width: float = 0.0
    outline: RGB | None = None

    @property
    def is_line(self) -> bool:
        return self.width > 0


@dataclass(frozen=True)
class Palette:
    """Hue in degrees, saturation and value in 0..1 for leaves and stem."""

    leaf_hue: tuple[float, float]
    leaf_saturation: tuple[float, float]
    leaf_value: tuple[float, float]
    stem_hue: tuple[float, float]
    stem_value: tuple[float, float]


# The hue ranges leave a gap (62-88 degrees) between the classes, so lighting that shifts
# colour temperature never pushes one class into the other's colours.
PALETTES: dict[Condition, Palette] = {
    Condition.HEALTHY: Palette((92, 128), (0.55, 0.8), (0.5, 0.78), (82, 105), (0.45, 0.62)),
    Condition.WILTED: Palette((44, 60), (0.55, 0.8), (0.66, 0.86), (40, 55), (0.45, 0.6)),
    Condition.BROKEN: Palette((38, 58), (0.5, 0.72), (0.55, 0.78), (28, 45), (0.4, 0.55)),
    Condition.DECAYED: Palette((22, 38), (0.5, 0.7), (0.4, 0.62), (20, 32), (0.3, 0.45)),
}


@dataclass(frozen=True)
class LeafHabit:
    """Leaf size (relative to the stem), narrowness and angle from the stem, in degrees."""

    length: tuple[float, float]
    width_ratio: tuple[float, float]
    angle: tuple[float, float]
    pairs: tuple[int, int]  # inclusive
    spots: bool  # brown necrotic spots


HABITS: dict[Condition, LeafHabit] = {
    Condition.HEALTHY: LeafHabit((0.3, 0.45), (0.42, 0.56), (25, 60), (2, 3), spots=False),
    Condition.WILTED: LeafHabit((0.16, 0.26), (0.26, 0.38), (115, 165), (2, 3), spots=True),
    Condition.BROKEN: LeafHabit((0.2, 0.32), (0.32, 0.45), (40, 120), (1, 2), spots=True),
    Condition.DECAYED: LeafHabit((0.14, 0.24), (0.22, 0.34), (60, 170), (1, 2), spots=True),
}


def hsv(hue_deg: float, saturation: float, value: float) -> RGB:
    red, green, blue = colorsys.hsv_to_rgb((hue_deg % 360) / 360, saturation, value)
    return (round(red * 255), round(green * 255), round(blue * 255))


def shade(colour: RGB, factor: float) -> RGB:
    red, green, blue = (min(255, max(0, round(channel * factor))) for channel in colour)
    return (red, green, blue)


def condition_for(label: str, rng: np.random.Generator) -> Condition:
    if label not in CUTTING_CLASSES:
        raise ValueError(f"label must be one of {CUTTING_CLASSES}, not {label!r}")
    if label == VIABLE:
        return Condition.HEALTHY
    return NON_VIABLE_CONDITIONS[int(rng.integers(len(NON_VIABLE_CONDITIONS)))]


def design(condition: Condition, rng: np.random.Generator) -> list[Part]:
    """The parts of one cutting in its own frame: base at (0, 0), stem of length 1 along +y."""
    palette = PALETTES[condition]
    stem_colour = hsv(rng.uniform(*palette.stem_hue), 0.5, rng.uniform(*palette.stem_value))
    stem_width = rng.uniform(0.035, 0.05)
    bow = rng.uniform(-0.12, 0.12)

    def stem_at(t: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Point and unit tangent of the gently bowed stem at fraction t of its length."""
        point = np.array([bow * 4 * t * (1 - t), t])
        tangent = np.array([bow * 4 * (1 - 2 * t), 1.0])
        return point, tangent / np.linalg.norm(tangent)

    stem = np.array([stem_at(t)[0] for t in np.linspace(0, 1, 9)])
    parts = [Part(stem, stem_colour, width=stem_width)]
    parts.append(_callus(stem[0], stem_width, rng))
    parts.extend(_leaves(condition, stem_at, rng))

    if condition is Condition.BROKEN:
        parts = _snap(parts, rng)
    return parts


def _callus(base: Points, stem_width: float, rng: np.random.Generator) -> Part:
    """The pale cut end at the base of the stem."""
    radius = stem_width * rng.uniform(0.7, 1.0)
    return Part(_ellipse(base, np.array([0.0, 1.0]), radius * 2, radius * 2), hsv(45, 0.25, 0.8))


def _leaves(condition: Condition, stem_at: StemCurve, rng: np.random.Generator) -> list[Part]:
    habit = HABITS[condition]
    palette = PALETTES[condition]
    pairs = int(rng.integers(habit.pairs[0], habit.pairs[1] + 1))
    positions = np.linspace(0.45, 0.85, pairs)
    parts: list[Part] = []
    for index, t in enumerate(positions):
        for side in (-1, 1):
            if condition is Condition.DECAYED and rng.random() < 0.25:
                continue  # decayed cuttings have lost some of their leaves
            point, tangent = stem_at(float(t))
            angle = np.deg2rad(rng.uniform(*habit.angle)) * side
            direction = _turn(tangent, angle)
            # Lower leaves are older and larger on a healthy cutting.
            length = rng.uniform(*habit.length) * (1.1 - 0.15 * index)
            width = length * rng.uniform(*habit.width_ratio)
            colour = hsv(
                rng.uniform(*palette.leaf_hue),
                rng.uniform(*palette.leaf_saturation),
                rng.uniform(*palette.leaf_value),
            )
            parts.extend(_leaf(point, direction, length, width, colour, habit.spots, rng))

    apex, tangent = stem_at(1.0)
    bud_length = rng.uniform(*habit.length) * 0.6
    bud_direction = _turn(tangent, np.deg2rad(rng.uniform(-15, 15)))
    if condition in (Condition.WILTED, Condition.DECAYED):
        bud_direction = _turn(tangent, np.deg2rad(rng.choice([-1, 1]) * rng.uniform(70, 130)))
    bud_colour = hsv(rng.uniform(*palette.leaf_hue), 0.7, rng.uniform(*palette.leaf_value))
    parts.extend(_leaf(apex, bud_direction, bud_length, bud_length * 0.45, bud_colour, False, rng))
    return parts


def _leaf(
    base: Points,
    direction: Points,
    length: float,
    width: float,
    colour: RGB,
    spots: bool,
    rng: np.random.Generator,
) -> list[Part]:
    centre = base + direction * length / 2
    blade = Part(_ellipse(centre, direction, length, width), colour, outline=shade(colour, 0.7))
    midrib = Part(np.array([base, base + direction * length * 0.9]), shade(colour, 1.2), 0.008)
    parts = [blade, midrib]
    if spots:
        for _ in range(int(rng.integers(1, 4))):
            along = rng.uniform(0.3, 0.8) * length
            across = rng.uniform(-0.25, 0.25) * width
            spot_centre = base + direction * along + _turn(direction, np.pi / 2) * across
            size = width * rng.uniform(0.2, 0.4)
            parts.append(Part(_ellipse(spot_centre, direction, size, size), hsv(25, 0.6, 0.3)))
    return parts


def _snap(parts: list[Part], rng: np.random.Generator) -> list[Part]:
    """Bend everything above a break point away, leaving a small gap: a snapped stem."""
    break_at = rng.uniform(0.35, 0.55)
    pivot = np.array([0.0, break_at])
    angle = np.deg2rad(rng.choice([-1, 1]) * rng.uniform(55, 110))
    gap = np.array([rng.uniform(-0.04, 0.04), 0.05])
    snapped: list[Part] = []
    for part in parts:
        if part.is_line and len(part.points) > 2:  # the stem: split it at the break
            lower = part.points[part.points[:, 1] <= break_at]
            upper = part.points[part.points[:, 1] >= break_at]
            snapped.append(replace(part, points=np.vstack([lower, pivot])))
            upper = np.vstack([pivot, upper])
            snapped.append(replace(part, points=_rotate(upper - pivot, angle) + pivot + gap))
        elif part.points[:, 1].mean() > break_at:
            snapped.append(replace(part, points=_rotate(part.points - pivot, angle) + pivot + gap))
        else:
            snapped.append(part)
    return snapped


def _ellipse(centre: Points, direction: Points, length: float, width: float) -> Points:
    """A leaf-like ellipse along `direction`, a little broader towards its base."""
    phi = np.linspace(0, 2 * np.pi, 18, endpoint=False)
    normal = _turn(direction, np.pi / 2)
    along = np.cos(phi)[:, None] * direction * length / 2
    across = (np.sin(phi) * (1 - 0.3 * np.cos(phi)))[:, None] * normal * width / 2
    return np.asarray(centre + along + across, dtype=np.float64)


def _turn(vector: Points, angle: float) -> Points:
    return _rotate(vector[None, :], angle)[0]


def _rotate(points: Points, angle: float) -> Points:
    cos, sin = np.cos(angle), np.sin(angle)
    return np.asarray(points @ np.array([[cos, sin], [-sin, cos]]), dtype=np.float64)


def extent(parts: list[Part]) -> tuple[float, float, float, float]:
    """The bounding box of all parts, widths of lines included: (x1, y1, x2, y2)."""
    lows = [part.points.min(axis=0) - part.width / 2 for part in parts]
    highs = [part.points.max(axis=0) + part.width / 2 for part in parts]
    x1, y1 = np.min(lows, axis=0)
    x2, y2 = np.max(highs, axis=0)
    return float(x1), float(y1), float(x2), float(y2)


def pose(
    parts: list[Part], *, angle: float, scale: float, offset: tuple[float, float]
) -> list[Part]:
    """Turn the parts by `angle` (radians), scale them, and move their box centre to `offset`."""
    turned = [replace(part, points=_rotate(part.points, angle)) for part in parts]
    x1, y1, x2, y2 = extent(turned)
    centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
    target = np.array(offset)
    return [
        replace(part, points=(part.points - centre) * scale + target, width=part.width * scale)
        for part in turned
    ]


def draw(canvas: ImageDraw.ImageDraw, parts: list[Part], *, fill: RGB | int | None = None) -> None:
    """Paint the parts in order; `fill` paints them all in one colour (shadows, masks)."""
    for part in parts:
        points = part.points.ravel().tolist()
        colour = part.fill if fill is None else fill
        if part.is_line:
            canvas.line(points, fill=colour, width=max(1, round(part.width)), joint="curve")
        else:
            outline = part.outline if fill is None else fill
            canvas.polygon(points, fill=colour, outline=outline)
