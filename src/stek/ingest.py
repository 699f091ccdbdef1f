"""Ingest: one uploaded object becomes a catalog record, or goes to quarantine with a reason.

Objects arrive under `{tenant}/{machine_id}/...` in the raw bucket (or `{tenant}/imports/...`
from dataset imports), with optional user metadata `machine-id`, `tray`, `captured-at`,
`label` and `correlation-id`.

Delivery is at least once, and a dataset import calls `ingest_object` directly before S3's
own notification of the same object arrives. Both paths must give one record, so the image id
is derived from bucket, key and ETag (the one identity both paths know; the version id only
comes with the notification), and every write is conditional or idempotent:

1. a record with that id already exists: a redelivery; finish the idempotent tail (event,
   removing a rejected original) and return it;
2. read the object once and inspect it;
3. accepted: thumbnail, claim the tenant's sha256 (first claimant is the original, the rest
   are duplicates), conditional put of the record;
   rejected: copy the object to quarantine, conditional put of the record;
4. the event (deduplicated by the image id), then the rejected original is deleted.

Between 3 and 4 a crash loses nothing: the record is written, and the redelivery runs step 4.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from stek.bucket_events import ObjectCreated
from stek.errors import RejectedImage
from stek.images.catalog import ImageCatalog, ImageRecord, ImageStatus
from stek.images.inspect import inspect_image
from stek.observability import logger
from stek.services import services

IMPORTS_SEGMENT = "imports"  # `{tenant}/imports/...`: dataset imports, machine from metadata
UNSCOPED_TENANT = "~unscoped"  # keys with no tenant; '~' is no valid tenant character
_IMAGE_NAMESPACE = uuid.UUID("0b6f3c1a-4a53-4f0f-8d6e-2f7f4f0c1d55")
_MISSING_CODES = frozenset(
    {"NoSuchKey", "NoSuchVersion", "NoSuchBucket", "PreconditionFailed", "404", "412"}
)
_EVENT_TYPES = {
    ImageStatus.INGESTED: "image.ingested",
    ImageStatus.DUPLICATE: "image.duplicate",
    ImageStatus.REJECTED: "image.rejected",
}


@dataclass(frozen=True)
class _Upload:
    """One object version as read from the raw bucket."""

    body: bytes | None  # None when the object was not read (missing, too large)
    size: int
    metadata: dict[str, str]


def image_id_for(created: ObjectCreated) -> str:
    """The image id of an object version: the same for every delivery of it."""
    version = created.etag.strip('"') or created.version_id or created.sequencer
    return uuid.uuid5(_IMAGE_NAMESPACE, f"{created.bucket}/{created.key}@{version}").hex


def ingest_object(created: ObjectCreated) -> ImageRecord:
    """Catalog one object, or quarantine it with a reason; idempotent per object version."""
    catalog = _catalog()
    tenant, machine_id = _key_scope(created.key)
    image_id = image_id_for(created)
    logger.append_keys(tenant=tenant, image_id=image_id, key=created.key)

    existing = catalog.find(tenant, image_id)
    if existing is not None:
        logger.info("image redelivered", status=existing.status.value)
        _finish(existing, created)
        return existing

    upload = _read(created)
    record = _new_record(created, tenant, image_id, machine_id, upload)
    stored = catalog.put_new(record)
    _finish(stored, created)
    logger.info("image ingested", status=stored.status.value, reason=stored.reason)
    return stored


def _catalog() -> ImageCatalog:
    svc = services()
    return ImageCatalog(svc.settings.catalog_table, svc.dynamodb)


def _key_scope(key: str) -> tuple[str, str | None]:
    """Tenant and machine id from `{tenant}/{machine_id}/...`; missing parts come back empty."""
    parts = key.split("/")
    tenant = parts[0] if len(parts) > 1 and _is_segment(parts[0]) else ""
    machine = parts[1] if len(parts) > 2 and _is_segment(parts[1]) else None
    return tenant or UNSCOPED_TENANT, machine


def _is_segment(value: str) -> bool:
    return 0 < len(value) <= 63 and all(c.isalnum() or c in "-_" for c in value)


def _read(created: ObjectCreated) -> _Upload:
    """The object's bytes and metadata, read once; bodies over the byte limit stay unread."""
    try:
        answer = services().s3.get_object(**_object_version(created))
    except ClientError as error:
        if error.response["Error"]["Code"] in _MISSING_CODES:
            return _Upload(body=None, size=created.size, metadata={})
        raise
    metadata = {name.lower(): value for name, value in answer.get("Metadata", {}).items()}
    size = int(answer["ContentLength"])
    if size > services().settings.max_upload_bytes:
        answer["Body"].close()
        return _Upload(body=None, size=size, metadata=metadata)
    return _Upload(body=answer["Body"].read(), size=size, metadata=metadata)


def _object_version(created: ObjectCreated) -> dict[str, str]:
    """The request parameters that name exactly the object version the event is about."""
    request = {"Bucket": created.bucket, "Key": created.key}
    if created.version_id:
        request["VersionId"] = created.version_id
    elif created.etag:
        request["IfMatch"] = f'"{created.etag.strip(chr(34))}"'
    return request


def _new_record(
    created: ObjectCreated, tenant: str, image_id: str, machine_id: str | None, upload: _Upload
) -> ImageRecord:
    settings = services().settings
    captured_at, metadata_note = _captured_at(upload.metadata.get("captured-at"))
    record = ImageRecord(
        tenant=tenant,
        image_id=image_id,
        status=ImageStatus.INGESTED,
        bucket=created.bucket,
        key=created.key,
        size=upload.size,
        machine_id=_machine_id(machine_id, upload.metadata),
        tray=upload.metadata.get("tray") or None,
        captured_at=captured_at,
        label=upload.metadata.get("label") or None,
        reason_detail=metadata_note,
        ingested_at=datetime.now(UTC),
        correlation_id=upload.metadata.get("correlation-id") or image_id,
    )
    try:
        _check_scope(tenant, machine_id, created.key)
        body = _body_of(upload, settings.max_upload_bytes)
        inspected = inspect_image(
            body, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels
        )
    except RejectedImage as rejection:
        return _quarantined(record, rejection, created)
    record = record.model_copy(
        update={
            "sha256": inspected.sha256,
            "phash": inspected.phash,
            "width": inspected.width,
            "height": inspected.height,
            "format": inspected.format,
        }
    )
    return _cataloged(record, inspected.thumbnail_jpeg)


def _check_scope(tenant: str, machine_id: str | None, key: str) -> None:
    if tenant == UNSCOPED_TENANT:
        raise RejectedImage("no_tenant_prefix", f"key {key!r} is not under '{{tenant}}/'")
    if machine_id is None:
        raise RejectedImage(
            "no_machine_prefix", f"key {key!r} is not under '{{tenant}}/{{machine_id}}/'"
        )


def _body_of(upload: _Upload, max_bytes: int) -> bytes:
    if upload.body is not None:
        return upload.body
    if upload.size > max_bytes:
        raise RejectedImage("too_large", f"{upload.size} bytes is over the limit of {max_bytes}")
    raise RejectedImage("object_missing", "the object was gone before it could be read")


def _machine_id(from_key: str | None, metadata: dict[str, str]) -> str | None:
    # The key prefix is what a presigned upload enforces, so it wins over the metadata;
    # dataset imports carry no machine in their key.
    if from_key == IMPORTS_SEGMENT:
        return metadata.get("machine-id") or None
    return from_key


def _captured_at(value: str | None) -> tuple[datetime | None, str | None]:
    if not value:
        return None, None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None, f"captured-at {value[:40]!r} is not an ISO 8601 time; ignored"
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), None


def _cataloged(record: ImageRecord, thumbnail_jpeg: bytes) -> ImageRecord:
    """The record of an accepted image: the original, or a duplicate of the tenant's first."""
    assert record.sha256 is not None
    first = _catalog().claim_sha256(record.tenant, record.sha256, record.image_id)
    if first != record.image_id:
        return record.model_copy(
            update={
                "status": ImageStatus.DUPLICATE,
                "duplicate_of": first,
                "thumbnail_key": thumbnail_key(record.tenant, first),
            }
        )
    key = thumbnail_key(record.tenant, record.image_id)
    services().s3.put_object(
        Bucket=services().settings.artifacts_bucket,
        Key=key,
        Body=thumbnail_jpeg,
        ContentType="image/jpeg",
    )
    return record.model_copy(update={"thumbnail_key": key})


def thumbnail_key(tenant: str, image_id: str) -> str:
    return f"{tenant}/thumbnails/{image_id}.jpg"


def quarantine_key(tenant: str, key: str) -> str:
    return f"{tenant}/quarantine/{key}"


def _quarantined(
    record: ImageRecord, rejection: RejectedImage, created: ObjectCreated
) -> ImageRecord:
    """The record of a rejected object, after copying it (if it exists) to quarantine."""
    update: dict[str, Any] = {
        "status": ImageStatus.REJECTED,
        "reason": rejection.reason,
        "reason_detail": rejection.detail,
    }
    if rejection.reason != "object_missing":
        update["quarantine_key"] = _copy_to_quarantine(record.tenant, created)
    logger.info("image rejected", reason=rejection.reason, detail=rejection.detail)
    return record.model_copy(update=update)


def _copy_to_quarantine(tenant: str, created: ObjectCreated) -> str:
    key = quarantine_key(tenant, created.key)
    source: dict[str, str] = {"Bucket": created.bucket, "Key": created.key}
    if created.version_id:
        source["VersionId"] = created.version_id
    # The managed copy switches to multipart copies for objects over 5 GB.
    services().s3.copy(source, services().settings.artifacts_bucket, key)
    return key


def _finish(record: ImageRecord, created: ObjectCreated) -> None:
    """The idempotent tail of ingesting: the event, and the rejected original moved out."""
    services().events.record(
        _EVENT_TYPES[record.status],
        record.tenant,
        record.image_id,
        correlation_id=record.correlation_id,
        dedup=record.image_id,
        **_event_data(record),
    )
    if record.quarantine_key:
        _delete_original(created)


def _event_data(record: ImageRecord) -> dict[str, Any]:
    fields: tuple[str, ...] = ("bucket", "key", "size", "machine_id", "tray", "label")
    if record.status is ImageStatus.REJECTED:
        fields += ("reason", "reason_detail", "quarantine_key")
    else:
        fields += ("sha256", "phash", "width", "height", "format", "duplicate_of")
    dumped = record.model_dump(mode="json", include=set(fields))
    return {name: value for name, value in dumped.items() if value is not None}


def _delete_original(created: ObjectCreated) -> None:
    """Remove exactly the quarantined version from the raw bucket; a no-op when it is gone."""
    s3 = services().s3
    if created.version_id:
        # Deleting a version that no longer exists succeeds, so redeliveries repeat this safely.
        s3.delete_object(Bucket=created.bucket, Key=created.key, VersionId=created.version_id)
        return
    try:
        s3.head_object(**_object_version(created))
    except ClientError as error:
        if error.response["Error"]["Code"] in _MISSING_CODES:
            return
        raise
    # Maintenance: between this check and the delete, a newer object put at the same key
    # (no version id to pin) would be hidden too; S3's conditional delete would close this.
    s3.delete_object(Bucket=created.bucket, Key=created.key)
