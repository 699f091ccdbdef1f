"""Labels with known mistakes (TEST DATA helpers)."""

from __future__ import annotations

from stek.datasets.manifest import Box
from stek.synth import CUTTING_CLASSES, BoxDefect, corrupt_boxes, corrupt_label, generate_tray


def differing(good: list[Box], bad: list[Box]) -> list[Box]:
    return [box for box in bad if box not in good]


def test_each_defect_spoils_exactly_one_box_the_named_way() -> None:
    # Given the boxes of a synthetic tray
    tray = generate_tray(4, cuttings=4)
    width, height = tray.image.size

    # When each kind of mistake is made
    variants = corrupt_boxes(tray.boxes, seed=1, image_size=(width, height))

    # Then each variant differs from the good labels by exactly one box with that mistake
    assert set(variants) == set(BoxDefect)
    [unknown] = differing(tray.boxes, variants[BoxDefect.UNKNOWN_CLASS])
    assert unknown.label not in CUTTING_CLASSES
    [outside] = differing(tray.boxes, variants[BoxDefect.OUTSIDE_IMAGE])
    assert outside.x1 >= width
    assert outside.y1 >= height
    assert outside.x2 > outside.x1
    [zero] = differing(tray.boxes, variants[BoxDefect.ZERO_AREA])
    assert zero.x2 == zero.x1
    [negative] = differing(tray.boxes, variants[BoxDefect.NEGATIVE_AREA])
    assert negative.x2 < negative.x1
    assert negative.y2 < negative.y1
    [tiny] = differing(tray.boxes, variants[BoxDefect.TINY_BOX])
    assert 0 < tiny.x2 - tiny.x1 < 1
    assert 0 < tiny.y2 - tiny.y1 < 1
    duplicated = variants[BoxDefect.DUPLICATE_BOX]
    assert len(duplicated) == len(tray.boxes) + 1
    assert len({box.model_dump_json() for box in duplicated}) == len(tray.boxes)
    for defect in set(BoxDefect) - {BoxDefect.DUPLICATE_BOX}:
        assert len(variants[defect]) == len(tray.boxes)


def test_without_image_size_the_outside_box_lies_at_negative_coordinates() -> None:
    boxes = [Box(label="viable", x1=10, y1=10, x2=40, y2=50)]

    [outside] = corrupt_boxes(boxes, seed=0)[BoxDefect.OUTSIDE_IMAGE]

    assert outside.x2 < 0
    assert outside.y2 < 0


def test_the_good_labels_are_left_untouched_and_results_are_seeded() -> None:
    boxes = generate_tray(6).boxes
    before = [box.model_copy() for box in boxes]

    assert corrupt_boxes(boxes, seed=2) == corrupt_boxes(boxes, seed=2)
    assert boxes == before


def test_a_corrupt_classification_label_is_not_a_class() -> None:
    labels = {corrupt_label("viable", seed) for seed in range(20)}

    assert labels.isdisjoint(CUTTING_CLASSES)
    assert len(labels) > 1
