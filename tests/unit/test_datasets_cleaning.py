"""Each cleaning rule finds what it should and nothing else; splits are deterministic."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from stek.datasets.catalog import DatasetImage
from stek.datasets.cleaning import RULES, Candidate, CleaningOptions, clean
from stek.datasets.manifest import Box, Split, Task
from stek.datasets.splits import hashed_split
from stek.images.catalog import ImageRecord, ImageStatus

CLASSES = ["healthy", "damaged"]
START = datetime(2026, 12, 1, tzinfo=UTC)


def _phash(number: int) -> str:
    # Hashes of distinct images: 16 hex digits far apart from one another.
    return hashlib.sha256(str(number).encode()).hexdigest()[:16]


def _near(phash: str, bits: int) -> str:
    return f"{int(phash, 16) ^ ((1 << bits) - 1):016x}"


def _candidate(
    number: int,
    *,
    label: str | None = "healthy",
    boxes: list[Box] | None = None,
    split: Split | None = None,
    phash: str | None = None,
    sha256: str | None = None,
    status: ImageStatus = ImageStatus.INGESTED,
    parent: Split | None = None,
) -> Candidate:
    image_id = f"img{number:03d}"
    record = ImageRecord(
        tenant="t",
        image_id=image_id,
        status=status,
        bucket="raw",
        key=f"t/m/{image_id}.jpg",
        size=100,
        sha256=None if status is ImageStatus.REJECTED else (sha256 or f"sha-{number}"),
        phash=None if status is ImageStatus.REJECTED else (phash or _phash(number)),
        width=None if status is ImageStatus.REJECTED else 100,
        height=None if status is ImageStatus.REJECTED else 80,
        reason="truncated" if status is ImageStatus.REJECTED else None,
        ingested_at=START,
        correlation_id=image_id,
    )
    image = DatasetImage(
        image_id=image_id,
        label=label,
        boxes=boxes,
        split=split,
        added_at=START + timedelta(seconds=number),
    )
    return Candidate(image, record, parent)


def _box(x1: float, y1: float, x2: float, y2: float, label: str = "healthy") -> Box:
    return Box(label=label, x1=x1, y1=y1, x2=x2, y2=y2)


def _found(report: object) -> dict[str, list[str]]:
    return {rule.rule: sorted(rule.found) for rule in report.rules if rule.found}  # type: ignore[attr-defined]


def test_classification_rules_find_only_what_was_planted() -> None:
    candidates = [_candidate(n, label="healthy" if n % 2 else "damaged") for n in range(1, 11)]
    candidates += [
        _candidate(11, status=ImageStatus.REJECTED),
        _candidate(12, sha256="sha-1", phash=_phash(1), label="healthy"),  # copy of img001
        _candidate(13, phash=_near(_phash(2), 3), label="damaged"),  # look-alike of img002
        _candidate(14, label=None),
        _candidate(15, label="wilted"),
    ]
    missing = Candidate(DatasetImage(image_id="img016", label="healthy"), None)

    cleaned = clean([*candidates, missing], Task.CLASSIFICATION, CLASSES, CleaningOptions())

    assert _found(cleaned.report) == {
        "unreadable": ["img011", "img016"],
        "exact_duplicates": ["img012"],
        "near_duplicates": ["img013"],
        "missing_label": ["img014"],
        "unknown_class": ["img015"],
    }
    kept = {entry.image_id for entry in cleaned.entries}
    assert kept == {f"img{n:03d}" for n in [*range(1, 11), 13]}
    assert cleaned.report.rule("near_duplicates").dropped == []
    assert cleaned.report.images_in == 16
    assert cleaned.report.images_out == 11


def test_near_duplicates_can_be_dropped_and_radius_is_configurable() -> None:
    candidates = [_candidate(1), _candidate(2, phash=_near(_phash(1), 5))]

    wide = clean(
        candidates, Task.CLASSIFICATION, CLASSES, CleaningOptions(drop_near_duplicates=True)
    )
    narrow = clean(
        candidates, Task.CLASSIFICATION, CLASSES, CleaningOptions(near_duplicate_radius=4)
    )

    assert wide.report.rule("near_duplicates").dropped == ["img002"]
    assert [entry.image_id for entry in wide.entries] == ["img001"]
    assert narrow.report.rule("near_duplicates").found == []
    assert len(narrow.entries) == 2


@pytest.mark.parametrize(
    ("box", "rule", "kept_box"),
    [
        (_box(10, 10, 30, 30, label="wilted"), "unknown_class", None),
        (_box(30, 10, 30, 40), "zero_area_box", None),
        (_box(40, 10, 20, 40), "zero_area_box", None),
        (_box(120, 90, 150, 120), "box_outside_image", None),
        (_box(90, 70, 120, 95), "box_outside_image", _box(90, 70, 100, 80)),
        (_box(50, 50, 51, 70), "tiny_box", None),
        (_box(5, 5, 25, 25), "duplicate_box", None),
    ],
)
def test_each_box_fault_is_reported_by_its_rule_alone(
    box: Box, rule: str, kept_box: Box | None
) -> None:
    good = _box(5, 5, 25, 26)
    candidates = [
        _candidate(1, boxes=[good, box]),
        _candidate(2, boxes=[_box(0, 0, 50, 50, label="damaged")]),
    ]

    cleaned = clean(candidates, Task.DETECTION, CLASSES, CleaningOptions())

    assert _found(cleaned.report) == {rule: ["img001"]}
    entry = next(e for e in cleaned.entries if e.image_id == "img001")
    assert entry.boxes == ([good, kept_box] if kept_box else [good])
    finding = cleaned.report.rule(rule).findings[0]
    assert finding.detail["box"] == 1
    assert finding.detail["action"] == ("clipped" if kept_box else "dropped")


def test_detection_images_without_boxes_are_flagged_and_kept() -> None:
    candidates = [
        _candidate(1, boxes=[_box(1, 1, 20, 20)]),
        _candidate(2, boxes=[]),
        _candidate(3, boxes=None),
    ]
    candidates.append(_candidate(4, boxes=[_box(1, 1, 20, 20, label="damaged")]))

    cleaned = clean(candidates, Task.DETECTION, CLASSES, CleaningOptions())

    assert _found(cleaned.report) == {"missing_boxes": ["img002", "img003"]}
    assert len(cleaned.entries) == 4


def test_class_balance_flags_missing_and_rare_classes() -> None:
    candidates = [_candidate(n, label="healthy") for n in range(1, 21)] + [
        _candidate(21, label="damaged")
    ]

    cleaned = clean(candidates, Task.CLASSIFICATION, [*CLASSES, "callus"], CleaningOptions())

    assert cleaned.report.rule("class_balance").found == ["damaged", "callus"]
    assert cleaned.report.images_per_class == {"healthy": 20, "damaged": 1, "callus": 0}


def test_look_alikes_share_a_split_and_a_leak_is_moved_and_reported() -> None:
    candidates = [
        _candidate(1, split=Split.TRAIN),
        _candidate(2, phash=_near(_phash(1), 2), split=Split.VAL),
        _candidate(3, phash=_near(_phash(1), 4)),
    ]

    cleaned = clean(candidates, Task.CLASSIFICATION, CLASSES, CleaningOptions())

    assert {entry.split for entry in cleaned.entries} == {Split.TRAIN}
    leakage = cleaned.report.rule("leakage")
    assert leakage.found == ["img002"]
    assert leakage.findings[0].detail == {
        "near": "img001",
        "from_split": "val",
        "to_split": "train",
        "action": "moved",
    }


def test_an_image_keeps_its_split_as_the_dataset_grows() -> None:
    first = [_candidate(n) for n in range(1, 41)]
    before = {
        e.image_id: e.split
        for e in clean(first, Task.CLASSIFICATION, CLASSES, CleaningOptions()).entries
    }

    grown = [_candidate(n, parent=before[f"img{n:03d}"]) for n in range(1, 41)]
    grown += [_candidate(n) for n in range(41, 81)]
    grown.append(_candidate(81, phash=_near(_phash(7), 3)))
    after = {
        e.image_id: e.split
        for e in clean(grown, Task.CLASSIFICATION, CLASSES, CleaningOptions()).entries
    }

    assert {image_id: after[image_id] for image_id in before} == before
    assert after["img081"] is before["img007"]
    assert set(after.values()) == set(Split)


def test_hashed_splits_follow_the_ratios() -> None:
    ratios = {Split.TRAIN: 0.8, Split.VAL: 0.1, Split.TEST: 0.1}
    splits = [hashed_split(f"image-{n}", ratios) for n in range(2000)]

    assert 0.75 < splits.count(Split.TRAIN) / 2000 < 0.85
    assert hashed_split("image-1", ratios) is splits[1]


def test_every_rule_appears_in_the_report_in_order() -> None:
    cleaned = clean([_candidate(1)], Task.CLASSIFICATION, CLASSES, CleaningOptions())

    assert [rule.rule for rule in cleaned.report.rules] == list(RULES)
