"""Image routes: machines ask for presigned uploads; everyone reads the image catalog."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query
from pydantic import BaseModel, Field

from stek.auth import Role
from stek.errors import InvalidInput, PayloadTooLarge
from stek.http import caller
from stek.images.catalog import ImageCatalog, ImageRecord, ImageStatus
from stek.ingest import IMPORTS_SEGMENT
from stek.observability import logger
from stek.services import services

router = Router()

ImageContentType = Literal["image/jpeg", "image/png", "image/webp", "image/tiff", "image/bmp"]
_SEGMENT = r"^[A-Za-z0-9_-]{1,63}$"
_PRINTABLE = r"^[\x20-\x7e]*$"  # S3 user metadata travels as HTTP headers: plain ASCII


class UploadRequest(BaseModel):
    """What a machine is about to upload."""

    machine_id: str = Field(pattern=_SEGMENT, examples=["machine-07"])
    filename: str = Field(
        min_length=1, max_length=200, pattern=r"^[^/\\\x00-\x1f]+$", examples=["IMG_0001.jpg"]
    )
    content_type: ImageContentType
    size: int = Field(gt=0, description="bytes the machine will send")
    tray: str | None = Field(default=None, max_length=64, pattern=_PRINTABLE)
    captured_at: datetime | None = None
    label: str | None = Field(default=None, max_length=128, pattern=_PRINTABLE)


class UploadTicket(BaseModel):
    """A presigned POST: send `fields` and then the file as multipart form data to `url`."""

    url: str
    fields: dict[str, str]
    bucket: str
    key: str
    max_bytes: int
    expires_at: datetime
    correlation_id: str


class ImagePage(BaseModel):
    images: list[ImageRecord]
    next_cursor: str | None = None


class ImageDetail(ImageRecord):
    thumbnail_url: str | None = Field(default=None, description="expires at thumbnail_expires_at")
    thumbnail_expires_at: datetime | None = None


@router.post("/v1/uploads", tags=["images"], summary="Ask for a presigned upload of one image")
def create_upload(upload: UploadRequest) -> UploadTicket:
    principal = caller(router)
    principal.require(Role.MACHINE)
    settings = services().settings
    _check_upload(upload, settings.max_upload_bytes)

    correlation_id = uuid.uuid4().hex
    key = f"{principal.tenant}/{upload.machine_id}/{correlation_id}/{upload.filename}"
    metadata = _upload_metadata(upload, correlation_id)
    # boto3 adds the exact bucket and key conditions itself.
    conditions: list[object] = [
        {"Content-Type": upload.content_type},
        ["content-length-range", 1, settings.max_upload_bytes],
        *({name: value} for name, value in metadata.items()),
    ]
    post = services().s3.generate_presigned_post(
        Bucket=settings.raw_bucket,
        Key=key,
        Fields={"Content-Type": upload.content_type, **metadata},
        Conditions=conditions,
        ExpiresIn=settings.presign_expiry_s,
    )
    logger.info("upload presigned", key=key, machine_id=upload.machine_id, size=upload.size)
    return UploadTicket(
        url=post["url"],
        fields=post["fields"],
        bucket=settings.raw_bucket,
        key=key,
        max_bytes=settings.max_upload_bytes,
        expires_at=datetime.now(UTC) + timedelta(seconds=settings.presign_expiry_s),
        correlation_id=correlation_id,
    )


@router.get("/v1/images", tags=["images"], summary="List images, newest ingested last")
def list_images(
    status: Annotated[ImageStatus | None, Query()] = None,
    machine_id: Annotated[str | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="ingested at or after")] = None,
    until: Annotated[datetime | None, Query(description="ingested at or before")] = None,
    label: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query()] = None,
) -> ImagePage:
    principal = caller(router)
    principal.require(Role.SCIENTIST, Role.OPERATOR, Role.MACHINE)
    images, next_cursor = _catalog().query(
        principal.tenant,
        status=status,
        machine_id=machine_id,
        since=since,
        until=until,
        label=label,
        limit=limit,
        cursor=cursor,
    )
    return ImagePage(images=images, next_cursor=next_cursor)


@router.get(
    "/v1/images/<image_id>", tags=["images"], summary="One image: record, reason, thumbnail"
)
def get_image(image_id: str) -> ImageDetail:
    principal = caller(router)
    principal.require(Role.SCIENTIST, Role.OPERATOR, Role.MACHINE)
    record = _catalog().get(principal.tenant, image_id)
    detail = ImageDetail(**record.model_dump())
    if record.thumbnail_key:
        settings = services().settings
        detail.thumbnail_url = services().s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": settings.artifacts_bucket, "Key": record.thumbnail_key},
            ExpiresIn=settings.presign_expiry_s,
        )
        detail.thumbnail_expires_at = datetime.now(UTC) + timedelta(
            seconds=settings.presign_expiry_s
        )
    return detail


def _catalog() -> ImageCatalog:
    return ImageCatalog(services().settings.catalog_table, services().dynamodb)


def _check_upload(upload: UploadRequest, max_bytes: int) -> None:
    if upload.size > max_bytes:
        raise PayloadTooLarge(f"size {upload.size} is over the upload limit of {max_bytes} bytes")
    if upload.machine_id == IMPORTS_SEGMENT:
        raise InvalidInput(f"machine_id {IMPORTS_SEGMENT!r} is reserved for dataset imports")


def _upload_metadata(upload: UploadRequest, correlation_id: str) -> dict[str, str]:
    metadata = {
        "x-amz-meta-machine-id": upload.machine_id,
        "x-amz-meta-correlation-id": correlation_id,
    }
    if upload.tray:
        metadata["x-amz-meta-tray"] = upload.tray
    if upload.captured_at:
        metadata["x-amz-meta-captured-at"] = upload.captured_at.isoformat()
    if upload.label:
        metadata["x-amz-meta-label"] = upload.label
    return metadata
