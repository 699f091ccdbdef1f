"""What changed between two versions of a dataset: images added, removed, relabelled, moved."""

from __future__ import annotations

from pydantic import BaseModel

from stek.datasets.manifest import Box, ManifestEntry, Split, read_manifest
from stek.datasets.versions import ready_version
from stek.services import Services


class Relabelled(BaseModel):
    image_id: str
    label_before: str | None
    label_after: str | None
    boxes_before: list[Box]
    boxes_after: list[Box]


class Moved(BaseModel):
    image_id: str
    split_before: Split
    split_after: Split


class VersionDiff(BaseModel):
    dataset_id: str
    from_version: int
    to_version: int
    added: list[str]
    removed: list[str]
    relabelled: list[Relabelled]
    moved: list[Moved]
    unchanged: int


def diff_versions(
    svc: Services, tenant: str, dataset_id: str, from_version: int, to_version: int
) -> VersionDiff:
    before = _entries(svc, tenant, dataset_id, from_version)
    after = _entries(svc, tenant, dataset_id, to_version)
    return diff_entries(dataset_id, from_version, to_version, before, after)


def diff_entries(
    dataset_id: str,
    from_version: int,
    to_version: int,
    before: dict[str, ManifestEntry],
    after: dict[str, ManifestEntry],
) -> VersionDiff:
    both = sorted(before.keys() & after.keys())
    relabelled = [
        Relabelled(
            image_id=image_id,
            label_before=before[image_id].label,
            label_after=after[image_id].label,
            boxes_before=before[image_id].boxes,
            boxes_after=after[image_id].boxes,
        )
        for image_id in both
        if (before[image_id].label, before[image_id].boxes)
        != (after[image_id].label, after[image_id].boxes)
    ]
    moved = [
        Moved(
            image_id=image_id,
            split_before=before[image_id].split,
            split_after=after[image_id].split,
        )
        for image_id in both
        if before[image_id].split is not after[image_id].split
    ]
    changed = {r.image_id for r in relabelled} | {m.image_id for m in moved}
    return VersionDiff(
        dataset_id=dataset_id,
        from_version=from_version,
        to_version=to_version,
        added=sorted(after.keys() - before.keys()),
        removed=sorted(before.keys() - after.keys()),
        relabelled=relabelled,
        moved=moved,
        unchanged=len([image_id for image_id in both if image_id not in changed]),
    )


def _entries(svc: Services, tenant: str, dataset_id: str, version: int) -> dict[str, ManifestEntry]:
    summary = ready_version(svc, tenant, dataset_id, version)
    return {entry.image_id: entry for entry in read_manifest(svc.s3, summary)}
