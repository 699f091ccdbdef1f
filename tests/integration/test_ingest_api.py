"""Image routes: presigned uploads are refused up front when wrong; the catalog is readable."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from stek.auth import Role
from stek.images.catalog import ImageCatalog, ImageRecord, ImageStatus
from stek.local.functions import load_handler
from stek.local.lambda_context import LocalContext
from stek.local.stack import Stack
from stek.services import Services

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "images"


def _http(
    method: str, path: str, key: str | None = None, body: Any = None, **query: str
) -> dict[str, Any]:
    event = json.loads((ROOT / "events" / "ingest_http_health.json").read_text())
    event["routeKey"] = f"{method} {path}"
    event["rawPath"] = path
    event["requestContext"]["http"].update(method=method, path=path)
    event["queryStringParameters"] = query or None
    if key:
        event["headers"]["authorization"] = f"Bearer {key}"
    if body is not None:
        event["body"] = json.dumps(body)
    return event


def _call(stack: Stack, event: dict[str, Any]) -> tuple[int, Any]:
    handler = load_handler(stack.model.functions["IngestFunction"])
    answer = handler(event, LocalContext.for_function("IngestFunction", 300, 2048))
    return answer["statusCode"], json.loads(answer["body"])


def _upload_request(**changes: Any) -> dict[str, Any]:
    request = {
        "machine_id": "machine-07",
        "filename": "IMG_0001.jpg",
        "content_type": "image/jpeg",
        "size": 250_000,
        "tray": "12",
        "captured_at": "2026-12-03T06:12:41+00:00",
        "label": "rooted",
    }
    request.update(changes)
    return request


def _policy(ticket: dict[str, Any]) -> dict[str, Any]:
    return json.loads(base64.b64decode(ticket["fields"]["policy"]))  # type: ignore[no-any-return]


@pytest.fixture
def machine_key(svc: Services, tenant: str) -> str:
    return svc.keys.create(tenant, Role.MACHINE)[0]


@pytest.fixture
def scientist_key(svc: Services, tenant: str) -> str:
    return svc.keys.create(tenant, Role.SCIENTIST)[0]


# ------------------------------------------------------------------------------ uploads


def test_a_presigned_upload_allows_only_the_machines_key_type_and_size(
    stack: Stack, svc: Services, tenant: str, machine_key: str
) -> None:
    # When a machine asks for an upload
    status, ticket = _call(stack, _http("POST", "/v1/uploads", machine_key, _upload_request()))

    # Then the policy pins the exact key under its prefix, the content type, the size range
    # and the metadata, so S3 refuses any other upload
    assert status == 200
    assert ticket["key"].startswith(f"{tenant}/machine-07/")
    assert ticket["key"].endswith("/IMG_0001.jpg")
    conditions = _policy(ticket)["conditions"]
    assert {"key": ticket["key"]} in conditions
    assert {"bucket": svc.settings.raw_bucket} in conditions
    assert {"Content-Type": "image/jpeg"} in conditions
    assert ["content-length-range", 1, svc.settings.max_upload_bytes] in conditions
    assert {"x-amz-meta-machine-id": "machine-07"} in conditions
    assert {"x-amz-meta-tray": "12"} in conditions
    assert {"x-amz-meta-correlation-id": ticket["correlation_id"]} in conditions
    assert ticket["fields"]["Content-Type"] == "image/jpeg"
    assert datetime.fromisoformat(ticket["expires_at"]) > datetime.now(UTC)


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({"content_type": "image/gif"}, 422),
        ({"content_type": "application/postscript"}, 422),
        ({"content_type": "text/html"}, 422),
        ({"size": 40 * 1024 * 1024 + 1}, 413),
        ({"size": 0}, 422),
        ({"machine_id": "../other-tenant"}, 422),
        ({"machine_id": "machine/07"}, 422),
        ({"machine_id": "imports"}, 422),
        ({"filename": "a/b.jpg"}, 422),
        ({"filename": ""}, 422),
        ({"tray": "tray\n12"}, 422),
    ],
)
def test_a_wrong_upload_is_refused_at_request_time(
    stack: Stack, machine_key: str, changes: dict[str, Any], status: int
) -> None:
    answer_status, problem = _call(
        stack, _http("POST", "/v1/uploads", machine_key, _upload_request(**changes))
    )

    assert answer_status == status
    assert problem["status"] == status
    assert problem["detail"]


def test_only_machines_ask_for_uploads(stack: Stack, scientist_key: str) -> None:
    status, problem = _call(stack, _http("POST", "/v1/uploads", scientist_key, _upload_request()))

    assert status == 403
    assert "machine" in problem["detail"]


def test_an_upload_through_the_ticket_is_ingested_with_its_metadata(
    stack: Stack, svc: Services, tenant: str, machine_key: str, scientist_key: str
) -> None:
    # Given a ticket, and the machine posting its photograph with it
    photo = (FIXTURES / "photo_board.jpg").read_bytes()
    _, ticket = _call(stack, _http("POST", "/v1/uploads", machine_key, _upload_request()))
    posted = requests.post(
        ticket["url"], data=ticket["fields"], files={"file": ("IMG_0001.jpg", photo)}, timeout=10
    )
    assert posted.status_code in (200, 201, 204)

    # When the ingest function handles the bucket event
    _drain_ingest_queue(stack, svc)

    # Then the image is listed with the metadata the ticket carried
    status, page = _call(stack, _http("GET", "/v1/images", scientist_key))
    assert status == 200
    (image,) = page["images"]
    assert image["key"] == ticket["key"]
    assert (image["status"], image["machine_id"], image["tray"], image["label"]) == (
        "ingested",
        "machine-07",
        "12",
        "rooted",
    )
    assert image["correlation_id"] == ticket["correlation_id"]


def _drain_ingest_queue(stack: Stack, svc: Services) -> None:
    handler = load_handler(stack.model.functions["IngestFunction"])
    answer = svc.sqs.receive_message(QueueUrl=svc.settings.ingest_queue_url, MaxNumberOfMessages=10)
    records = [
        {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": {},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
            "awsRegion": "us-east-1",
        }
        for m in answer.get("Messages", [])
    ]
    result = handler({"Records": records}, LocalContext.for_function("IngestFunction", 300, 2048))
    assert result == {"batchItemFailures": []}


# ------------------------------------------------------------------------------ catalog


def _record(tenant: str, number: int, **changes: Any) -> ImageRecord:
    fields: dict[str, Any] = {
        "tenant": tenant,
        "image_id": f"img{number:04d}",
        "status": ImageStatus.INGESTED,
        "bucket": "raw",
        "key": f"{tenant}/machine-{number % 2}/{number}.jpg",
        "size": 1000 + number,
        "machine_id": f"machine-{number % 2}",
        "ingested_at": datetime(2026, 12, 1, tzinfo=UTC) + timedelta(hours=number),
        "correlation_id": f"c{number}",
    }
    fields.update(changes)
    return ImageRecord(**fields)


def _seed(svc: Services, records: list[ImageRecord]) -> None:
    catalog = ImageCatalog(svc.settings.catalog_table, svc.dynamodb)
    for record in records:
        catalog.put_new(record)


def test_images_list_by_status_machine_and_time_page_by_page(
    stack: Stack, svc: Services, tenant: str, scientist_key: str
) -> None:
    # Given 12 images over 12 hours from two machines, two of them rejected
    records = [_record(tenant, n) for n in range(10)]
    records += [
        _record(tenant, n, status=ImageStatus.REJECTED, reason="truncated") for n in (10, 11)
    ]
    _seed(svc, [*records, _record(f"other-{tenant}", 99)])

    # When a scientist pages through machine-0's ingested images, 2 at a time, in a window
    seen: list[str] = []
    cursor: str | None = None
    while True:
        query = {"status": "ingested", "machine_id": "machine-0", "limit": "2"}
        query |= {"since": "2026-12-01T02:00:00+00:00", "until": "2026-12-01T09:00:00+00:00"}
        if cursor:
            query["cursor"] = cursor
        status, page = _call(stack, _http("GET", "/v1/images", scientist_key, **query))
        assert status == 200
        assert len(page["images"]) <= 2
        seen += [image["image_id"] for image in page["images"]]
        cursor = page["next_cursor"]
        if not cursor:
            break

    # Then every match comes once, in ingestion order, and nothing of another tenant
    assert seen == ["img0002", "img0004", "img0006", "img0008"]


def test_an_image_shows_its_thumbnail_url_and_a_rejection_its_reason(
    stack: Stack, svc: Services, tenant: str, scientist_key: str
) -> None:
    svc.s3.put_object(
        Bucket=svc.settings.artifacts_bucket, Key=f"{tenant}/thumbnails/img0001.jpg", Body=b"jpeg"
    )
    _seed(
        svc,
        [
            _record(tenant, 1, thumbnail_key=f"{tenant}/thumbnails/img0001.jpg"),
            _record(tenant, 2, status=ImageStatus.REJECTED, reason="truncated", reason_detail="x"),
        ],
    )

    _, image = _call(stack, _http("GET", "/v1/images/img0001", scientist_key))
    _, rejected = _call(stack, _http("GET", "/v1/images/img0002", scientist_key))

    assert image["thumbnail_url"].startswith("https://")
    assert requests.get(image["thumbnail_url"], timeout=10).content == b"jpeg"
    assert image["thumbnail_expires_at"]
    assert (rejected["reason"], rejected["thumbnail_url"]) == ("truncated", None)


def test_another_tenants_image_is_not_found(
    stack: Stack, svc: Services, tenant: str, scientist_key: str
) -> None:
    _seed(svc, [_record(f"other-{tenant}", 5)])

    status, problem = _call(stack, _http("GET", "/v1/images/img0005", scientist_key))

    assert status == 404
    assert problem["title"] == "Not found"


def test_images_need_a_key_and_a_valid_query(stack: Stack, scientist_key: str) -> None:
    assert _call(stack, _http("GET", "/v1/images"))[0] == 401
    assert _call(stack, _http("GET", "/v1/images", scientist_key, status="lost"))[0] == 422
    assert _call(stack, _http("GET", "/v1/images", scientist_key, cursor="%%%"))[0] == 422
