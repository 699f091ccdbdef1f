"""Annotation formats stek reads and writes: COCO JSON, YOLO (labels + data.yaml), Pascal VOC XML.

Every reader turns a file tree into `Annotations` (images by path, each with its split,
label or boxes); every writer turns a frozen version into the files of a zip. Boxes are in
pixels (x1, y1, x2, y2) everywhere but YOLO, whose normalised boxes the importer scales once
it knows the image's size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Protocol

from pydantic import BaseModel

from stek.datasets.manifest import Box, ManifestEntry, Split, Task

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"})
_SPLIT_NAMES = {
    "train": Split.TRAIN,
    "val": Split.VAL,
    "valid": Split.VAL,
    "validation": Split.VAL,
    "test": Split.TEST,
}


class Format(StrEnum):
    COCO = "coco"
    YOLO = "yolo"
    VOC = "voc"


class AnnotatedImage(BaseModel):
    """One image of an annotated source: where it is in the tree and what it shows."""

    path: str
    split: Split | None = None
    label: str | None = None
    boxes: list[Box] = []
    normalised: bool = False  # boxes are fractions of the image size (YOLO)


class Annotations(BaseModel):
    classes: list[str]
    images: list[AnnotatedImage]


class FileTree(Protocol):
    """The files of an import: relative POSIX paths, already checked to stay inside."""

    def paths(self) -> list[str]: ...

    def read(self, path: str) -> bytes: ...


ImageReader = Callable[[ManifestEntry], bytes]
ExportFiles = Iterator[tuple[str, bytes]]


def split_named(name: str) -> Split | None:
    """The split a file or folder name stands for: instances_val2017.json, valid, test."""
    lowered = name.lower()
    for word, split in _SPLIT_NAMES.items():
        if (
            lowered == word
            or lowered.startswith(word)
            or f"_{word}" in lowered
            or f"-{word}" in lowered
        ):
            return split
    return None


def is_image(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() in IMAGE_SUFFIXES


def export_name(entry: ManifestEntry) -> str:
    """The file name of an image in an export: its id, with the suffix it was uploaded with."""
    suffix = PurePosixPath(entry.key).suffix.lower()
    return f"{entry.image_id}{suffix if suffix in IMAGE_SUFFIXES else '.jpg'}"


def find_image(tree_paths: dict[str, list[str]], near: str, file_name: str) -> str | None:
    """The image a label file names: the only one of that name, or the one under `near`."""
    candidates = tree_paths.get(PurePosixPath(file_name).name.lower(), [])
    if len(candidates) == 1:
        return candidates[0]
    wanted = str(PurePosixPath(near) / file_name) if near else file_name
    for candidate in candidates:
        if candidate == wanted or candidate.endswith("/" + file_name.lstrip("/")):
            return candidate
    return None


def images_by_name(paths: list[str]) -> dict[str, list[str]]:
    index: dict[str, list[str]] = {}
    for path in paths:
        if is_image(path):
            index.setdefault(PurePosixPath(path).name.lower(), []).append(path)
    return index


def rounded(value: float) -> float:
    """Box corners to a thousandth of a pixel, so a write and a read give the same numbers."""
    return round(float(value), 3)


def read_annotations(fmt: Format, tree: FileTree, task: Task) -> Annotations:
    from stek.datasets.formats import coco, voc, yolo

    readers = {Format.COCO: coco.read, Format.YOLO: yolo.read, Format.VOC: voc.read}
    return readers[fmt](tree, task)


def write_export(
    fmt: Format,
    entries: list[ManifestEntry],
    classes: list[str],
    task: Task,
    read_image: ImageReader,
) -> ExportFiles:
    from stek.datasets.formats import coco, voc, yolo

    writers = {Format.COCO: coco.write, Format.YOLO: yolo.write, Format.VOC: voc.write}
    return writers[fmt](entries, classes, task, read_image)
