"""Cleaning a dataset into a version: each rule finds images, and drops or repairs what it must.

Rules run in this order, each on what the previous ones kept, so every fault is reported by
the one rule that explains it:

* unreadable: images not in the catalog, or rejected at ingest. Dropped.
* exact_duplicates: copies of an image (same sha256). One is kept, the copies dropped.
* near_duplicates: look-alikes within `near_duplicate_radius` pHash bits. Kept together in
  one split (dropped but one when `drop_near_duplicates`).
* leakage: images whose own split differs from their look-alikes'. Moved to the group's split.
* missing_label: classification images without a label. Dropped.
* unknown_class: a label or box naming a class the dataset lacks. The image (classification)
  or the box is dropped.
* zero_area_box: boxes with x2 <= x1 or y2 <= y1. Dropped.
* box_outside_image: boxes reaching past the image. Clipped; dropped when wholly outside.
* tiny_box: boxes under `min_box_size` pixels on a side (after clipping). Dropped.
* duplicate_box: a box of a class over another of that class (IoU >= `duplicate_box_iou`).
  The later one is dropped.
* missing_boxes: detection images without any box. Flagged, kept as background images.
* class_balance: classes with no images, or under `min_class_share` of the largest. Reported.

Within a group of copies or look-alikes the image kept as representative is the one that
was in the parent version, else the one added first (then the lowest id), so the choice is
deterministic and stable as the dataset grows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from stek.datasets.catalog import DatasetImage
from stek.datasets.manifest import Box, ManifestEntry, Split, Task
from stek.datasets.near_duplicates import (
    DEFAULT_RADIUS,
    MAX_RADIUS,
    clusters,
    hamming,
    near_duplicate_pairs,
    parse_hashes,
)
from stek.datasets.splits import SplitClaim, assign_splits
from stek.images.catalog import ImageRecord, ImageStatus

RULES = (
    "unreadable",
    "exact_duplicates",
    "near_duplicates",
    "leakage",
    "missing_label",
    "unknown_class",
    "zero_area_box",
    "box_outside_image",
    "tiny_box",
    "duplicate_box",
    "missing_boxes",
    "class_balance",
)


class CleaningOptions(BaseModel):
    near_duplicate_radius: int = Field(
        default=DEFAULT_RADIUS,
        ge=0,
        le=MAX_RADIUS,
        description=f"pHash bits (of 64) within which images look alike; default {DEFAULT_RADIUS}",
    )
    drop_near_duplicates: bool = Field(
        default=False, description="keep one image per group of look-alikes"
    )
    min_box_size: float = Field(
        default=2.0, ge=0, description="boxes thinner than this many pixels are degenerate"
    )
    duplicate_box_iou: float = Field(
        default=0.9, gt=0, le=1, description="same-class boxes overlapping this much are one"
    )
    min_class_share: float = Field(
        default=0.1, ge=0, le=1, description="flag classes under this share of the largest"
    )
    split_ratios: dict[Split, float] = Field(
        default_factory=lambda: {Split.TRAIN: 0.8, Split.VAL: 0.1, Split.TEST: 0.1},
        description="shares of new groups of images per split",
    )


class Finding(BaseModel):
    image_id: str
    detail: dict[str, Any] = Field(default_factory=dict)


class RuleReport(BaseModel):
    rule: str
    found: list[str] = Field(
        default_factory=list, description="image ids (class names for class_balance)"
    )
    dropped: list[str] = Field(
        default_factory=list, description="image ids left out of the version"
    )
    findings: list[Finding] = Field(default_factory=list)


class CleaningReport(BaseModel):
    options: CleaningOptions
    images_in: int
    images_out: int
    rules: list[RuleReport]
    images_per_class: dict[str, int] = Field(default_factory=dict)
    boxes_per_class: dict[str, int] = Field(default_factory=dict)

    def rule(self, name: str) -> RuleReport:
        return next(report for report in self.rules if report.rule == name)


@dataclass
class Candidate:
    """A dataset image with what the catalog knows about it."""

    image: DatasetImage
    record: ImageRecord | None
    parent_split: Split | None = None

    @property
    def image_id(self) -> str:
        return self.image.image_id

    def preference(self) -> tuple[bool, datetime, str]:
        return (self.parent_split is None, self.image.added_at, self.image_id)


@dataclass
class CleanedVersion:
    entries: list[ManifestEntry]
    report: CleaningReport


class _Reports:
    def __init__(self) -> None:
        self.by_rule = {rule: RuleReport(rule=rule) for rule in RULES}

    def find(self, rule: str, image_id: str, *, drop: bool = False, **detail: Any) -> None:
        report = self.by_rule[rule]
        if image_id not in report.found:
            report.found.append(image_id)
        if drop and image_id not in report.dropped:
            report.dropped.append(image_id)
        report.findings.append(Finding(image_id=image_id, detail=detail))


def clean(
    candidates: list[Candidate], task: Task, classes: list[str], options: CleaningOptions
) -> CleanedVersion:
    """The entries of a new version and the report of how they were cleaned."""
    reports = _Reports()
    readable = _readable(candidates, reports)
    originals = _without_exact_duplicates(readable, reports)
    groups = _look_alike_groups(originals, options, reports)
    splits = _splits(groups, options, reports)
    kept = [member for group in groups for member in group]
    entries = [
        entry
        for c in kept
        if (entry := _labelled_entry(c, splits[c.image_id], task, set(classes), options, reports))
    ]
    entries.sort(key=lambda entry: entry.image_id)
    report = CleaningReport(
        options=options,
        images_in=len(candidates),
        images_out=len(entries),
        rules=list(reports.by_rule.values()),
    )
    _class_balance(entries, task, classes, options, report)
    return CleanedVersion(entries=entries, report=report)


def _readable(candidates: list[Candidate], reports: _Reports) -> list[Candidate]:
    readable = []
    for candidate in candidates:
        record = candidate.record
        if record is None:
            reports.find("unreadable", candidate.image_id, drop=True, reason="not_in_catalog")
        elif record.status is ImageStatus.REJECTED:
            reports.find(
                "unreadable",
                candidate.image_id,
                drop=True,
                reason=record.reason,
                message=record.reason_detail,
            )
        elif not (record.sha256 and record.phash and record.width and record.height):
            reports.find("unreadable", candidate.image_id, drop=True, reason="not_inspected")
        else:
            readable.append(candidate)
    return readable


def _without_exact_duplicates(readable: list[Candidate], reports: _Reports) -> list[Candidate]:
    by_content: dict[str, list[Candidate]] = {}
    for candidate in readable:
        assert candidate.record is not None
        by_content.setdefault(candidate.record.sha256 or "", []).append(candidate)
    originals = []
    for copies in by_content.values():
        copies.sort(key=Candidate.preference)
        kept = copies[0]
        originals.append(kept)
        for copy in copies[1:]:
            relabelled = (copy.image.label, copy.image.boxes) != (
                kept.image.label,
                kept.image.boxes,
            )
            reports.find(
                "exact_duplicates",
                copy.image_id,
                drop=True,
                duplicate_of=kept.image_id,
                labels_differ=relabelled,
            )
    return originals


def _look_alike_groups(
    originals: list[Candidate], options: CleaningOptions, reports: _Reports
) -> list[list[Candidate]]:
    """Groups of look-alikes, representative first; single images are groups of one."""
    hashes = parse_hashes([c.record.phash or "0" for c in originals if c.record])
    pairs = near_duplicate_pairs(hashes, options.near_duplicate_radius)
    grouped: set[int] = set()
    groups = []
    for members in clusters(len(originals), pairs):
        grouped.update(members)
        group = sorted((originals[i] for i in members), key=Candidate.preference)
        groups.append(group)
        representative = group[0]
        for member in group[1:]:
            distance = hamming(
                _readable_record(member).phash or "0", _readable_record(representative).phash or "0"
            )
            reports.find(
                "near_duplicates",
                member.image_id,
                drop=options.drop_near_duplicates,
                near=representative.image_id,
                distance=distance,
            )
        if options.drop_near_duplicates:
            groups[-1] = [representative]
    groups.extend([candidate] for index, candidate in enumerate(originals) if index not in grouped)
    groups.sort(key=lambda group: group[0].image_id)
    return groups


def _splits(
    groups: list[list[Candidate]], options: CleaningOptions, reports: _Reports
) -> dict[str, Split]:
    claims = [
        [SplitClaim(c.image_id, c.parent_split, c.image.split) for c in group] for group in groups
    ]
    splits, moves = assign_splits(claims, options.split_ratios)
    for move in moves:
        reports.find(
            "leakage",
            move.image_id,
            near=move.representative,
            from_split=move.from_split.value,
            to_split=move.to_split.value,
            action="moved",
        )
    return splits


def _readable_record(candidate: Candidate) -> ImageRecord:
    # Only candidates that passed the unreadable rule get here: each has a record.
    if candidate.record is None:
        raise ValueError(f"image {candidate.image_id} has no catalog record")
    return candidate.record


def _labelled_entry(
    candidate: Candidate,
    split: Split,
    task: Task,
    classes: set[str],
    options: CleaningOptions,
    reports: _Reports,
) -> ManifestEntry | None:
    record = _readable_record(candidate)
    entry = ManifestEntry(
        image_id=candidate.image_id,
        bucket=record.bucket,
        key=record.key,
        sha256=record.sha256 or "",
        width=record.width or 0,
        height=record.height or 0,
        split=split,
    )
    if task is Task.CLASSIFICATION:
        label = candidate.image.label
        if label is None:
            reports.find("missing_label", candidate.image_id, drop=True)
            return None
        if label not in classes:
            reports.find("unknown_class", candidate.image_id, drop=True, label=label)
            return None
        entry.label = label
        return entry
    given = candidate.image.boxes or []
    if not given:
        reports.find("missing_boxes", candidate.image_id, action="kept as a background image")
    entry.boxes = _clean_boxes(
        candidate.image_id, given, entry.width, entry.height, classes, options, reports
    )
    return entry


def _clean_boxes(
    image_id: str,
    boxes: list[Box],
    width: int,
    height: int,
    classes: set[str],
    options: CleaningOptions,
    reports: _Reports,
) -> list[Box]:
    kept: list[Box] = []
    for index, box in enumerate(boxes):
        fault, repaired = _box_fault(box, width, height, classes, options, kept)
        if fault is None:
            kept.append(box)
            continue
        action = "clipped" if repaired is not None else "dropped"
        reports.find(
            fault,
            image_id,
            box=index,
            label=box.label,
            corners=[box.x1, box.y1, box.x2, box.y2],
            action=action,
        )
        if repaired is not None:
            kept.append(repaired)
    return kept


def _box_fault(
    box: Box, width: int, height: int, classes: set[str], options: CleaningOptions, kept: list[Box]
) -> tuple[str | None, Box | None]:
    """The rule a box breaks (if any) and, for a box partly outside, its clipped form."""
    if box.label not in classes:
        return "unknown_class", None
    if box.x2 <= box.x1 or box.y2 <= box.y1:
        return "zero_area_box", None
    clipped = Box(
        label=box.label,
        x1=max(box.x1, 0),
        y1=max(box.y1, 0),
        x2=min(box.x2, width),
        y2=min(box.y2, height),
    )
    if clipped.x2 <= clipped.x1 or clipped.y2 <= clipped.y1:
        return "box_outside_image", None
    if min(clipped.x2 - clipped.x1, clipped.y2 - clipped.y1) < options.min_box_size:
        return "tiny_box", None
    if any(
        other.label == box.label and _iou(other, clipped) >= options.duplicate_box_iou
        for other in kept
    ):
        return "duplicate_box", None
    if clipped != box:
        return "box_outside_image", clipped
    return None, None


def _iou(first: Box, second: Box) -> float:
    width = min(first.x2, second.x2) - max(first.x1, second.x1)
    height = min(first.y2, second.y2) - max(first.y1, second.y1)
    if width <= 0 or height <= 0:
        return 0.0
    overlap = width * height
    union = (
        (first.x2 - first.x1) * (first.y2 - first.y1)
        + (second.x2 - second.x1) * (second.y2 - second.y1)
        - overlap
    )
    return overlap / union


def _class_balance(
    entries: list[ManifestEntry],
    task: Task,
    classes: list[str],
    options: CleaningOptions,
    report: CleaningReport,
) -> None:
    images: Counter[str] = Counter()
    boxes: Counter[str] = Counter()
    for entry in entries:
        names = (
            [entry.label]
            if task is Task.CLASSIFICATION and entry.label
            else [box.label for box in entry.boxes]
        )
        images.update(set(names))
        boxes.update(names if task is Task.DETECTION else [])
    report.images_per_class = {name: images[name] for name in classes}
    report.boxes_per_class = (
        {name: boxes[name] for name in classes} if task is Task.DETECTION else {}
    )
    largest = max(images.values(), default=0)
    balance = report.rule("class_balance")
    for name in classes:
        if images[name] == 0 or images[name] < options.min_class_share * largest:
            balance.found.append(name)
            balance.findings.append(
                Finding(
                    image_id="",
                    detail={"class": name, "images": images[name], "largest_class_images": largest},
                )
            )


def counts_per_split(
    entries: list[ManifestEntry], task: Task, classes: list[str]
) -> dict[str, dict[str, int]]:
    """split -> class -> images showing it, for the version summary."""
    counts: dict[str, dict[str, int]] = {split.value: dict.fromkeys(classes, 0) for split in Split}
    for entry in entries:
        names = (
            {entry.label}
            if task is Task.CLASSIFICATION and entry.label
            else {box.label for box in entry.boxes}
        )
        for name in names:
            counts[entry.split.value][name] = counts[entry.split.value].get(name, 0) + 1
    return counts
