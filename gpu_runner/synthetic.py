"""Small synthetic dataset versions, to check a runner host end to end without real images.

Cuttings are drawn as coloured blobs on a noisy tray-grey background: in classification
the colour of the one cutting is its class ("healthy" green, "wilted" brown, ...); in
detection every cutting gets a box labelled with its class. Both are learnable in a minute
on a CPU, which is the point: a model that does not clearly beat chance here is broken.

    python -m gpu_runner.synthetic --tenant demo --dataset-id synthetic-cls --task classification
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
from datetime import UTC, datetime
from typing import Any

from PIL import Image, ImageDraw

from stek.datasets.manifest import (
    Box,
    ManifestEntry,
    Split,
    Task,
    VersionStatus,
    VersionSummary,
    encode_manifest,
    version_item_key,
)
from stek.settings import Settings

COLOURS = {
    "healthy": (40, 170, 60),
    "wilted": (150, 100, 40),
    "rooted": (230, 230, 230),
    "diseased": (180, 40, 160),
}


def draw_cutting(
    canvas: ImageDraw.ImageDraw, colour: tuple[int, int, int], box: tuple[int, int, int, int]
) -> None:
    canvas.ellipse(box, fill=colour)


def synthetic_image(
    task: Task, classes: list[str], size: tuple[int, int], rng: random.Random
) -> tuple[bytes, str | None, list[Box]]:
    """One JPEG and its labels: a class name, or boxes."""
    width, height = size
    image = Image.new("RGB", size, (110, 110, 105))
    noise = Image.effect_noise(size, 24).convert("RGB")
    image = Image.blend(image, noise, 0.25)
    canvas = ImageDraw.Draw(image)
    label: str | None = None
    boxes: list[Box] = []
    count = 1 if task is Task.CLASSIFICATION else rng.randint(1, 3)
    for _ in range(count):
        name = rng.choice(classes)
        side = rng.randint(min(size) // 4, min(size) // 2)
        x1, y1 = rng.randint(0, width - side), rng.randint(0, height - side)
        stretch = rng.randint(side // 2, side)
        corners = (x1, y1, x1 + side, y1 + stretch)
        draw_cutting(canvas, COLOURS[name], corners)
        label = name
        boxes.append(Box(label=name, x1=corners[0], y1=corners[1], x2=corners[2], y2=corners[3]))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), label if task is Task.CLASSIFICATION else None, boxes


def make_version(
    s3: Any,
    dynamodb: Any,
    settings: Settings,
    *,
    tenant: str,
    dataset_id: str,
    task: Task,
    images: int = 200,
    size: tuple[int, int] = (128, 128),
    classes: list[str] | None = None,
    version: int = 1,
    seed: int = 0,
    val_fraction: float = 0.25,
    status: VersionStatus = VersionStatus.READY,
) -> VersionSummary:
    """Write images to the raw bucket, a manifest to the artifacts bucket, and the summary."""
    rng = random.Random(seed)
    classes = classes or ["healthy", "wilted"]
    entries: list[ManifestEntry] = []
    for number in range(images):
        body, label, boxes = synthetic_image(task, classes, size, rng)
        key = f"{tenant}/synthetic/{dataset_id}/{number:05d}.jpg"
        s3.put_object(Bucket=settings.raw_bucket, Key=key, Body=body, ContentType="image/jpeg")
        split = Split.VAL if number % round(1 / val_fraction) == 0 else Split.TRAIN
        entries.append(
            ManifestEntry(
                image_id=f"{dataset_id}-{number:05d}",
                bucket=settings.raw_bucket,
                key=key,
                sha256=hashlib.sha256(body).hexdigest(),
                width=size[0],
                height=size[1],
                split=split,
                label=label,
                boxes=[] if task is Task.CLASSIFICATION else boxes,
            )
        )
    manifest, digest = encode_manifest(entries)
    manifest_key = f"{tenant}/datasets/{dataset_id}/versions/{version}/manifest-{digest}.jsonl"
    s3.put_object(Bucket=settings.artifacts_bucket, Key=manifest_key, Body=manifest)
    summary = VersionSummary(
        tenant=tenant,
        dataset_id=dataset_id,
        version=version,
        task=task,
        classes=classes,
        status=status,
        manifest_bucket=settings.artifacts_bucket,
        manifest_key=manifest_key,
        manifest_sha256=digest,
        counts=_counts(entries),
        progress=1.0,
        created_at=datetime.now(UTC),
    )
    dynamodb.put_item(
        TableName=settings.catalog_table,
        Item={
            **version_item_key(tenant, dataset_id, version),
            "summary": {"S": summary.model_dump_json()},
        },
    )
    return summary


def _counts(entries: list[ManifestEntry]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = {}
    for entry in entries:
        names = [entry.label] if entry.label else [box.label for box in entry.boxes]
        for name in names:
            split = counts.setdefault(entry.split.value, {})
            split[name] = split.get(name, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> None:
    from stek.services import services

    parser = argparse.ArgumentParser(description="Write a synthetic frozen dataset version.")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--dataset-id", required=True)
    parser.add_argument("--task", choices=[task.value for task in Task], required=True)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=128)
    arguments = parser.parse_args(argv)
    svc = services()
    summary = make_version(
        svc.s3,
        svc.dynamodb,
        svc.settings,
        tenant=arguments.tenant,
        dataset_id=arguments.dataset_id,
        task=Task(arguments.task),
        images=arguments.images,
        size=(arguments.size, arguments.size),
    )
    print(summary.model_dump_json(indent=2))


if __name__ == "__main__":
    main()
