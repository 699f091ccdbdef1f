"""Synthetic single cuttings (TEST DATA generator): seeded, labelled, classes that differ."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from stek.synth import CUTTING_CLASSES, NON_VIABLE, VIABLE, generate_cutting, generate_cuttings


def green_share(pixels: np.ndarray) -> float:
    """Share of pixels clearly greener than red: leaves of a healthy cutting."""
    red, green = pixels[:, :, 0].astype(int), pixels[:, :, 1].astype(int)
    return float(np.mean(green - red > 25))


def test_same_seed_gives_the_same_bytes() -> None:
    first, second = generate_cutting(5), generate_cutting(5)

    assert first.image.tobytes() == second.image.tobytes()
    assert (first.label, first.condition) == (second.label, second.condition)


def test_a_cutting_has_the_requested_size_and_label() -> None:
    cutting = generate_cutting(1, size=64, label=NON_VIABLE)

    assert cutting.image.size == (64, 64)
    assert cutting.image.mode == "RGB"
    assert cutting.label == NON_VIABLE
    assert cutting.metadata["synthetic"] == "true"
    assert cutting.metadata["label"] == NON_VIABLE


def test_an_unknown_label_is_refused() -> None:
    with pytest.raises(ValueError, match="viable"):
        generate_cutting(1, label="dead")


def test_balanced_series_has_equal_classes_and_is_seeded() -> None:
    # Given a balanced series of 30 cuttings
    series = generate_cuttings(9, 30, size=48)

    # Then each class has 15, in a shuffled order, and the seed repeats it exactly
    labels = [cutting.label for cutting in series]
    assert labels.count(VIABLE) == labels.count(NON_VIABLE) == 15
    assert labels != [VIABLE, NON_VIABLE] * 15
    again = generate_cuttings(9, 30, size=48)
    assert [c.image.tobytes() for c in series] == [c.image.tobytes() for c in again]


def test_unbalanced_series_draws_both_classes() -> None:
    labels = {cutting.label for cutting in generate_cuttings(4, 20, size=48, balanced=False)}

    assert labels == set(CUTTING_CLASSES)


def test_classes_differ_visibly_by_colour() -> None:
    # Given 40 cuttings of each class
    series = generate_cuttings(123, 80)

    # When a one-number rule (share of green pixels) guesses the class
    guesses = [VIABLE if green_share(np.asarray(c.image)) > 0.02 else NON_VIABLE for c in series]

    # Then it is nearly always right: a small CNN has an easy colour cue to learn
    correct = sum(guess == cutting.label for guess, cutting in zip(guesses, series, strict=True))
    assert correct / len(series) >= 0.95


def test_generation_speed_is_reported(record_property: Callable[[str, object], None]) -> None:
    count = 40
    started = time.perf_counter()
    generate_cuttings(0, count)
    milliseconds = (time.perf_counter() - started) * 1000 / count
    record_property("cutting_ms_per_image", round(milliseconds, 2))
    print(f"synthetic cutting 96x96: {milliseconds:.1f} ms per image")
    assert milliseconds > 0
