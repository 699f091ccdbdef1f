"""A dataset version's manifest as PyTorch datasets, read through a local image cache.

Images are content-addressed (the manifest carries each one's SHA-256), so the cache keys
files by hash: a file in the cache is always the right one, whichever version or job asked
for it first. The whole version is fetched before the first epoch with a pool of threads;
from then on every epoch reads local files, which is what makes S3 as fast as local disk.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

from stek.datasets.manifest import ManifestEntry, Split, Task
from stek.modelcard import Normalisation

Locate = Callable[[ManifestEntry], Path]

IMAGENET = Normalisation()
# Detectors normalise inside the model, so they take plain [0, 1] pixels.
UNIT_SCALE = Normalisation(mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0])


class ImageCache:
    """Local copies of manifest images, fetched from S3 once and kept by content hash."""

    def __init__(self, s3: Any, directory: Path, *, threads: int = 16) -> None:
        self._s3 = s3
        self._directory = directory
        self._threads = threads
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, entry: ManifestEntry) -> Path:
        return self._directory / entry.sha256[:2] / entry.sha256

    def locate(self, entry: ManifestEntry) -> Path:
        """The local file of `entry`, downloaded first when the cache lacks it."""
        path = self.path(entry)
        if not path.exists():
            self._download(entry, path)
        return path

    def warm(self, entries: Iterable[ManifestEntry]) -> int:
        """Fetch every missing image in parallel; returns how many were downloaded."""
        # Keyed by hash: the same picture in two places of a manifest is fetched once.
        missing = list({e.sha256: e for e in entries if not self.path(e).exists()}.values())
        with ThreadPoolExecutor(max_workers=self._threads) as pool:
            list(pool.map(self.locate, missing))
        return len(missing)

    def _download(self, entry: ManifestEntry, path: Path) -> None:
        body = self._s3.get_object(Bucket=entry.bucket, Key=entry.key)["Body"].read()
        digest = hashlib.sha256(body).hexdigest()
        if entry.sha256 and digest != entry.sha256:
            raise ValueError(
                f"image {entry.image_id} at s3://{entry.bucket}/{entry.key} changed since the "
                "version was frozen (its SHA-256 differs from the manifest's)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed, so a runner killed mid-download leaves no torn file.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        with os.fdopen(handle, "wb") as stream:
            stream.write(body)
        os.replace(temporary, path)


class ManifestDataset(Dataset[tuple[torch.Tensor, Any]]):
    """The images of one split, decoded and transformed, with labels as model targets.

    Classification targets are class indices; detection targets are torchvision's
    `{"boxes": BoundingBoxes (xyxy pixels), "labels": class index + 1}` (0 is background).
    """

    def __init__(
        self,
        entries: Sequence[ManifestEntry],
        classes: list[str],
        task: Task,
        locate: Locate,
        transform: Callable[..., Any],
    ) -> None:
        self.entries = list(entries)
        self.index = {name: position for position, name in enumerate(classes)}
        self.task = task
        self.locate = locate
        self.transform = transform

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, Any]:
        entry = self.entries[position]
        image = tv_tensors.Image(decode_image(str(self.locate(entry)), mode=ImageReadMode.RGB))
        if self.task is Task.CLASSIFICATION:
            return self.transform(image), self.index[entry.label or ""]
        height, width = image.shape[-2:]
        boxes = tv_tensors.BoundingBoxes(
            [[box.x1, box.y1, box.x2, box.y2] for box in entry.boxes] or torch.zeros((0, 4)),
            format="XYXY",
            canvas_size=(height, width),
        )
        labels = torch.tensor([self.index[box.label] + 1 for box in entry.boxes], dtype=torch.int64)
        image, target = self.transform(image, {"boxes": boxes, "labels": labels})
        return image, target


def normalisation(task: Task) -> Normalisation:
    return IMAGENET if task is Task.CLASSIFICATION else UNIT_SCALE


def transforms(task: Task, image_size: int, *, train: bool, augment: bool) -> v2.Compose:
    """Decoding to a fixed square input; flips, crops and light colour changes when training.

    The colour changes are small on purpose: on a grading line colour often is the class.
    """
    steps: list[Any] = []
    if train and augment and task is Task.CLASSIFICATION:
        steps += [
            v2.RandomResizedCrop(image_size, scale=(0.7, 1.0), antialias=True),
            v2.RandomHorizontalFlip(),
        ]
    elif train and augment:
        steps += [v2.RandomHorizontalFlip(), v2.RandomZoomOut(fill=0, side_range=(1.0, 1.3), p=0.3)]
    if not (train and augment and task is Task.CLASSIFICATION):
        steps.append(v2.Resize((image_size, image_size), antialias=True))
    if train and augment:
        steps.append(v2.ColorJitter(brightness=0.15, contrast=0.15))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if task is Task.CLASSIFICATION:
        steps.append(v2.Normalize(mean=IMAGENET.mean, std=IMAGENET.std))
    else:
        steps += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=1.0)]
    return v2.Compose(steps)


def split_entries(entries: Iterable[ManifestEntry], split: Split) -> list[ManifestEntry]:
    return [entry for entry in entries if entry.split is split]


def epoch_order(size: int, seed: int, epoch: int, skip: int = 0) -> list[int]:
    """The shuffled order of one epoch, the same on every runner; `skip` drops the samples a
    previous runner already trained on before it was stopped."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(size, generator=generator).tolist()[skip:]


def loader(
    dataset: ManifestDataset,
    *,
    batch_size: int,
    workers: int,
    order: list[int] | None = None,
    pin_memory: bool = False,
) -> DataLoader[Any]:
    """Batches in `order` (or in manifest order when None, for evaluation)."""
    detection = dataset.task is Task.DETECTION
    if order is not None and len(order) > 1 and len(order) % batch_size == 1:
        # Batch norm cannot train on a batch of one; that sample waits for the next
        # epoch's shuffle instead of failing the job.
        order = order[:-1]
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=order if order is not None else range(len(dataset)),
        num_workers=workers,
        collate_fn=_detection_batch if detection else None,
        pin_memory=pin_memory,
        persistent_workers=False,
    )


def _detection_batch(
    samples: list[tuple[torch.Tensor, Any]],
) -> tuple[list[torch.Tensor], list[Any]]:
    images, targets = zip(*samples, strict=True)
    return list(images), list(targets)
