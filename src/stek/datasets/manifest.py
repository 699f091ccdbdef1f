"""The frozen form of a dataset version, shared by the clean function, the runner and the registry.

A version's manifest is JSON Lines in the artifacts bucket, one `ManifestEntry` per image, at
`{tenant}/datasets/{dataset_id}/versions/{version}/manifest-{sha256}.jsonl` (content-addressed).
Its `VersionSummary` lives in the catalog table under
`pk` = `T#{tenant}#DATASET#{dataset_id}`, `sk` = `VERSION#{version:06d}`, attribute `summary`
(the JSON of the model below).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from stek.errors import NotFound


class Task(StrEnum):
    CLASSIFICATION = "classification"
    DETECTION = "detection"


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


class VersionStatus(StrEnum):
    BUILDING = "BUILDING"
    READY = "READY"
    FAILED = "FAILED"


class Box(BaseModel):
    """An object in an image: its class name and corners in pixels (x1, y1, x2, y2)."""

    label: str
    x1: float
    y1: float
    x2: float
    y2: float


class ManifestEntry(BaseModel):
    """One image of a version, where to read it, its split and its labels."""

    image_id: str
    bucket: str
    key: str
    sha256: str
    width: int
    height: int
    split: Split
    label: str | None = None  # classification
    boxes: list[Box] = Field(default_factory=list)  # detection


class VersionSummary(BaseModel):
    """What a version is, without reading its manifest."""

    tenant: str
    dataset_id: str
    version: int
    task: Task
    classes: list[str]
    status: VersionStatus
    manifest_bucket: str = ""
    manifest_key: str = ""
    manifest_sha256: str = ""
    parent_version: int | None = None
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)  # split -> class -> images
    report_key: str = ""
    progress: float = 0.0
    error: str | None = None
    created_at: datetime | None = None

    @property
    def frozen(self) -> bool:
        return self.status is VersionStatus.READY


def version_item_key(tenant: str, dataset_id: str, version: int) -> dict[str, dict[str, str]]:
    return {"pk": {"S": f"T#{tenant}#DATASET#{dataset_id}"}, "sk": {"S": f"VERSION#{version:06d}"}}


def get_version(
    dynamodb: Any, table: str, tenant: str, dataset_id: str, version: int
) -> VersionSummary:
    """The summary of one version of a tenant's dataset."""
    item = dynamodb.get_item(
        TableName=table, Key=version_item_key(tenant, dataset_id, version)
    ).get("Item")
    if not item:
        raise NotFound(f"dataset {dataset_id} has no version {version}")
    return VersionSummary.model_validate_json(item["summary"]["S"])


def encode_manifest(entries: list[ManifestEntry]) -> tuple[bytes, str]:
    """JSON Lines, sorted by image id so the same content always gives the same bytes."""
    lines = [entry.model_dump_json() for entry in sorted(entries, key=lambda e: e.image_id)]
    body = ("\n".join(lines) + "\n").encode() if lines else b""
    return body, hashlib.sha256(body).hexdigest()


def decode_manifest(body: bytes) -> list[ManifestEntry]:
    return [
        ManifestEntry.model_validate(json.loads(line)) for line in body.splitlines() if line.strip()
    ]


def read_manifest(s3: Any, summary: VersionSummary) -> list[ManifestEntry]:
    """Every entry of a frozen version."""
    answer = s3.get_object(Bucket=summary.manifest_bucket, Key=summary.manifest_key)
    return decode_manifest(answer["Body"].read())
