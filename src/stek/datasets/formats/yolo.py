"""YOLO: `data.yaml` with the class names, `images/{split}/x.jpg` and `labels/{split}/x.txt`.

A label file has one line per box, `class cx cy w h`, as fractions of the image size. A
classification dataset uses the folder layout `{split}/{class}/x.jpg` (with a data.yaml
naming the classes, so their order survives a round trip).
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import yaml

from stek.datasets.formats import (
    AnnotatedImage,
    Annotations,
    ExportFiles,
    FileTree,
    ImageReader,
    export_name,
    is_image,
    split_named,
)
from stek.datasets.manifest import Box, ManifestEntry, Split, Task
from stek.errors import InvalidInput


def read(tree: FileTree, task: Task) -> Annotations:
    paths = tree.paths()
    config_path = _data_yaml(paths)
    root = str(PurePosixPath(config_path).parent) if config_path and "/" in config_path else ""
    classes = _class_names(tree, config_path) if config_path else []
    images = [path for path in paths if is_image(path)]
    if task is Task.CLASSIFICATION:
        return _classification(images, root, classes)
    if config_path is None:
        raise InvalidInput("a YOLO detection import needs a data.yaml with the class names")
    available = set(paths)
    annotated = [_detection_image(tree, path, classes, available) for path in images]
    return Annotations(classes=classes, images=annotated)


def _data_yaml(paths: list[str]) -> str | None:
    found = sorted(
        (p for p in paths if PurePosixPath(p).name.lower() in ("data.yaml", "data.yml")), key=len
    )
    return found[0] if found else None


def _class_names(tree: FileTree, config_path: str) -> list[str]:
    try:
        config = yaml.safe_load(tree.read(config_path))
    except yaml.YAMLError as error:
        raise InvalidInput(f"{config_path} is not valid YAML: {error}") from error
    names: Any = config.get("names") if isinstance(config, dict) else None
    if isinstance(names, dict):
        return [str(names[k]) for k in sorted(names, key=int)]
    if isinstance(names, list):
        return [str(name) for name in names]
    raise InvalidInput(f"{config_path} has no 'names' list of classes")


def _detection_image(
    tree: FileTree, path: str, classes: list[str], available: set[str]
) -> AnnotatedImage:
    parts = PurePosixPath(path).parts
    split = next((s for part in parts[:-1] if (s := split_named(part))), None)
    if "images" in parts:
        at = len(parts) - 1 - parts[::-1].index("images")
        label_path = str(PurePosixPath(*parts[:at], "labels", *parts[at + 1 :]).with_suffix(".txt"))
    else:
        label_path = str(PurePosixPath(path).with_suffix(".txt"))
    boxes = (
        _boxes(tree.read(label_path).decode(), classes, label_path)
        if label_path in available
        else []
    )
    return AnnotatedImage(path=path, split=split, boxes=boxes, normalised=True)


def _boxes(text: str, classes: list[str], label_path: str) -> list[Box]:
    boxes = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            index, cx, cy, w, h = int(fields[0]), *map(float, fields[1:5])
        except (ValueError, TypeError) as error:
            raise InvalidInput(f"{label_path} line {number} is not 'class cx cy w h'") from error
        label = classes[index] if 0 <= index < len(classes) else f"class {index}"
        boxes.append(Box(label=label, x1=cx - w / 2, y1=cy - h / 2, x2=cx + w / 2, y2=cy + h / 2))
    return boxes


def _classification(images: list[str], root: str, classes: list[str]) -> Annotations:
    annotated = []
    for path in images:
        relative = PurePosixPath(path).relative_to(root) if root else PurePosixPath(path)
        folders = relative.parts[:-1]
        if not folders:
            raise InvalidInput(
                f"{path}: a YOLO classification import keeps images in {{split}}/{{class}}/"
            )
        label = folders[-1]
        split = split_named(folders[0]) if len(folders) > 1 else None
        annotated.append(AnnotatedImage(path=path, split=split, label=label))
        if label not in classes:
            classes.append(label)
    return Annotations(classes=classes, images=annotated)


def write(
    entries: list[ManifestEntry], classes: list[str], task: Task, read_image: ImageReader
) -> ExportFiles:
    splits = [split for split in Split if any(entry.split is split for entry in entries)]
    config: dict[str, Any] = {"path": ".", "nc": len(classes), "names": list(classes)}
    for split in splits:
        config[split.value] = f"images/{split.value}" if task is Task.DETECTION else split.value
    yield "data.yaml", yaml.safe_dump(config, sort_keys=False).encode()
    index_of = {name: number for number, name in enumerate(classes)}
    for entry in entries:
        name = export_name(entry)
        if task is Task.CLASSIFICATION:
            yield f"{entry.split.value}/{entry.label}/{name}", read_image(entry)
            continue
        yield f"images/{entry.split.value}/{name}", read_image(entry)
        lines = [_line(box, index_of[box.label], entry.width, entry.height) for box in entry.boxes]
        yield f"labels/{entry.split.value}/{PurePosixPath(name).stem}.txt", "".join(lines).encode()


def _line(box: Box, index: int, width: int, height: int) -> str:
    cx, cy = (box.x1 + box.x2) / 2 / width, (box.y1 + box.y2) / 2 / height
    w, h = (box.x2 - box.x1) / width, (box.y2 - box.y1) / height
    return f"{index} {cx:.10f} {cy:.10f} {w:.10f} {h:.10f}\n"
