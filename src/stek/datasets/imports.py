"""Imports: annotated images from a zip or a bucket prefix join a dataset, checked like uploads.

Each image is written to the raw bucket at `{tenant}/imports/{dataset_id}/{import_id}/{path}`
and ingested right away with `ingest_object` (S3's own notification of the same object
follows and finds the record already there). Rejected images are reported, and kept as
members so the version's cleaning report names them too.

Maintenance: an import runs inside its HTTP request, so behind API Gateway (30 s) it suits
archives of a few hundred images; larger ones should go through a queue like version builds.
"""

from __future__ import annotations

import base64
import binascii
import uuid

from pydantic import BaseModel, Field, model_validator

from stek.bucket_events import ObjectCreated
from stek.datasets.archive import PrefixTree, ZipTree, check_prefix
from stek.datasets.catalog import Dataset, DatasetCatalog, DatasetImage
from stek.datasets.formats import AnnotatedImage, FileTree, Format, read_annotations
from stek.datasets.manifest import Box, Task
from stek.errors import InvalidInput
from stek.images.catalog import ImageRecord, ImageStatus
from stek.ingest import ingest_object
from stek.observability import logger
from stek.services import Services


class ImportRequest(BaseModel):
    """Annotations in `format`, from exactly one of: a prefix, a zip object, a zip body."""

    format: Format
    prefix: str | None = Field(
        default=None, description="in the raw bucket, starting with your tenant"
    )
    archive_key: str | None = Field(
        default=None, description="a zip in the raw bucket, under your tenant"
    )
    archive_base64: str | None = Field(default=None, description="a small zip sent inline")

    @model_validator(mode="after")
    def _one_source(self) -> ImportRequest:
        given = [s for s in (self.prefix, self.archive_key, self.archive_base64) if s is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of prefix, archive_key or archive_base64")
        return self


class RejectedFile(BaseModel):
    path: str
    image_id: str
    reason: str | None
    detail: str | None


class ImportResult(BaseModel):
    import_id: str
    dataset_id: str
    format: Format
    images: int
    accepted: int
    duplicates: int
    rejected: list[RejectedFile]
    classes: list[str]
    unknown_classes: list[str]


def import_annotations(
    svc: Services, datasets: DatasetCatalog, tenant: str, dataset_id: str, request: ImportRequest
) -> ImportResult:
    dataset = datasets.get(tenant, dataset_id)
    tree = _file_tree(svc, tenant, request)
    annotations = read_annotations(request.format, tree, dataset.task)
    if not dataset.classes:
        dataset = datasets.add_classes(dataset, annotations.classes)
    import_id = uuid.uuid4().hex[:12]
    logger.info(
        "import started", dataset_id=dataset_id, import_id=import_id, images=len(annotations.images)
    )

    members, records = [], []
    for image in annotations.images:
        record = _ingest(svc, dataset, import_id, image.path, tree.read(image.path), image)
        records.append(record)
        members.append(_member(image, record, import_id))
    datasets.add_images(tenant, dataset_id, members)

    result = _result(dataset, import_id, request.format, annotations.images, records)
    datasets.put_import(tenant, dataset_id, import_id, result.model_dump(mode="json"))
    svc.events.record(
        "dataset.imported",
        tenant,
        dataset_id,
        correlation_id=import_id,
        import_id=import_id,
        format=request.format.value,
        images=result.images,
        rejected=len(result.rejected),
    )
    logger.info(
        "import finished", dataset_id=dataset_id, import_id=import_id, rejected=len(result.rejected)
    )
    return result


def _file_tree(svc: Services, tenant: str, request: ImportRequest) -> FileTree:
    limit = svc.settings.max_import_bytes
    if request.prefix is not None:
        return PrefixTree(
            svc.s3, svc.settings.raw_bucket, check_prefix(request.prefix, tenant), limit
        )
    if request.archive_key is not None:
        key = check_prefix(request.archive_key, tenant)
        try:
            body = svc.s3.get_object(Bucket=svc.settings.raw_bucket, Key=key)["Body"].read()
        except svc.s3.exceptions.NoSuchKey as error:
            raise InvalidInput(f"archive {key} is not in the raw bucket") from error
        return ZipTree(body, limit)
    try:
        body = base64.b64decode(request.archive_base64 or "", validate=True)
    except (binascii.Error, ValueError) as error:
        raise InvalidInput("archive_base64 is not valid base64") from error
    return ZipTree(body, limit)


def _ingest(
    svc: Services, dataset: Dataset, import_id: str, path: str, body: bytes, image: AnnotatedImage
) -> ImageRecord:
    key = f"{dataset.tenant}/imports/{dataset.dataset_id}/{import_id}/{path}"
    metadata = {"correlation-id": import_id}
    if image.label and dataset.task is Task.CLASSIFICATION and image.label.isascii():
        metadata["label"] = image.label
    answer = svc.s3.put_object(
        Bucket=svc.settings.raw_bucket, Key=key, Body=body, Metadata=metadata
    )
    created = ObjectCreated(
        bucket=svc.settings.raw_bucket, key=key, etag=answer["ETag"].strip('"'), size=len(body)
    )
    return ingest_object(created)


def _member(image: AnnotatedImage, record: ImageRecord, import_id: str) -> DatasetImage:
    boxes = image.boxes
    if image.normalised and record.width and record.height:
        boxes = [_scaled(box, record.width, record.height) for box in boxes]
    return DatasetImage(
        image_id=record.image_id,
        label=image.label,
        boxes=boxes,
        split=image.split,
        source=f"import:{import_id}",
        path=image.path,
    )


def _scaled(box: Box, width: int, height: int) -> Box:
    return Box(
        label=box.label,
        x1=round(box.x1 * width, 3),
        y1=round(box.y1 * height, 3),
        x2=round(box.x2 * width, 3),
        y2=round(box.y2 * height, 3),
    )


def _result(
    dataset: Dataset,
    import_id: str,
    fmt: Format,
    images: list[AnnotatedImage],
    records: list[ImageRecord],
) -> ImportResult:
    rejected = [
        RejectedFile(
            path=image.path,
            image_id=record.image_id,
            reason=record.reason,
            detail=record.reason_detail,
        )
        for image, record in zip(images, records, strict=True)
        if record.status is ImageStatus.REJECTED
    ]
    named = {name for image in images for name in [image.label, *(b.label for b in image.boxes)]}
    return ImportResult(
        import_id=import_id,
        dataset_id=dataset.dataset_id,
        format=fmt,
        images=len(images),
        accepted=sum(record.status is ImageStatus.INGESTED for record in records),
        duplicates=sum(record.status is ImageStatus.DUPLICATE for record in records),
        rejected=rejected,
        classes=dataset.classes,
        unknown_classes=sorted(name for name in named - set(dataset.classes) if name),
    )
