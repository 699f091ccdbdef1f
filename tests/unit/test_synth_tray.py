"""Synthetic trays (TEST DATA generator): seeded, valid boxes, controllable classes."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import numpy as np
import pytest

from stek.datasets.manifest import Box
from stek.synth import CUTTING_CLASSES, NON_VIABLE, VIABLE, Condition, generate_tray, scene


def overlap_area(first: Box, second: Box) -> float:
    width = min(first.x2, second.x2) - max(first.x1, second.x1)
    height = min(first.y2, second.y2) - max(first.y1, second.y1)
    return max(0.0, width) * max(0.0, height)


def test_same_seed_gives_the_same_bytes_and_boxes() -> None:
    # Given two trays generated from the same seed
    first, second = generate_tray(7), generate_tray(7)

    # Then pictures, boxes and metadata are identical
    assert first.image.tobytes() == second.image.tobytes()
    assert first.boxes == second.boxes
    assert first.metadata == second.metadata


def test_different_seeds_give_different_trays() -> None:
    assert generate_tray(1).image.tobytes() != generate_tray(2).image.tobytes()


@pytest.mark.parametrize("seed", range(12))
def test_boxes_lie_inside_the_picture_with_positive_area(seed: int) -> None:
    # Given a tray of a non-square size
    tray = generate_tray(seed, size=(320, 240))

    # Then it is an RGB picture of that size with 2-6 boxes of known classes
    assert tray.image.mode == "RGB"
    assert tray.image.size == (320, 240)
    assert 2 <= len(tray.boxes) <= 6
    assert len(tray.conditions) == len(tray.boxes)
    for box in tray.boxes:
        assert box.label in CUTTING_CLASSES
        assert 0 <= box.x1 < box.x2 <= 320
        assert 0 <= box.y1 < box.y2 <= 240
        # a cutting is a realistic share of the tray: neither a speck nor the whole tray
        assert 8 <= box.x2 - box.x1 <= 320 * 0.6
        assert 8 <= box.y2 - box.y1 <= 240 * 0.6


@pytest.mark.parametrize("seed", range(12))
def test_cuttings_do_not_overlap(seed: int) -> None:
    tray = generate_tray(seed, cuttings=6)

    for first, second in itertools.combinations(tray.boxes, 2):
        assert overlap_area(first, second) == 0


@pytest.mark.parametrize("seed", range(6))
def test_boxes_are_tight_around_what_was_drawn(seed: int) -> None:
    # Given cuttings placed on a black, noiseless tray, so every non-black pixel is a cutting
    rng = np.random.default_rng(seed)
    empty = np.zeros((200, 200, 3), dtype=np.uint8)
    # cells 10 pixels apart, so the 3 pixels around one box never reach a neighbour
    cells = [scene.Cell(0, 0, 95, 95), scene.Cell(105, 0, 200, 95), scene.Cell(0, 105, 200, 200)]
    canvas, placed = scene.place_cuttings(empty, cells, [VIABLE, NON_VIABLE, NON_VIABLE], rng)
    picture = canvas.reduce(scene.SUPERSAMPLE)

    for cutting in placed:
        box = cutting.box
        # When we take the bounding box of the drawn pixels around each cutting
        around = (
            int(box.x1) - 3,
            int(box.y1) - 3,
            int(np.ceil(box.x2)) + 3,
            int(np.ceil(box.y2)) + 3,
        )
        drawn = picture.crop(around).getbbox()
        assert drawn is not None

        # Then the label's box is that box, to the pixel
        drawn_box = (
            drawn[0] + around[0],
            drawn[1] + around[1],
            drawn[2] + around[0],
            drawn[3] + around[1],
        )
        assert drawn_box == (int(box.x1), int(box.y1), int(np.ceil(box.x2)), int(np.ceil(box.y2)))


def test_cuttings_count_can_be_chosen() -> None:
    assert [len(generate_tray(seed, cuttings=3).boxes) for seed in range(5)] == [3] * 5


def test_viable_fraction_sets_the_class_balance() -> None:
    # Given trays with only viable, only non-viable, and an even mix of cuttings
    only_viable = [
        box.label for seed in range(5) for box in generate_tray(seed, viable_fraction=1).boxes
    ]
    only_bad = [
        box.label for seed in range(5) for box in generate_tray(seed, viable_fraction=0).boxes
    ]
    mixed = [box.label for seed in range(40) for box in generate_tray(seed).boxes]

    # Then the classes follow the fraction
    assert set(only_viable) == {VIABLE}
    assert set(only_bad) == {NON_VIABLE}
    assert 0.35 <= mixed.count(VIABLE) / len(mixed) <= 0.65


def test_non_viable_cuttings_have_a_reason() -> None:
    trays = [generate_tray(seed, viable_fraction=0) for seed in range(15)]

    conditions = {condition for tray in trays for condition in tray.conditions}

    assert conditions == {Condition.WILTED, Condition.BROKEN, Condition.DECAYED}


def test_metadata_says_it_is_synthetic_and_how_it_was_lit() -> None:
    tray = generate_tray(11)

    assert tray.metadata["synthetic"] == "true"
    assert tray.metadata["tray_id"] == "synthetic-tray-11"
    assert 3500 <= int(tray.metadata["lighting_colour_temperature_k"]) <= 6500
    assert tray.metadata["cuttings"] == str(len(tray.boxes))


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({"cuttings": 7}, "2-6 cuttings"),
        ({"cuttings": 1}, "2-6 cuttings"),
        ({"viable_fraction": 1.5}, "between 0 and 1"),
        ({"size": (32, 256)}, "at least 64x64"),
    ],
)
def test_impossible_requests_are_refused_with_what_to_change(
    arguments: dict[str, object], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        generate_tray(0, **arguments)  # type: ignore[arg-type]


def test_generation_speed_is_reported(record_property: Callable[[str, object], None]) -> None:
    # Reported, not asserted: the demo needs a few hundred pictures in seconds.
    generate_tray(0)
    count = 20
    started = time.perf_counter()
    for seed in range(count):
        generate_tray(seed)
    milliseconds = (time.perf_counter() - started) * 1000 / count
    record_property("tray_ms_per_image", round(milliseconds, 2))
    print(f"synthetic tray 256x256: {milliseconds:.1f} ms per image")
    assert milliseconds > 0
