"""Each format's writer and reader agree: what is written reads back as the same annotations."""

from __future__ import annotations

import pytest

from stek.datasets.formats import Format, read_annotations, split_named, write_export
from stek.datasets.manifest import Box, ManifestEntry, Split, Task
from stek.errors import InvalidInput

CLASSES = ["healthy", "damaged", "callus"]


class _MemoryTree:
    def __init__(self, files: dict[str, bytes]) -> None:
        self._files = files

    def paths(self) -> list[str]:
        return sorted(self._files)

    def read(self, path: str) -> bytes:
        return self._files[path]


def _entries(task: Task) -> list[ManifestEntry]:
    entries = []
    for number, split in enumerate([Split.TRAIN, Split.TRAIN, Split.VAL, Split.TEST]):
        boxes = [
            Box(label="healthy", x1=10.5, y1=12.25, x2=40.125, y2=50),
            Box(label="callus", x1=0, y1=0, x2=7, y2=9.5),
        ][: number % 3]
        entries.append(
            ManifestEntry(
                image_id=f"img{number}",
                bucket="raw",
                key=f"t/imports/x/IMG {number}.png",
                sha256=f"sha{number}",
                width=96,
                height=64,
                split=split,
                label=CLASSES[number % 3] if task is Task.CLASSIFICATION else None,
                boxes=boxes if task is Task.DETECTION else [],
            )
        )
    return entries


@pytest.mark.parametrize("task", list(Task))
@pytest.mark.parametrize("fmt", list(Format))
def test_written_annotations_read_back_the_same(fmt: Format, task: Task) -> None:
    entries = _entries(task)
    files = dict(write_export(fmt, entries, CLASSES, task, lambda entry: entry.sha256.encode()))

    annotations = read_annotations(fmt, _MemoryTree(files), task)

    assert annotations.classes == CLASSES
    by_content = {files[image.path].decode(): image for image in annotations.images}
    assert sorted(by_content) == sorted(entry.sha256 for entry in entries)
    for entry in entries:
        image = by_content[entry.sha256]
        assert image.split is entry.split
        assert image.label == entry.label
        boxes = image.boxes
        if image.normalised:
            boxes = [
                Box(
                    label=b.label,
                    x1=round(b.x1 * entry.width, 3),
                    y1=round(b.y1 * entry.height, 3),
                    x2=round(b.x2 * entry.width, 3),
                    y2=round(b.y2 * entry.height, 3),
                )
                for b in boxes
            ]
        assert boxes == entry.boxes


def test_coco_names_an_image_that_is_not_there() -> None:
    document = b'{"images": [{"id": 1, "file_name": "gone.jpg"}], "annotations": []}'

    with pytest.raises(InvalidInput, match=r"gone\.jpg"):
        read_annotations(
            Format.COCO, _MemoryTree({"instances_train.json": document}), Task.DETECTION
        )


def test_yolo_detection_needs_its_data_yaml() -> None:
    with pytest.raises(InvalidInput, match=r"data\.yaml"):
        read_annotations(Format.YOLO, _MemoryTree({"images/train/a.jpg": b"x"}), Task.DETECTION)


def test_voc_with_a_dtd_is_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xx">]><annotation></annotation>'

    with pytest.raises(InvalidInput, match="DTD"):
        read_annotations(
            Format.VOC,
            _MemoryTree({"Annotations/a.xml": bomb, "JPEGImages/a.jpg": b"x"}),
            Task.DETECTION,
        )


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("instances_train2017", Split.TRAIN),
        ("valid", Split.VAL),
        ("instances_val", Split.VAL),
        ("test", Split.TEST),
        ("images", None),
    ],
)
def test_split_names(name: str, split: Split | None) -> None:
    assert split_named(name) is split
