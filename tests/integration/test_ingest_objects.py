"""The ingest function on the provisioned stack: uploads become records or quarantined objects."""

from __future__ import annotations

import io
import json
import struct
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from PIL import Image

from stek.auth import Role
from stek.bucket_events import ObjectCreated
from stek.images.catalog import ImageCatalog, ImageRecord, ImageStatus
from stek.ingest import UNSCOPED_TENANT, ingest_object
from stek.local.functions import load_handler
from stek.local.lambda_context import LocalContext
from stek.local.stack import Stack
from stek.services import Services

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "images"


def _handler(stack: Stack) -> Any:
    return load_handler(stack.model.functions["IngestFunction"])


def _context() -> LocalContext:
    return LocalContext.for_function("IngestFunction", 300, 2048)


def _upload(svc: Services, key: str, data: bytes, **metadata: str) -> str:
    answer = svc.s3.put_object(
        Bucket=svc.settings.raw_bucket, Key=key, Body=data, Metadata=metadata
    )
    return str(answer["ETag"])


def _queued_batch(svc: Services) -> dict[str, Any]:
    """The ingest queue's messages as one Lambda SQS event (test events included)."""
    records: list[dict[str, Any]] = []
    while True:
        answer = svc.sqs.receive_message(
            QueueUrl=svc.settings.ingest_queue_url, MaxNumberOfMessages=10
        )
        messages = answer.get("Messages", [])
        if not messages:
            return {"Records": records}
        for message in messages:
            records.append(_sqs_record(message["MessageId"], message["Body"]))
            svc.sqs.delete_message(
                QueueUrl=svc.settings.ingest_queue_url, ReceiptHandle=message["ReceiptHandle"]
            )


def _sqs_record(message_id: str, body: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": f"handle-{message_id}",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:ingest",
        "awsRegion": "us-east-1",
    }


def _catalog(svc: Services) -> ImageCatalog:
    return ImageCatalog(svc.settings.catalog_table, svc.dynamodb)


def _all(svc: Services, tenant: str, **filters: Any) -> list[ImageRecord]:
    return list(_catalog(svc).iter_all(tenant, **filters))


def _by_key(svc: Services, tenant: str) -> dict[str, ImageRecord]:
    return {record.key.rsplit("/", 1)[-1]: record for record in _all(svc, tenant)}


def _object_exists(svc: Services, bucket: str, key: str) -> bool:
    try:
        svc.s3.head_object(Bucket=bucket, Key=key)
    except ClientError:
        return False
    return True


def _event_types(svc: Services, tenant: str) -> list[str]:
    return [event.type for event in svc.events.read(tenant, limit=1000).events]


def _ingest_queue(stack: Stack, svc: Services) -> dict[str, Any]:
    batch = _queued_batch(svc)
    answer = _handler(stack)(batch, _context())
    assert answer == {"batchItemFailures": []}
    return batch


GOOD = {
    "photo_portrait.jpg": ("JPEG", 512, 600),
    "photo_board.jpg": ("JPEG", 720, 477),
    "photo_product_rgba.png": ("PNG", 128, 128),
    "exif_rotated.jpg": ("JPEG", 512, 600),
    "cmyk.jpg": ("JPEG", 512, 600),
    "grey16.png": ("PNG", 512, 600),
    "palette.png": ("PNG", 512, 600),
    "photo.webp": ("WEBP", 512, 600),
    "photo.tiff": ("TIFF", 256, 300),
    "photo.bmp": ("BMP", 256, 300),
}

BAD = {
    "empty.jpg": "empty",
    "random.jpg": "not_an_image",
    "page_html.jpg": "not_an_image",
    "drawing_svg.jpg": "not_an_image",
    "document_ps.jpg": "not_an_image",
    "archive_zip.jpg": "not_an_image",
    "animation_gif.jpg": "unsupported_format",
    "truncated.jpg": "truncated",
    "jpeg_with_zip.jpg": "trailing_data",
    "one_by_one.png": "too_small",
    "one_by_12000.png": "too_small",
    "ztxt_bomb.png": "oversized_metadata",
}


def test_photographs_are_cataloged_with_thumbnails_and_metadata(
    stack: Stack, svc: Services, tenant: str
) -> None:
    # Given real photographs uploaded by a machine with metadata
    originals = {}
    for name in GOOD:
        originals[name] = (FIXTURES / name).read_bytes()
        _upload(
            svc,
            f"{tenant}/machine-07/tray 12/{name}",
            originals[name],
            tray="12",
            label="rooted",
            **{"captured-at": "2026-12-03T06:12:41Z"},
        )

    # When the ingest function handles the queued bucket events
    _ingest_queue(stack, svc)

    # Then each is ingested with its format, size, hashes and metadata
    records = _by_key(svc, tenant)
    assert set(records) == set(GOOD)
    for name, (image_format, width, height) in GOOD.items():
        record = records[name]
        assert record.status is ImageStatus.INGESTED, (name, record.reason_detail)
        assert (record.format, record.width, record.height) == (image_format, width, height)
        assert (record.machine_id, record.tray, record.label) == ("machine-07", "12", "rooted")
        assert record.captured_at is not None
        assert record.captured_at.isoformat() == "2026-12-03T06:12:41+00:00"
        assert record.size == len(originals[name])
        # ... the thumbnail is a JPEG in the artifacts bucket, and the original is untouched
        thumbnail = svc.s3.get_object(
            Bucket=svc.settings.artifacts_bucket, Key=record.thumbnail_key
        )["Body"].read()
        assert Image.open(io.BytesIO(thumbnail)).format == "JPEG"
        original = svc.s3.get_object(Bucket=svc.settings.raw_bucket, Key=record.key)
        assert original["Body"].read() == originals[name]

    # ... and each has one image.ingested event
    assert sorted(_event_types(svc, tenant)) == ["image.ingested"] * len(GOOD)
    # The same portrait in other modes is not a byte-duplicate: it is a different file.
    assert len({record.sha256 for record in records.values()}) == len(GOOD)


def test_every_bad_file_is_quarantined_with_its_reason(
    stack: Stack, svc: Services, tenant: str
) -> None:
    # Given every kind of bad file, named like an image
    for name in BAD:
        _upload(svc, f"{tenant}/machine-07/{name}", (FIXTURES / name).read_bytes())

    # When the ingest function handles them
    _ingest_queue(stack, svc)

    # Then each is rejected with its specific reason, and moved (not deleted) to quarantine
    records = _by_key(svc, tenant)
    assert {name: record.reason for name, record in records.items()} == BAD
    for name, record in records.items():
        assert record.status is ImageStatus.REJECTED
        assert record.quarantine_key == f"{tenant}/quarantine/{tenant}/machine-07/{name}"
        quarantined = svc.s3.get_object(
            Bucket=svc.settings.artifacts_bucket, Key=record.quarantine_key
        )["Body"].read()
        assert quarantined == (FIXTURES / name).read_bytes()
        assert not _object_exists(svc, svc.settings.raw_bucket, record.key)

    # ... and the event log says why
    events = svc.events.read(tenant, type="image.rejected", limit=100).events
    assert sorted(e.data["reason"] for e in events) == sorted(BAD.values())
    assert all(e.data["quarantine_key"].startswith(f"{tenant}/quarantine/") for e in events)


def test_a_900_megapixel_png_is_quarantined(stack: Stack, svc: Services, tenant: str) -> None:
    # Given a 30000x30000 PNG (one-bit, so the file itself stays small)
    header = struct.pack(">IIBBBBB", 30000, 30000, 1, 0, 0, 0, 0)
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + 30000 // 8)
    stream = b"".join(compressor.compress(row * 1000) for _ in range(30)) + compressor.flush()
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", stream)
    _upload(svc, f"{tenant}/machine-07/bomb.png", data + _chunk(b"IEND", b""))

    _ingest_queue(stack, svc)

    (record,) = _all(svc, tenant)
    assert (record.status, record.reason) == (ImageStatus.REJECTED, "too_many_pixels")
    assert _object_exists(svc, svc.settings.artifacts_bucket, str(record.quarantine_key))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_an_object_over_the_byte_limit_is_quarantined_unread(
    stack: Stack, svc: Services, tenant: str
) -> None:
    svc.settings.max_upload_bytes = 10_000
    _upload(svc, f"{tenant}/machine-07/big.jpg", (FIXTURES / "photo_board.jpg").read_bytes())

    _ingest_queue(stack, svc)

    (record,) = _all(svc, tenant)
    assert (record.status, record.reason) == (ImageStatus.REJECTED, "too_large")
    assert _object_exists(svc, svc.settings.artifacts_bucket, str(record.quarantine_key))


def test_exact_duplicates_are_counted_once(stack: Stack, svc: Services, tenant: str) -> None:
    # Given the same bytes uploaded twice by two machines, and once by another tenant
    photo = (FIXTURES / "photo_portrait.jpg").read_bytes()
    _upload(svc, f"{tenant}/machine-07/first.jpg", photo)
    _ingest_queue(stack, svc)
    _upload(svc, f"{tenant}/machine-08/again.jpg", photo)
    _upload(svc, f"other-{tenant}/machine-01/same.jpg", photo)

    # When both are ingested
    _ingest_queue(stack, svc)

    # Then the second is a duplicate of the first, and only one image counts as ingested
    records = _by_key(svc, tenant)
    assert records["again.jpg"].status is ImageStatus.DUPLICATE
    assert records["again.jpg"].duplicate_of == records["first.jpg"].image_id
    assert records["again.jpg"].thumbnail_key == records["first.jpg"].thumbnail_key
    assert len(_all(svc, tenant, status=ImageStatus.INGESTED)) == 1
    assert sorted(_event_types(svc, tenant)) == ["image.duplicate", "image.ingested"]
    # ... while the other tenant's copy is its own original
    (theirs,) = _all(svc, f"other-{tenant}")
    assert theirs.status is ImageStatus.INGESTED


def test_a_redelivered_event_gives_one_record_and_one_event(
    stack: Stack, svc: Services, tenant: str
) -> None:
    # Given one good and one bad upload whose bucket events are delivered three times
    _upload(svc, f"{tenant}/machine-07/good.jpg", (FIXTURES / "photo_board.jpg").read_bytes())
    _upload(svc, f"{tenant}/machine-07/bad.jpg", (FIXTURES / "page_html.jpg").read_bytes())
    batch = _queued_batch(svc)

    # When the function handles the same batch three times
    for _ in range(3):
        assert _handler(stack)(batch, _context()) == {"batchItemFailures": []}

    # Then there is one record and one event per upload, and nothing is a duplicate
    records = _by_key(svc, tenant)
    assert {name: r.status for name, r in records.items()} == {
        "good.jpg": ImageStatus.INGESTED,
        "bad.jpg": ImageStatus.REJECTED,
    }
    assert sorted(_event_types(svc, tenant)) == ["image.ingested", "image.rejected"]
    quarantined = svc.s3.list_objects_v2(
        Bucket=svc.settings.artifacts_bucket, Prefix=f"{tenant}/quarantine/"
    )
    assert [o["Key"] for o in quarantined["Contents"]] == [
        f"{tenant}/quarantine/{tenant}/machine-07/bad.jpg"
    ]


def test_a_direct_import_and_its_later_notification_are_one_image(
    stack: Stack, svc: Services, tenant: str
) -> None:
    # Given a dataset import that writes an object and ingests it directly
    key = f"{tenant}/imports/coco-1/000001.jpg"
    etag = _upload(svc, key, (FIXTURES / "photo_portrait.jpg").read_bytes(), **{"machine-id": "m3"})
    direct = ingest_object(ObjectCreated(bucket=svc.settings.raw_bucket, key=key, etag=etag))

    # When S3's notification of the same object arrives later
    _ingest_queue(stack, svc)

    # Then it is the same single record and event; imports take the machine from metadata
    (record,) = _all(svc, tenant)
    assert record == direct
    assert (record.status, record.machine_id) == (ImageStatus.INGESTED, "m3")
    assert _event_types(svc, tenant) == ["image.ingested"]


def test_keys_without_tenant_or_machine_are_quarantined(
    stack: Stack, svc: Services, tenant: str
) -> None:
    photo = (FIXTURES / "photo_board.jpg").read_bytes()
    _upload(svc, "loose.jpg", photo)
    _upload(svc, f"{tenant}/no-machine.jpg", photo)

    _ingest_queue(stack, svc)

    (unscoped,) = _all(svc, UNSCOPED_TENANT)
    assert unscoped.reason == "no_tenant_prefix"
    assert unscoped.quarantine_key == f"{UNSCOPED_TENANT}/quarantine/loose.jpg"
    (unplaced,) = _all(svc, tenant)
    assert unplaced.reason == "no_machine_prefix"
    for record in (unscoped, unplaced):
        assert _object_exists(svc, svc.settings.artifacts_bucket, str(record.quarantine_key))
        assert not _object_exists(svc, svc.settings.raw_bucket, record.key)


def test_an_object_gone_before_ingest_is_recorded_not_retried(
    stack: Stack, svc: Services, tenant: str
) -> None:
    key = f"{tenant}/machine-07/gone.jpg"
    _upload(svc, key, (FIXTURES / "photo_board.jpg").read_bytes())
    svc.s3.delete_object(Bucket=svc.settings.raw_bucket, Key=key)

    _ingest_queue(stack, svc)

    (record,) = _all(svc, tenant)
    assert (record.status, record.reason, record.quarantine_key) == (
        ImageStatus.REJECTED,
        "object_missing",
        None,
    )


def test_a_failing_object_is_reported_alone_for_retry(
    stack: Stack, svc: Services, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two uploads, where reading one fails with a transient S3 error
    _upload(svc, f"{tenant}/machine-07/fine.jpg", (FIXTURES / "photo_board.jpg").read_bytes())
    _upload(svc, f"{tenant}/machine-07/flaky.jpg", (FIXTURES / "photo_portrait.jpg").read_bytes())
    batch = _queued_batch(svc)
    real_get = svc.s3.get_object

    def flaky_get(**request: Any) -> Any:
        if request["Key"].endswith("flaky.jpg"):
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow"}}, "GetObject")
        return real_get(**request)

    monkeypatch.setattr(svc.s3, "get_object", flaky_get)

    # When the batch is handled
    answer = _handler(stack)(batch, _context())

    # Then only the flaky message is handed back for a retry, and nothing of it is recorded
    flaky_ids = [r["messageId"] for r in batch["Records"] if "flaky.jpg" in r["body"]]
    assert answer == {"batchItemFailures": [{"itemIdentifier": flaky_ids[0]}]}
    assert list(_by_key(svc, tenant)) == ["fine.jpg"]

    # ... and the retry succeeds once S3 recovers
    monkeypatch.setattr(svc.s3, "get_object", real_get)
    retry = {"Records": [r for r in batch["Records"] if r["messageId"] in flaky_ids]}
    assert _handler(stack)(retry, _context()) == {"batchItemFailures": []}
    assert sorted(_by_key(svc, tenant)) == ["fine.jpg", "flaky.jpg"]


def test_a_bad_captured_at_keeps_the_image(stack: Stack, svc: Services, tenant: str) -> None:
    photo = (FIXTURES / "photo_board.jpg").read_bytes()
    _upload(svc, f"{tenant}/m1/a.jpg", photo, **{"captured-at": "yesterday"})

    _ingest_queue(stack, svc)

    (record,) = _all(svc, tenant)
    assert (record.status, record.captured_at) == (ImageStatus.INGESTED, None)
    assert "captured-at" in str(record.reason_detail)


def test_sample_events_are_valid_inputs(stack: Stack, svc: Services) -> None:
    # Given every ingest sample event, with a machine key where it needs one
    key, _ = svc.keys.create("greenhouse-a", Role.MACHINE)
    events = Path(__file__).resolve().parents[2] / "events"
    answers = {}
    for path in sorted(events.glob("ingest_*.json")):
        event = json.loads(path.read_text().replace("{{api_key}}", key))

        # When each is handled
        answers[path.stem] = _handler(stack)(event, _context())

    # Then queue batches succeed (objects that are not there are recorded as missing) and
    # HTTP requests answer as the samples intend
    statuses = {name: a.get("statusCode") for name, a in answers.items() if "statusCode" in a}
    assert statuses == {
        "ingest_http_create_upload": 200,
        "ingest_http_get_image": 404,
        "ingest_http_health": 200,
        "ingest_http_list_images": 200,
        "ingest_http_minio_webhook": 200,
    }
    batches = [a for a in answers.values() if "statusCode" not in a]
    assert batches == [{"batchItemFailures": []}] * 4
    missing = _all(svc, "greenhouse-a", status=ImageStatus.REJECTED)
    assert {r.reason for r in missing} == {"object_missing"}
    assert len(missing) == 3


def test_image_ids_are_stable_per_object_version(svc: Services, stack: Stack) -> None:
    from stek.ingest import image_id_for

    bucket = svc.settings.raw_bucket
    first = image_id_for(ObjectCreated(bucket=bucket, key="t/m/a.jpg", etag='"abc"'))
    again = image_id_for(ObjectCreated(bucket=bucket, key="t/m/a.jpg", etag="abc", version_id="v1"))
    other = image_id_for(ObjectCreated(bucket=bucket, key="t/m/a.jpg", etag="def"))

    assert first == again != other
    assert uuid.UUID(first)
