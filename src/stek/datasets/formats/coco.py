"""COCO JSON: `annotations/instances_{split}.json` with images under `images/{split}/`.

Detection annotations carry `bbox` = [x, y, width, height] in pixels; a classification
dataset is written as one annotation per image with a `category_id` and no `bbox`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import PurePosixPath
from typing import Any

from stek.datasets.formats import (
    AnnotatedImage,
    Annotations,
    ExportFiles,
    FileTree,
    ImageReader,
    export_name,
    find_image,
    images_by_name,
    rounded,
    split_named,
)
from stek.datasets.manifest import Box, ManifestEntry, Split, Task
from stek.errors import InvalidInput


def read(tree: FileTree, task: Task) -> Annotations:
    paths = tree.paths()
    index = images_by_name(paths)
    classes: list[str] = []
    images: list[AnnotatedImage] = []
    documents = [path for path in paths if path.lower().endswith(".json")]
    for path in documents:
        document = _document(tree, path)
        if document is None:
            continue
        categories = {int(c["id"]): str(c["name"]) for c in document.get("categories", [])}
        classes.extend(name for name in categories.values() if name not in classes)
        split = split_named(PurePosixPath(path).stem)
        images.extend(_images(document, categories, split, index, path, task))
    if not documents or (not images and not classes):
        raise InvalidInput(
            "no COCO annotation file (a .json with 'images' and 'annotations') was found"
        )
    return Annotations(classes=classes, images=images)


def _document(tree: FileTree, path: str) -> dict[str, Any] | None:
    try:
        document = json.loads(tree.read(path))
    except ValueError as error:
        raise InvalidInput(f"{path} is not valid JSON: {error}") from error
    if not isinstance(document, dict) or "images" not in document:
        return None
    return document


def _images(
    document: dict[str, Any],
    categories: dict[int, str],
    split: Split | None,
    index: dict[str, list[str]],
    document_path: str,
    task: Task,
) -> list[AnnotatedImage]:
    by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for annotation in document.get("annotations", []):
        by_image[int(annotation["image_id"])].append(annotation)
    images = []
    for image in document["images"]:
        file_name = str(image["file_name"])
        path = find_image(index, f"images/{split.value}" if split else "", file_name)
        if path is None:
            raise InvalidInput(
                f"{document_path} names image {file_name!r}, which is not in the import"
            )
        annotations = by_image.get(int(image["id"]), [])
        images.append(_annotated(path, split, annotations, categories, task))
    return images


def _annotated(
    path: str,
    split: Split | None,
    annotations: list[dict[str, Any]],
    categories: dict[int, str],
    task: Task,
) -> AnnotatedImage:
    def name(annotation: dict[str, Any]) -> str:
        category = int(annotation["category_id"])
        return categories.get(category, f"category {category}")

    if task is Task.CLASSIFICATION:
        label = name(annotations[0]) if annotations else None
        return AnnotatedImage(path=path, split=split, label=label)
    boxes = [
        Box(label=name(a), x1=rounded(x), y1=rounded(y), x2=rounded(x + w), y2=rounded(y + h))
        for a in annotations
        if "bbox" in a
        for x, y, w, h in [a["bbox"]]
    ]
    return AnnotatedImage(path=path, split=split, boxes=boxes)


def write(
    entries: list[ManifestEntry], classes: list[str], task: Task, read_image: ImageReader
) -> ExportFiles:
    category_of = {name: number for number, name in enumerate(classes, start=1)}
    for split in Split:
        members = [entry for entry in entries if entry.split is split]
        if not members:
            continue
        document: dict[str, Any] = {
            "info": {"description": f"stek export, {split.value} split"},
            "images": [],
            "annotations": [],
            "categories": [{"id": number, "name": name} for name, number in category_of.items()],
        }
        for number, entry in enumerate(members, start=1):
            file_name = export_name(entry)
            document["images"].append(
                {"id": number, "file_name": file_name, "width": entry.width, "height": entry.height}
            )
            document["annotations"].extend(
                _annotations(entry, number, category_of, task, len(document["annotations"]))
            )
            yield f"images/{split.value}/{file_name}", read_image(entry)
        yield f"annotations/instances_{split.value}.json", json.dumps(document, indent=1).encode()


def _annotations(
    entry: ManifestEntry, image_number: int, category_of: dict[str, int], task: Task, written: int
) -> list[dict[str, Any]]:
    if task is Task.CLASSIFICATION:
        if entry.label is None:
            return []
        return [
            {"id": written + 1, "image_id": image_number, "category_id": category_of[entry.label]}
        ]
    return [
        {
            "id": written + offset,
            "image_id": image_number,
            "category_id": category_of[box.label],
            "bbox": [box.x1, box.y1, rounded(box.x2 - box.x1), rounded(box.y2 - box.y1)],
            "area": rounded((box.x2 - box.x1) * (box.y2 - box.y1)),
            "iscrowd": 0,
        }
        for offset, box in enumerate(entry.boxes, start=1)
    ]
