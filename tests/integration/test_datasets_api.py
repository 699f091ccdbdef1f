"""The dataset routes and the version builds on the provisioned stack, end to end."""

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
from stek.bucket_events import ObjectCreated
from stek.datasets.manifest import VersionStatus, get_version, read_manifest
from stek.ingest import ingest_object
from stek.local.functions import load_handler
from stek.local.lambda_context import LocalContext
from stek.local.stack import Stack
from stek.services import Services
from stek.synth.duplicates import encode_jpeg

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _picture(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return encode_jpeg(Image.fromarray(low).resize((96, 64), Image.Resampling.BILINEAR))


class Api:
    """Calls the clean function the way API Gateway and the versions queue would."""

    def __init__(self, stack: Stack, svc: Services, key: str) -> None:
        self.handler = load_handler(stack.model.functions["CleanFunction"])
        self.svc, self.key = svc, key
        self.context = LocalContext.for_function("CleanFunction", 900, 3008)

    def call(
        self, method: str, path: str, body: Any = None, key: str | None = None, **query: str
    ) -> tuple[int, Any]:
        event = json.loads((EVENTS / "clean_http_create_dataset.json").read_text())
        event["routeKey"] = f"{method} {path}"
        event["rawPath"] = path
        event["requestContext"]["http"].update(method=method, path=path)
        event["queryStringParameters"] = query or None
        event["headers"]["authorization"] = f"Bearer {key or self.key}"
        event["body"] = None if body is None else json.dumps(body)
        answer = self.handler(event, self.context)
        return answer["statusCode"], json.loads(answer["body"])

    def run_builds(self) -> int:
        """Deliver every queued version build to the function, as the event source mapping would."""
        delivered = 0
        while True:
            answer = self.svc.sqs.receive_message(
                QueueUrl=self.svc.settings.versions_queue_url, MaxNumberOfMessages=10
            )
            messages = answer.get("Messages", [])
            if not messages:
                return delivered
            for message in messages:
                event = json.loads((EVENTS / "clean_sqs_version_build.json").read_text())
                event["Records"][0].update(messageId=message["MessageId"], body=message["Body"])
                assert self.handler(event, self.context) == {"batchItemFailures": []}
                self.svc.sqs.delete_message(
                    QueueUrl=self.svc.settings.versions_queue_url,
                    ReceiptHandle=message["ReceiptHandle"],
                )
                delivered += 1


@pytest.fixture
def api(stack: Stack, svc: Services, tenant: str) -> Api:
    key, _ = svc.keys.create(tenant, Role.SCIENTIST)
    return Api(stack, svc, key)


def _upload(
    svc: Services, tenant: str, name: str, body: bytes, label: str, machine: str = "machine-07"
) -> str:
    key = f"{tenant}/{machine}/tray-1/{name}"
    answer = svc.s3.put_object(
        Bucket=svc.settings.raw_bucket, Key=key, Body=body, Metadata={"label": label}
    )
    record = ingest_object(
        ObjectCreated(
            bucket=svc.settings.raw_bucket, key=key, etag=answer["ETag"].strip('"'), size=len(body)
        )
    )
    return record.image_id


def test_dataset_from_uploads_to_a_frozen_version_diff_and_export(
    api: Api, svc: Services, tenant: str
) -> None:
    # Given uploads with labels from two machines
    ids = [
        _upload(svc, tenant, f"a{n}.jpg", _picture(n), "healthy" if n % 2 else "damaged")
        for n in range(6)
    ]
    other = _upload(svc, tenant, "b1.jpg", _picture(50), "healthy", machine="machine-09")

    # When a scientist creates a dataset and adds images by query, then by id
    status, dataset = api.call(
        "POST",
        "/v1/datasets",
        {"name": "tray line", "task": "classification", "classes": ["healthy", "damaged"]},
    )
    assert status == 201
    dataset_id = dataset["dataset_id"]
    status, added = api.call(
        "POST", f"/v1/datasets/{dataset_id}/images", {"query": {"machine_id": "machine-07"}}
    )
    assert (status, added["added"]) == (200, 6)
    assert sorted(added["image_ids"]) == sorted(ids)

    status, summary = api.call("POST", f"/v1/datasets/{dataset_id}/versions", {})
    assert (status, summary["status"], summary["version"]) == (202, "BUILDING", 1)
    assert api.run_builds() == 1
    api.call("POST", f"/v1/datasets/{dataset_id}/images", {"image_ids": [other]})
    api.call("POST", f"/v1/datasets/{dataset_id}/versions", {})
    api.run_builds()

    # Then both versions are frozen, the second has the first as parent and one image more
    status, detail = api.call("GET", f"/v1/datasets/{dataset_id}/versions/2")
    assert status == 200
    second = detail["summary"]
    assert (second["status"], second["parent_version"], second["progress"]) == ("READY", 1, 1.0)
    assert detail["report"]["images_out"] == 7
    assert sum(sum(per_class.values()) for per_class in second["counts"].values()) == 7
    frozen = get_version(svc.dynamodb, svc.settings.catalog_table, tenant, dataset_id, 2)
    entries = read_manifest(svc.s3, frozen)
    assert frozen.manifest_key.endswith(f"manifest-{frozen.manifest_sha256}.jsonl")
    assert {e.image_id: e.label for e in entries}[ids[1]] == "healthy"

    status, diff = api.call("GET", f"/v1/datasets/{dataset_id}/versions/2/diff", against="1")
    assert (status, diff["added"], diff["removed"], diff["relabelled"], diff["unchanged"]) == (
        200,
        [other],
        [],
        [],
        6,
    )

    # And relabelling an image shows in the next version's diff, keeping its split
    relabel = {"image_ids": [ids[0]], "label": "healthy"}
    api.call("POST", f"/v1/datasets/{dataset_id}/images", relabel)
    api.call("POST", f"/v1/datasets/{dataset_id}/versions", {})
    api.run_builds()
    _, diff = api.call("GET", f"/v1/datasets/{dataset_id}/versions/3/diff", against="2")
    relabelled = [(r["image_id"], r["label_before"], r["label_after"]) for r in diff["relabelled"]]
    assert relabelled == [(ids[0], "damaged", "healthy")]
    assert (diff["added"], diff["removed"], diff["moved"]) == ([], [], [])

    status, export = api.call(
        "POST", f"/v1/datasets/{dataset_id}/versions/2/exports", {"format": "coco"}
    )
    assert status == 201
    assert export["url"].startswith("https://")
    archive = zipfile.ZipFile(
        io.BytesIO(svc.s3.get_object(Bucket=export["bucket"], Key=export["key"])["Body"].read())
    )
    assert len([n for n in archive.namelist() if n.startswith("images/")]) == 7

    # And the event log tells the story
    types = [e.type for e in svc.events.read(tenant, subject=dataset_id, limit=100).events]
    assert types.count("dataset.created") == 1
    assert types.count("dataset.version.created") == 3
    assert types.count("dataset.exported") == 1
    assert "dataset.version.progress" in types
    created = next(
        e
        for e in svc.events.read(tenant, type="dataset.version.created").events
        if e.data["version"] == 2
    )
    assert created.data["images"] == 7
    assert created.data["counts"] == second["counts"]


def test_a_redelivered_build_changes_nothing(api: Api, svc: Services, tenant: str) -> None:
    image = _upload(svc, tenant, "a.jpg", _picture(1), "healthy")
    _, dataset = api.call(
        "POST", "/v1/datasets", {"name": "d", "task": "classification", "classes": ["healthy"]}
    )
    api.call("POST", f"/v1/datasets/{dataset['dataset_id']}/images", {"image_ids": [image]})
    status, _ = api.call("POST", f"/v1/datasets/{dataset['dataset_id']}/versions")  # no body
    assert status == 202
    message = svc.sqs.receive_message(QueueUrl=svc.settings.versions_queue_url)["Messages"][0]
    event = json.loads((EVENTS / "clean_sqs_version_build.json").read_text())
    event["Records"][0]["body"] = message["Body"]

    for _ in range(2):
        assert api.handler(event, api.context) == {"batchItemFailures": []}

    summary = get_version(
        svc.dynamodb, svc.settings.catalog_table, tenant, dataset["dataset_id"], 1
    )
    assert summary.status is VersionStatus.READY
    assert len(svc.events.read(tenant, type="dataset.version.created").events) == 1


def test_requests_are_checked_and_scoped(api: Api, svc: Services, tenant: str) -> None:
    _, dataset = api.call(
        "POST", "/v1/datasets", {"name": "d", "task": "detection", "classes": ["healthy"]}
    )
    dataset_id = dataset["dataset_id"]
    outsider, _ = svc.keys.create("someone-else", Role.SCIENTIST)
    operator, _ = svc.keys.create(tenant, Role.OPERATOR)
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as archive:
        archive.writestr("../../escape.jpg", b"x")
    zip_slip = {"format": "coco", "archive_base64": base64.b64encode(evil.getvalue()).decode()}

    assert api.call("GET", f"/v1/datasets/{dataset_id}", key=outsider)[0] == 404
    assert (
        api.call("POST", "/v1/datasets", {"name": "d", "task": "detection"}, key=operator)[0] == 403
    )
    assert api.call("POST", "/v1/datasets", {"name": "d", "task": "segmentation"})[0] == 422
    assert api.call("POST", f"/v1/datasets/{dataset_id}/versions", {})[0] == 422  # no images yet
    status, problem = api.call("POST", f"/v1/datasets/{dataset_id}/imports", zip_slip)
    assert (status, problem["path"]) == (422, "../../escape.jpg")
    assert "escapes" in problem["detail"]
    other_prefix = {"format": "yolo", "prefix": "someone-else/uploads/"}
    assert api.call("POST", f"/v1/datasets/{dataset_id}/imports", other_prefix)[0] == 422
    assert (
        api.call("POST", f"/v1/datasets/{dataset_id}/versions/1/exports", {"format": "coco"})[0]
        == 404
    )
    status, page = api.call("GET", "/v1/datasets", key=operator)
    assert (status, [d["dataset_id"] for d in page["datasets"]]) == (200, [dataset_id])
    assert api.call("GET", "/v1/datasets", key=outsider)[1]["datasets"] == []
