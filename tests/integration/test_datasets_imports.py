"""Imports: planted faults are reported exactly; export then import gives the same version."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from stek.auth import Role
from stek.datasets.catalog import DatasetCatalog
from stek.datasets.manifest import get_version, read_manifest
from stek.local.functions import load_handler
from stek.local.lambda_context import LocalContext
from stek.local.stack import Stack
from stek.services import Services
from stek.synth.duplicates import encode_jpeg, near_duplicate

EVENTS = Path(__file__).resolve().parents[2] / "events"
CLASSES = ["healthy", "damaged", "callus"]


def _image(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(low).resize((96, 64), Image.Resampling.BILINEAR)


def _zip(files: dict[str, bytes]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return base64.b64encode(buffer.getvalue()).decode()


class Api:
    def __init__(self, stack: Stack, svc: Services, key: str) -> None:
        self.handler = load_handler(stack.model.functions["CleanFunction"])
        self.svc, self.key = svc, key
        self.context = LocalContext.for_function("CleanFunction", 900, 3008)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        event = json.loads((EVENTS / "clean_http_create_dataset.json").read_text())
        event["routeKey"] = f"{method} {path}"
        event["rawPath"] = path
        event["requestContext"]["http"].update(method=method, path=path)
        event["headers"]["authorization"] = f"Bearer {self.key}"
        event["body"] = None if body is None else json.dumps(body)
        answer = self.handler(event, self.context)
        return answer["statusCode"], json.loads(answer["body"])

    def dataset(self, task: str, classes: list[str]) -> str:
        status, dataset = self.call(
            "POST", "/v1/datasets", {"name": "imported", "task": task, "classes": classes}
        )
        assert status == 201
        return str(dataset["dataset_id"])

    def version(self, dataset_id: str, cleaning: dict[str, Any] | None = None) -> dict[str, Any]:
        status, summary = self.call(
            "POST", f"/v1/datasets/{dataset_id}/versions", {"cleaning": cleaning or {}}
        )
        assert status == 202
        queue = self.svc.settings.versions_queue_url
        message = self.svc.sqs.receive_message(QueueUrl=queue)["Messages"][0]
        event = json.loads((EVENTS / "clean_sqs_version_build.json").read_text())
        event["Records"][0]["body"] = message["Body"]
        assert self.handler(event, self.context) == {"batchItemFailures": []}
        self.svc.sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        status, detail = self.call(
            "GET", f"/v1/datasets/{dataset_id}/versions/{summary['version']}"
        )
        assert (status, detail["summary"]["status"]) == (200, "READY"), detail
        return dict(detail)


@pytest.fixture
def api(stack: Stack, svc: Services, tenant: str) -> Api:
    key, _ = svc.keys.create(tenant, Role.SCIENTIST)
    return Api(stack, svc, key)


def _coco(images: list[tuple[str, str, Any]]) -> dict[str, bytes]:
    """COCO documents per split from (file name, split, [(class, [x, y, w, h])])."""
    categories = [{"id": n, "name": name} for n, name in enumerate(CLASSES, start=1)]
    categories.append({"id": 9, "name": "wilted"})  # a class the dataset does not have
    category_id = {c["name"]: c["id"] for c in categories}
    documents: dict[str, dict[str, Any]] = {}
    for number, (file_name, split, boxes) in enumerate(images, start=1):
        document = documents.setdefault(
            split, {"images": [], "annotations": [], "categories": categories}
        )
        document["images"].append({"id": number, "file_name": file_name, "width": 96, "height": 64})
        for label, bbox in boxes:
            annotation = {
                "id": len(document["annotations"]) + 1,
                "image_id": number,
                "category_id": category_id[label],
                "bbox": bbox,
            }
            document["annotations"].append(annotation)
    return {
        f"annotations/instances_{split}.json": json.dumps(d).encode()
        for split, d in documents.items()
    }


def test_a_planted_mix_of_faults_is_found_exactly(api: Api, svc: Services, tenant: str) -> None:
    # Given a COCO archive of 12 clean images and one of each fault
    good = [("healthy", [10, 10, 20, 20]), ("damaged", [50, 20, 30, 30])]
    images: list[tuple[str, str, Any]] = []
    files: dict[str, bytes] = {}
    for n in range(12):
        split = "val" if n in (3, 7) else "train"
        images.append((f"clean{n}.jpg", split, good))
        files[f"images/{split}/clean{n}.jpg"] = encode_jpeg(_image(n))
    planted = {
        "copy.jpg": ("train", encode_jpeg(_image(0)), good),  # same bytes as clean0
        "lookalike.jpg": ("train", encode_jpeg(near_duplicate(_image(1), 1)), good),
        "leak.jpg": ("val", encode_jpeg(near_duplicate(_image(2), 2)), good),  # clean2 is in train
        "broken.jpg": ("train", encode_jpeg(_image(40))[:300], good),
        "unknown.jpg": ("train", encode_jpeg(_image(41)), [*good, ("wilted", [5, 5, 10, 10])]),
        "flat.jpg": ("train", encode_jpeg(_image(42)), [*good, ("healthy", [30, 30, 0, 12])]),
        "outside.jpg": ("train", encode_jpeg(_image(43)), [*good, ("callus", [120, 70, 10, 10])]),
        "clipped.jpg": ("train", encode_jpeg(_image(44)), [*good, ("callus", [80, 50, 30, 30])]),
        "tiny.jpg": ("train", encode_jpeg(_image(45)), [*good, ("healthy", [70, 5, 1, 1])]),
        "double.jpg": ("train", encode_jpeg(_image(46)), [*good, ("healthy", [10, 10, 20, 20])]),
        "empty.jpg": ("train", encode_jpeg(_image(47)), []),
    }
    for name, (split, body, boxes) in planted.items():
        images.append((name, split, boxes))
        files[f"images/{split}/{name}"] = body
    files.update(_coco(images))
    dataset_id = api.dataset("detection", CLASSES)

    # When it is imported and a version is built
    status, result = api.call(
        "POST",
        f"/v1/datasets/{dataset_id}/imports",
        {"format": "coco", "archive_base64": _zip(files)},
    )
    detail = api.version(dataset_id)

    # Then the import reports the rejected file and the unknown class
    assert status == 201
    assert (result["images"], result["duplicates"], result["unknown_classes"]) == (
        23,
        1,
        ["wilted"],
    )
    assert [(r["path"], r["reason"]) for r in result["rejected"]] == [
        ("images/train/broken.jpg", "truncated")
    ]
    # And the report finds every planted fault, and nothing else
    id_of = {
        m.path.rsplit("/", 1)[-1]: m.image_id
        for m in DatasetCatalog(svc.settings.catalog_table, svc.dynamodb).images(tenant, dataset_id)
        if m.path
    }
    found = {
        rule["rule"]: sorted(rule["found"]) for rule in detail["report"]["rules"] if rule["found"]
    }
    expected = {
        "unreadable": ["broken.jpg"],
        "exact_duplicates": ["copy.jpg"],
        "near_duplicates": ["leak.jpg", "lookalike.jpg"],
        "leakage": ["leak.jpg"],
        "unknown_class": ["unknown.jpg"],
        "zero_area_box": ["flat.jpg"],
        "box_outside_image": ["clipped.jpg", "outside.jpg"],
        "tiny_box": ["tiny.jpg"],
        "duplicate_box": ["double.jpg"],
        "missing_boxes": ["empty.jpg"],
    }
    balance = found.pop("class_balance")
    assert found == {
        rule: sorted(id_of[name] for name in names) for rule, names in expected.items()
    }
    assert balance == ["callus"]  # planted too: only the clipped box is a callus
    dropped = {
        rule["rule"]: rule["dropped"] for rule in detail["report"]["rules"] if rule["dropped"]
    }
    assert dropped == {"unreadable": [id_of["broken.jpg"]], "exact_duplicates": [id_of["copy.jpg"]]}
    # And the leak went to its look-alike's split; the clipped box stays, clipped
    summary = get_version(svc.dynamodb, svc.settings.catalog_table, tenant, dataset_id, 1)
    entries = {e.image_id: e for e in read_manifest(svc.s3, summary)}
    assert entries[id_of["leak.jpg"]].split == entries[id_of["clean2.jpg"]].split == "train"
    assert entries[id_of["clipped.jpg"]].boxes[-1].model_dump() == {
        "label": "callus",
        "x1": 80,
        "y1": 50,
        "x2": 96,
        "y2": 64,
    }
    assert len(entries) == 21
    assert detail["report"]["images_per_class"] == {"healthy": 20, "damaged": 20, "callus": 1}


@pytest.mark.parametrize("task", ["detection", "classification"])
@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_export_then_import_gives_the_same_version(
    api: Api, svc: Services, tenant: str, fmt: str, task: str
) -> None:
    # Given a frozen version with every split, labels or boxes, and a background image
    files: dict[str, bytes] = {}
    images = []
    for n in range(6):
        split = ["train", "train", "train", "val", "test", "train"][n]
        boxes = [("healthy", [10.5, 12.25, 20, 30]), ("callus", [40, 5, 15.125, 20])][: n % 3]
        label = CLASSES[n % 3]
        images.append(
            (f"im{n}.png", split, boxes if task == "detection" else [(label, [0, 0, 96, 64])])
        )
        buffer = io.BytesIO()
        _image(100 + n).save(buffer, format="PNG")
        files[f"images/{split}/im{n}.png"] = buffer.getvalue()
    files.update(_coco(images))
    source = api.dataset(task, CLASSES)
    api.call(
        "POST", f"/v1/datasets/{source}/imports", {"format": "coco", "archive_base64": _zip(files)}
    )
    api.version(source)

    # When it is exported, and the export imported into a new dataset and frozen
    status, export = api.call("POST", f"/v1/datasets/{source}/versions/1/exports", {"format": fmt})
    assert status == 201
    archive = svc.s3.get_object(Bucket=export["bucket"], Key=export["key"])["Body"].read()
    copy = api.dataset(task, CLASSES)
    status, result = api.call(
        "POST",
        f"/v1/datasets/{copy}/imports",
        {"format": fmt, "archive_base64": base64.b64encode(archive).decode()},
    )
    assert (status, result["images"], result["rejected"]) == (201, 6, [])
    api.version(copy)

    # Then both versions hold the same images, splits and labels
    def content(dataset_id: str) -> dict[str, Any]:
        summary = get_version(svc.dynamodb, svc.settings.catalog_table, tenant, dataset_id, 1)
        entries = read_manifest(svc.s3, summary)
        return {
            e.sha256: (e.split, e.label, [b.model_dump() for b in e.boxes], e.width, e.height)
            for e in entries
        }

    assert content(copy) == content(source)
    assert len(content(source)) == 6


def test_imports_from_a_bucket_prefix_and_an_uploaded_zip(
    api: Api, svc: Services, tenant: str
) -> None:
    # Given a COCO tree under a prefix of the raw bucket, and the same tree as a zip there
    files = _coco([(f"p{n}.jpg", "train", [("healthy", [1, 1, 30, 30])]) for n in range(3)])
    for n in range(3):
        files[f"images/train/p{n}.jpg"] = encode_jpeg(_image(200 + n))
    raw = svc.settings.raw_bucket
    for path, body in files.items():
        svc.s3.put_object(Bucket=raw, Key=f"{tenant}/uploads/coco/{path}", Body=body)
    archive_key = f"{tenant}/uploads/coco.zip"
    svc.s3.put_object(Bucket=raw, Key=archive_key, Body=base64.b64decode(_zip(files)))
    from_prefix, from_zip = api.dataset("detection", CLASSES), api.dataset("detection", CLASSES)

    # When each is imported
    by_prefix = api.call(
        "POST",
        f"/v1/datasets/{from_prefix}/imports",
        {"format": "coco", "prefix": f"{tenant}/uploads/coco/"},
    )
    by_key = api.call(
        "POST", f"/v1/datasets/{from_zip}/imports", {"format": "coco", "archive_key": archive_key}
    )

    # Then both bring in the three images, written under the import's own raw prefix
    assert (by_prefix[0], by_prefix[1]["images"]) == (201, 3)
    assert (by_key[0], by_key[1]["images"], by_key[1]["duplicates"]) == (201, 3, 3)
    imported = svc.s3.list_objects_v2(Bucket=raw, Prefix=f"{tenant}/imports/{from_prefix}/")
    assert len(imported["Contents"]) == 3


def test_a_prefix_with_a_key_climbing_out_is_refused(api: Api, svc: Services, tenant: str) -> None:
    raw = svc.settings.raw_bucket
    svc.s3.put_object(
        Bucket=raw, Key=f"{tenant}/uploads/voc/Annotations/a.xml", Body=b"<annotation/>"
    )
    svc.s3.put_object(
        Bucket=raw, Key=f"{tenant}/uploads/voc/../../other/b.xml", Body=b"<annotation/>"
    )
    dataset_id = api.dataset("detection", CLASSES)

    status, problem = api.call(
        "POST",
        f"/v1/datasets/{dataset_id}/imports",
        {"format": "voc", "prefix": f"{tenant}/uploads/voc"},
    )

    assert (status, problem["path"]) == (422, "../../other/b.xml")
    assert (
        DatasetCatalog(svc.settings.catalog_table, svc.dynamodb).count_images(tenant, dataset_id)
        == 0
    )
