"""Putting catalog images into a dataset: by id, or every image a query matches.

For classification an image's label is the one its machine sent with the upload (ingest
metadata `label`), unless the request gives one; adding an image again relabels it.
Catalog images carry no boxes; a detection dataset's cleaning flags them.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, model_validator

from stek.datasets.catalog import DatasetCatalog, DatasetImage
from stek.images.catalog import ImageCatalog, ImageRecord, ImageStatus

MAX_IMAGES_PER_REQUEST = 100_000


class ImageQuery(BaseModel):
    machine_id: str | None = None
    since: datetime | None = Field(default=None, description="ingested at or after")
    until: datetime | None = Field(default=None, description="ingested at or before")
    label: str | None = None
    status: ImageStatus | None = Field(
        default=None, description="default: ingested and duplicate images"
    )


class AddImages(BaseModel):
    """Either `image_ids` or `query`."""

    image_ids: list[str] | None = Field(default=None, max_length=MAX_IMAGES_PER_REQUEST)
    query: ImageQuery | None = None
    label: str | None = Field(
        default=None, description="label for all these images, instead of their upload's"
    )

    @model_validator(mode="after")
    def _one_source(self) -> AddImages:
        if (self.image_ids is None) == (self.query is None):
            raise ValueError("give either image_ids or query")
        return self


class ImagesAdded(BaseModel):
    dataset_id: str
    added: int
    image_ids: list[str]
    images_in_dataset: int


def add_images(
    datasets: DatasetCatalog, images: ImageCatalog, tenant: str, dataset_id: str, request: AddImages
) -> ImagesAdded:
    datasets.get(tenant, dataset_id)
    records = _records(images, tenant, request)
    members = [
        DatasetImage(image_id=record.image_id, label=request.label or record.label)
        for record in records
    ]
    datasets.add_images(tenant, dataset_id, members)
    return ImagesAdded(
        dataset_id=dataset_id,
        added=len(members),
        image_ids=[member.image_id for member in members][:1000],
        images_in_dataset=datasets.count_images(tenant, dataset_id),
    )


def _records(images: ImageCatalog, tenant: str, request: AddImages) -> list[ImageRecord]:
    if request.image_ids is not None:
        return images.get_many(tenant, request.image_ids)
    query = request.query
    assert query is not None
    statuses = [query.status] if query.status else [ImageStatus.INGESTED, ImageStatus.DUPLICATE]
    found: list[ImageRecord] = []
    for status in statuses:
        found.extend(
            images.iter_all(
                tenant,
                status=status,
                machine_id=query.machine_id,
                since=query.since,
                until=query.until,
                label=query.label,
            )
        )
        if len(found) > MAX_IMAGES_PER_REQUEST:
            break
    return found[:MAX_IMAGES_PER_REQUEST]
