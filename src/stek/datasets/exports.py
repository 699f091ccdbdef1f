"""Exports: a READY version as a COCO, YOLO or Pascal VOC zip, with an expiring download URL.

A version never changes, so its zip in one format is written once, at
`{tenant}/datasets/{dataset_id}/versions/{version}/exports/{format}-{manifest sha256}.zip`, and
later exports hand out a new URL to the same object. The zip is assembled in a temporary
file, not in memory, so its size is bounded by the function's disk rather than its RAM.
"""

from __future__ import annotations

import tempfile
import zipfile
from datetime import UTC, datetime, timedelta

from botocore.exceptions import ClientError
from pydantic import BaseModel

from stek.datasets.formats import Format, write_export
from stek.datasets.manifest import ManifestEntry, read_manifest
from stek.datasets.versions import ready_version, version_prefix
from stek.observability import logger
from stek.services import Services

_ALREADY_COMPRESSED = frozenset({".jpg", ".jpeg", ".png", ".webp"})


class ExportRequest(BaseModel):
    format: Format


class ExportResult(BaseModel):
    dataset_id: str
    version: int
    format: Format
    bucket: str
    key: str
    images: int
    url: str
    expires_at: datetime


def export_version(
    svc: Services, tenant: str, dataset_id: str, version: int, fmt: Format, correlation_id: str
) -> ExportResult:
    summary = ready_version(svc, tenant, dataset_id, version)
    entries = read_manifest(svc.s3, summary)
    bucket = svc.settings.artifacts_bucket
    name = f"{fmt.value}-{summary.manifest_sha256[:16]}.zip"
    key = f"{version_prefix(tenant, dataset_id, version)}/exports/{name}"
    if not _exists(svc, bucket, key):
        _write_zip(svc, bucket, key, fmt, entries, summary.classes, summary.task)
    expiry = svc.settings.presign_expiry_s
    url = svc.s3.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expiry
    )
    svc.events.record(
        "dataset.exported",
        tenant,
        dataset_id,
        correlation_id=correlation_id,
        version=version,
        format=fmt.value,
        key=key,
        images=len(entries),
    )
    logger.info(
        "version exported",
        dataset_id=dataset_id,
        version=version,
        format=fmt.value,
        images=len(entries),
    )
    return ExportResult(
        dataset_id=dataset_id,
        version=version,
        format=fmt,
        bucket=bucket,
        key=key,
        images=len(entries),
        url=url,
        expires_at=datetime.now(UTC) + timedelta(seconds=expiry),
    )


def _exists(svc: Services, bucket: str, key: str) -> bool:
    try:
        svc.s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def _write_zip(
    svc: Services,
    bucket: str,
    key: str,
    fmt: Format,
    entries: list[ManifestEntry],
    classes: list[str],
    task: object,
) -> None:
    def read_image(entry: ManifestEntry) -> bytes:
        body: bytes = svc.s3.get_object(Bucket=entry.bucket, Key=entry.key)["Body"].read()
        return body

    with tempfile.TemporaryFile() as spool:
        with zipfile.ZipFile(spool, "w") as archive:
            for path, body in write_export(fmt, entries, classes, task, read_image):  # type: ignore[arg-type]
                compression = (
                    zipfile.ZIP_STORED
                    if path[path.rfind(".") :].lower() in _ALREADY_COMPRESSED
                    else zipfile.ZIP_DEFLATED
                )
                archive.writestr(
                    zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0)),
                    body,
                    compress_type=compression,
                )
        spool.seek(0)
        svc.s3.upload_fileobj(spool, bucket, key, ExtraArgs={"ContentType": "application/zip"})
