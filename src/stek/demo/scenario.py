"""What happens on the demo's day: which pictures the machines take, and which go wrong.

Every picture is synthetic TEST DATA from `stek.synth`, seeded, so two runs upload the same
bytes.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field

from stek.datasets.manifest import Box
from stek.synth import (
    CUTTING_CLASSES,
    bad_files,
    corrupt_boxes,
    encode_jpeg,
    generate_cuttings,
    generate_tray,
    near_duplicate,
)
from stek.synth.bad_labels import BoxDefect

TRAY_SIZE = (256, 256)
# The cleaning rule that must catch each kind of planted label fault.
RULE_OF_DEFECT = {
    BoxDefect.UNKNOWN_CLASS: "unknown_class",
    BoxDefect.OUTSIDE_IMAGE: "box_outside_image",
    BoxDefect.ZERO_AREA: "zero_area_box",
    BoxDefect.NEGATIVE_AREA: "zero_area_box",
    BoxDefect.TINY_BOX: "tiny_box",
    BoxDefect.DUPLICATE_BOX: "duplicate_box",
}
CUTTING_SIZE = 96


@dataclass(frozen=True)
class Scenario:
    """The size of the day and of the training runs."""

    cuttings: int  # close-ups machine-01 sends with a label (classification)
    labelled_trays: int  # trays a labelling tool annotated, imported as COCO (detection)
    line_trays: int  # trays machine-02 sends during the day, unlabelled
    exact_duplicates: int
    near_duplicates: int
    classification_epochs: int
    detection_epochs: int
    promotion_map_50: float  # the detection model needs this mAP@0.5 to become production
    bad_files: bool = True
    seed: int = 7

    @classmethod
    def full(cls, images: int = 240) -> Scenario:
        return cls(
            cuttings=images,
            labelled_trays=images // 2,
            line_trays=24,
            exact_duplicates=6,
            near_duplicates=6,
            classification_epochs=6,
            detection_epochs=30,
            promotion_map_50=0.2,
        )

    @classmethod
    def quick(cls) -> Scenario:
        return cls(
            cuttings=64,
            labelled_trays=24,
            line_trays=4,
            exact_duplicates=2,
            near_duplicates=2,
            classification_epochs=3,
            detection_epochs=3,
            promotion_map_50=0.0,
        )


@dataclass
class Upload:
    """One file a machine sends."""

    machine_id: str
    filename: str
    body: bytes
    content_type: str
    label: str | None = None
    tray: str | None = None
    planted: str = "clean"  # what the demo planted: clean, duplicate, near_duplicate, bad file name


@dataclass
class Day:
    uploads: list[Upload] = field(default_factory=list)
    coco_archive: bytes = b""
    planted_label_faults: dict[str, int] = field(default_factory=dict)  # cleaning rule -> count
    line_trays: list[Upload] = field(default_factory=list)


def plan_day(scenario: Scenario) -> Day:
    """Every file of the day, in the order the machines send them."""
    day = Day()
    cuttings = _cutting_uploads(scenario)
    day.uploads.extend(cuttings)
    day.uploads.extend(_duplicates(cuttings, scenario))
    day.line_trays = _line_trays(scenario)
    day.uploads.extend(day.line_trays)
    if scenario.bad_files:
        day.uploads.extend(_bad_uploads(scenario.seed))
    day.coco_archive, day.planted_label_faults = _coco_archive(scenario)
    return day


def _cutting_uploads(scenario: Scenario) -> list[Upload]:
    cuttings = generate_cuttings(scenario.seed, scenario.cuttings, size=CUTTING_SIZE, balanced=True)
    return [
        Upload(
            machine_id="machine-01",
            filename=f"cutting-{index:04d}.jpg",
            body=encode_jpeg(cutting.image),
            content_type="image/jpeg",
            label=cutting.label,
            tray=f"T{index // 24:03d}",
        )
        for index, cutting in enumerate(cuttings)
    ]


def _duplicates(cuttings: list[Upload], scenario: Scenario) -> list[Upload]:
    from PIL import Image

    planted = []
    for n in range(scenario.exact_duplicates):
        original = cuttings[n * 3]
        planted.append(
            Upload(
                original.machine_id,
                f"resend-{n:02d}.jpg",
                original.body,
                original.content_type,
                original.label,
                original.tray,
                "duplicate",
            )
        )
    for n in range(scenario.near_duplicates):
        original = cuttings[n * 3 + 1]
        look_alike = near_duplicate(Image.open(io.BytesIO(original.body)), seed=n)
        planted.append(
            Upload(
                original.machine_id,
                f"reshoot-{n:02d}.jpg",
                encode_jpeg(look_alike),
                "image/jpeg",
                original.label,
                original.tray,
                "near_duplicate",
            )
        )
    return planted


def _line_trays(scenario: Scenario) -> list[Upload]:
    uploads = []
    for n in range(scenario.line_trays):
        tray = generate_tray(scenario.seed * 1000 + 500 + n, size=TRAY_SIZE)
        uploads.append(
            Upload(
                "machine-02",
                f"tray-{n:04d}.jpg",
                encode_jpeg(tray.image),
                "image/jpeg",
                tray=tray.tray_id,
            )
        )
    return uploads


_CONTENT_TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".bin": "image/jpeg"}


def _bad_uploads(seed: int) -> list[Upload]:
    uploads = []
    for index, (name, body) in enumerate(sorted(bad_files(seed, text_chunk_mb=2).items())):
        machine = "machine-01" if index % 2 else "machine-02"
        suffix = name[name.rfind(".") :] if "." in name else ".bin"
        uploads.append(
            Upload(
                machine, f"odd-{name}", body, _CONTENT_TYPES.get(suffix, "image/jpeg"), planted=name
            )
        )
    return uploads


def _coco_archive(scenario: Scenario) -> tuple[bytes, dict[str, int]]:
    """Labelled trays as a COCO zip, with some label faults planted on purpose."""
    images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    faults: dict[str, int] = {}
    defects = list(BoxDefect)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for n in range(scenario.labelled_trays):
            tray = generate_tray(scenario.seed * 1000 + n, size=TRAY_SIZE)
            boxes: list[Box] = tray.boxes
            if n % 10 == 9:  # one tray in ten carries a labelling mistake
                defect = defects[(n // 10) % len(defects)]
                boxes = corrupt_boxes(boxes, seed=n, image_size=TRAY_SIZE)[defect]
                rule = RULE_OF_DEFECT[defect]
                faults[rule] = faults.get(rule, 0) + 1
            file_name = f"images/tray-{n:04d}.jpg"
            archive.writestr(file_name, encode_jpeg(tray.image))
            images.append(
                {"id": n + 1, "file_name": file_name, "width": TRAY_SIZE[0], "height": TRAY_SIZE[1]}
            )
            for box in boxes:
                annotations.append(_coco_annotation(len(annotations) + 1, n + 1, box))
        # Every label used gets a category, the planted unknown class included: the labelling
        # tool knew it, the dataset does not, and cleaning must say so.
        used = sorted({str(a["label"]) for a in annotations} - set(CUTTING_CLASSES))
        names = {name: i + 1 for i, name in enumerate([*CUTTING_CLASSES, *used])}
        categories = [{"id": i, "name": name} for name, i in names.items()]
        for annotation in annotations:
            annotation["category_id"] = names[str(annotation.pop("label"))]
        # The labelling tool exports one file per split, as COCO sets do (instances_val...),
        # so even a small import has validation and test images.
        for split in ("train", "val", "test"):
            chosen = [image for image in images if _split_of(int(str(image["id"])) - 1) == split]
            ids = {image["id"] for image in chosen}
            document = {
                "images": chosen,
                "annotations": [a for a in annotations if a["image_id"] in ids],
                "categories": categories,
            }
            archive.writestr(f"annotations_{split}.json", json.dumps(document))
    return buffer.getvalue(), faults


def _split_of(tray_number: int) -> str:
    """70 % train, 15 % val, 15 % test, in a fixed pattern over the tray numbers."""
    position = tray_number % 20
    return "train" if position < 14 else "val" if position < 17 else "test"


def _coco_annotation(annotation_id: int, image_id: int, box: Box) -> dict[str, object]:
    width, height = box.x2 - box.x1, box.y2 - box.y1
    return {
        "id": annotation_id,
        "image_id": image_id,
        "label": box.label,
        "bbox": [box.x1, box.y1, width, height],
        "area": max(width, 0) * max(height, 0),
        "iscrowd": 0,
    }
