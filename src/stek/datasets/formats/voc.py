"""Pascal VOC: `Annotations/x.xml`, `JPEGImages/x.jpg`, `ImageSets/Main/{split}.txt`.

Corners are written as they are in the version (pixels, not shifted to VOC's 1-based
convention), so a round trip keeps them exact. `labels.txt` keeps the order of the classes.
A classification dataset is written as one `<object>` per image with a name and no box.
The XML is parsed with the standard library, whose expat refuses entity expansion bombs.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import PurePosixPath

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
    splits = _split_lists(tree, paths)
    classes = _listed_classes(tree, paths)
    images = []
    for path in sorted(p for p in paths if p.lower().endswith(".xml")):
        image = _annotated(tree, path, index, task)
        image.split = splits.get(PurePosixPath(path).stem)
        images.append(image)
        names = [box.label for box in image.boxes] + ([image.label] if image.label else [])
        classes.extend(name for name in names if name not in classes)
    if not images:
        raise InvalidInput("no Pascal VOC annotation (.xml) was found in the import")
    return Annotations(classes=classes, images=images)


def _split_lists(tree: FileTree, paths: list[str]) -> dict[str, Split]:
    splits: dict[str, Split] = {}
    for path in paths:
        pure = PurePosixPath(path)
        if pure.parent.name != "Main" or pure.suffix != ".txt" or "_" in pure.stem:
            continue
        split = split_named(pure.stem)
        if split is None or pure.stem.startswith("trainval"):
            continue
        for line in tree.read(path).decode().splitlines():
            if line.strip():
                splits[line.split()[0]] = split
    return splits


def _listed_classes(tree: FileTree, paths: list[str]) -> list[str]:
    listed = sorted((p for p in paths if PurePosixPath(p).name == "labels.txt"), key=len)
    if not listed:
        return []
    return [line.strip() for line in tree.read(listed[0]).decode().splitlines() if line.strip()]


def _annotated(
    tree: FileTree, path: str, index: dict[str, list[str]], task: Task
) -> AnnotatedImage:
    document = tree.read(path)
    if b"<!DOCTYPE" in document or b"<!ENTITY" in document:
        # VOC needs no DTD; refusing one rules out entity tricks before expat sees them.
        raise InvalidInput(f"{path} declares a DTD or entities; VOC annotations need neither")
    try:
        root = ElementTree.fromstring(document)  # noqa: S314 - DTDs refused above
    except ElementTree.ParseError as error:
        raise InvalidInput(f"{path} is not valid XML: {error}") from error
    file_name = root.findtext("filename") or ""
    image_path = find_image(index, str(PurePosixPath(path).parent.parent / "JPEGImages"), file_name)
    if image_path is None:
        raise InvalidInput(f"{path} names image {file_name!r}, which is not in the import")
    names, boxes = [], []
    for found in root.iter("object"):
        name = (found.findtext("name") or "").strip()
        names.append(name)
        corners = found.find("bndbox")
        if corners is not None:
            boxes.append(
                Box(
                    label=name,
                    **{k: _coordinate(corners, k, path) for k in ("x1", "y1", "x2", "y2")},
                )
            )
    if task is Task.CLASSIFICATION:
        return AnnotatedImage(path=image_path, label=names[0] if names else None)
    return AnnotatedImage(path=image_path, boxes=boxes)


_CORNER_TAGS = {"x1": "xmin", "y1": "ymin", "x2": "xmax", "y2": "ymax"}


def _coordinate(corners: ElementTree.Element, corner: str, path: str) -> float:
    text = corners.findtext(_CORNER_TAGS[corner])
    try:
        return rounded(float(text or ""))
    except ValueError as error:
        raise InvalidInput(f"{path}: <{_CORNER_TAGS[corner]}> is not a number") from error


def write(
    entries: list[ManifestEntry], classes: list[str], task: Task, read_image: ImageReader
) -> ExportFiles:
    yield "labels.txt", "".join(f"{name}\n" for name in classes).encode()
    for split in Split:
        stems = [entry.image_id for entry in entries if entry.split is split]
        if stems:
            yield (
                f"ImageSets/Main/{split.value}.txt",
                "".join(f"{stem}\n" for stem in stems).encode(),
            )
    for entry in entries:
        name = export_name(entry)
        yield f"JPEGImages/{name}", read_image(entry)
        yield f"Annotations/{entry.image_id}.xml", _document(entry, name, task)


def _document(entry: ManifestEntry, file_name: str, task: Task) -> bytes:
    root = ElementTree.Element("annotation")
    ElementTree.SubElement(root, "folder").text = "JPEGImages"
    ElementTree.SubElement(root, "filename").text = file_name
    size = ElementTree.SubElement(root, "size")
    for tag, value in (("width", entry.width), ("height", entry.height), ("depth", 3)):
        ElementTree.SubElement(size, tag).text = str(value)
    if task is Task.CLASSIFICATION and entry.label is not None:
        ElementTree.SubElement(ElementTree.SubElement(root, "object"), "name").text = entry.label
    for box in entry.boxes:
        found = ElementTree.SubElement(root, "object")
        ElementTree.SubElement(found, "name").text = box.label
        ElementTree.SubElement(found, "difficult").text = "0"
        corners = ElementTree.SubElement(found, "bndbox")
        for corner, tag in _CORNER_TAGS.items():
            ElementTree.SubElement(corners, tag).text = _number(getattr(box, corner))
    return ElementTree.tostring(root, encoding="utf-8", xml_declaration=True)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
