"""The runner's input pipeline: a content-addressed local cache, boxes that follow transforms,
and an epoch order every runner agrees on."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from gpu_runner import data
from stek.datasets.manifest import Box, ManifestEntry, Split, Task

pytestmark = pytest.mark.torch


class CountingS3:
    """An S3 stand-in that serves fixed objects and counts reads."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects, self.reads = objects, 0

    def get_object(self, **request: str) -> dict[str, Any]:
        self.reads += 1
        return {"Body": io.BytesIO(self.objects[request["Key"]])}


def _jpeg(size: tuple[int, int] = (64, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _entry(key: str, body: bytes, **labels: Any) -> ManifestEntry:
    return ManifestEntry(
        image_id=key,
        bucket="raw",
        key=key,
        sha256=hashlib.sha256(body).hexdigest(),
        width=64,
        height=32,
        split=Split.TRAIN,
        **labels,
    )


def test_the_cache_fetches_each_image_once(tmp_path: Path) -> None:
    body = _jpeg()
    s3 = CountingS3({"a.jpg": body, "b.jpg": body})
    entries = [_entry("a.jpg", body), _entry("b.jpg", body)]
    cache = data.ImageCache(s3, tmp_path)

    first = cache.warm(entries)
    second = cache.warm(entries)

    assert (first, second) == (1, 0)  # same content, one file
    assert cache.locate(entries[1]).read_bytes() == body
    assert s3.reads <= 2


def test_the_cache_refuses_an_image_that_changed_since_the_version_froze(tmp_path: Path) -> None:
    entry = _entry("a.jpg", _jpeg())
    cache = data.ImageCache(CountingS3({"a.jpg": _jpeg((10, 10))}), tmp_path)

    with pytest.raises(ValueError, match="changed since the version was frozen"):
        cache.locate(entry)
    assert not cache.path(entry).exists()


def test_detection_boxes_follow_the_resize(tmp_path: Path) -> None:
    body = _jpeg((64, 32))
    entry = _entry("a.jpg", body, boxes=[Box(label="wilted", x1=8, y1=4, x2=32, y2=16)])
    cache = data.ImageCache(CountingS3({"a.jpg": body}), tmp_path)
    dataset = data.ManifestDataset(
        [entry],
        ["healthy", "wilted"],
        Task.DETECTION,
        cache.locate,
        data.transforms(Task.DETECTION, 32, train=False, augment=False),
    )

    image, target = dataset[0]

    assert tuple(image.shape) == (3, 32, 32)
    assert target["boxes"].tolist() == [[4.0, 4.0, 16.0, 16.0]]
    assert target["labels"].tolist() == [2]


def test_classification_samples_are_normalised_with_class_indices(tmp_path: Path) -> None:
    body = _jpeg()
    cache = data.ImageCache(CountingS3({"a.jpg": body}), tmp_path)
    transform = data.transforms(Task.CLASSIFICATION, 32, train=True, augment=True)
    dataset = data.ManifestDataset(
        [_entry("a.jpg", body, label="wilted")],
        ["healthy", "wilted"],
        Task.CLASSIFICATION,
        cache.locate,
        transform,
    )

    image, label = dataset[0]

    assert (tuple(image.shape), image.dtype, label) == ((3, 32, 32), torch.float32, 1)


def test_epoch_order_is_shared_and_skips_what_was_trained() -> None:
    order = data.epoch_order(10, seed=4, epoch=2)

    assert order == data.epoch_order(10, seed=4, epoch=2)
    assert order != data.epoch_order(10, seed=4, epoch=3)
    assert sorted(order) == list(range(10))
    assert data.epoch_order(10, seed=4, epoch=2, skip=6) == order[6:]


def test_no_training_batch_holds_a_single_image(tmp_path: Path) -> None:
    body = _jpeg()
    cache = data.ImageCache(CountingS3({"a.jpg": body}), tmp_path)
    transform = data.transforms(Task.CLASSIFICATION, 32, train=False, augment=False)
    entries = [_entry("a.jpg", body, label="wilted")] * 5
    dataset = data.ManifestDataset(
        entries, ["healthy", "wilted"], Task.CLASSIFICATION, cache.locate, transform
    )

    training = data.loader(dataset, batch_size=4, workers=0, order=[0, 1, 2, 3, 4])
    evaluation = data.loader(dataset, batch_size=4, workers=0)

    assert [len(labels) for _, labels in training] == [4]
    assert [len(labels) for _, labels in evaluation] == [4, 1]
