"""Dataset routes: build datasets from uploads and imports, freeze, diff and export versions."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import BaseModel, Field, field_validator

from stek.auth import Role
from stek.datasets.catalog import Dataset, DatasetCatalog
from stek.datasets.diff import VersionDiff, diff_versions
from stek.datasets.exports import ExportRequest, export_version
from stek.datasets.imports import ImportRequest, import_annotations
from stek.datasets.manifest import Task, VersionSummary
from stek.datasets.members import AddImages, ImagesAdded, add_images
from stek.datasets.versions import VersionDetail, VersionRequest, request_version, version_detail
from stek.http import caller
from stek.images.catalog import ImageCatalog
from stek.services import Services, services

router = Router()

_READERS = (Role.SCIENTIST, Role.OPERATOR)
DatasetId = Annotated[str, Path(min_length=1, max_length=64)]
Version = Annotated[int, Path(ge=1)]


class CreateDataset(BaseModel):
    name: str = Field(min_length=1, max_length=128)
    task: Task
    classes: list[str] = Field(
        default_factory=list, max_length=1000, description="may be filled by the first import"
    )

    @field_validator("classes")
    @classmethod
    def _distinct_names(cls, classes: list[str]) -> list[str]:
        if any(not name.strip() for name in classes):
            raise ValueError("class names must not be empty")
        if len(set(classes)) != len(classes):
            raise ValueError("class names must be distinct")
        return classes


class DatasetPage(BaseModel):
    datasets: list[Dataset]
    next_cursor: str | None = None


class DatasetDetail(BaseModel):
    dataset: Dataset
    images: int
    versions: list[VersionSummary]


class VersionPage(BaseModel):
    versions: list[VersionSummary]
    next_cursor: str | None = None


def _datasets(svc: Services) -> DatasetCatalog:
    return DatasetCatalog(svc.settings.catalog_table, svc.dynamodb)


def _json(status: int, model: BaseModel, location: str | None = None) -> Response[str]:
    headers = {"Location": location} if location else None
    return Response(
        status_code=status,
        content_type="application/json",
        body=model.model_dump_json(),
        headers=headers,
    )


def _correlation_id() -> str:
    context = router.current_event.raw_event.get("requestContext") or {}
    return str(context.get("requestId") or "")


@router.post("/v1/datasets", tags=["datasets"], summary="Create a dataset")
def create_dataset(request: CreateDataset) -> Response[str]:
    principal = caller(router)
    principal.require(Role.SCIENTIST)
    svc = services()
    dataset = _datasets(svc).create(principal.tenant, request.name, request.task, request.classes)
    svc.events.record(
        "dataset.created",
        principal.tenant,
        dataset.dataset_id,
        correlation_id=_correlation_id(),
        actor=principal.key_id,
        name=dataset.name,
        task=dataset.task.value,
        classes=dataset.classes,
    )
    return _json(201, dataset, f"/v1/datasets/{dataset.dataset_id}")


@router.get("/v1/datasets", tags=["datasets"], summary="List datasets, oldest first")
def list_datasets(
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query()] = None,
) -> DatasetPage:
    principal = caller(router)
    principal.require(*_READERS)
    found, next_cursor = _datasets(services()).page(principal.tenant, limit, cursor)
    return DatasetPage(datasets=found, next_cursor=next_cursor)


@router.get(
    "/v1/datasets/<dataset_id>", tags=["datasets"], summary="One dataset, its size and versions"
)
def get_dataset(dataset_id: DatasetId) -> DatasetDetail:
    principal = caller(router)
    principal.require(*_READERS)
    datasets = _datasets(services())
    return DatasetDetail(
        dataset=datasets.get(principal.tenant, dataset_id),
        images=datasets.count_images(principal.tenant, dataset_id),
        versions=datasets.versions(principal.tenant, dataset_id),
    )


@router.post(
    "/v1/datasets/<dataset_id>/images",
    tags=["datasets"],
    summary="Add catalog images by id or query",
)
def add_dataset_images(dataset_id: DatasetId, request: AddImages) -> ImagesAdded:
    principal = caller(router)
    principal.require(Role.SCIENTIST)
    svc = services()
    images = ImageCatalog(svc.settings.catalog_table, svc.dynamodb)
    return add_images(_datasets(svc), images, principal.tenant, dataset_id, request)


@router.post(
    "/v1/datasets/<dataset_id>/imports",
    tags=["datasets"],
    summary="Import COCO, YOLO or Pascal VOC annotations from a zip or a bucket prefix",
)
def import_dataset_annotations(dataset_id: DatasetId, request: ImportRequest) -> Response[str]:
    principal = caller(router)
    principal.require(Role.SCIENTIST)
    svc = services()
    result = import_annotations(svc, _datasets(svc), principal.tenant, dataset_id, request)
    return _json(201, result)


@router.post(
    "/v1/datasets/<dataset_id>/versions",
    tags=["datasets"],
    summary="Freeze a new version: answered 202 BUILDING, cleaned and built asynchronously",
)
def create_version(
    dataset_id: DatasetId, request: Annotated[VersionRequest | None, Body()] = None
) -> Response[str]:
    principal = caller(router)
    principal.require(Role.SCIENTIST)
    svc = services()
    request = request or VersionRequest()
    summary = request_version(
        svc, _datasets(svc), principal.tenant, dataset_id, request, _correlation_id()
    )
    return _json(202, summary, f"/v1/datasets/{dataset_id}/versions/{summary.version}")


@router.get("/v1/datasets/<dataset_id>/versions", tags=["datasets"], summary="A dataset's versions")
def list_versions(dataset_id: DatasetId) -> VersionPage:
    principal = caller(router)
    principal.require(*_READERS)
    datasets = _datasets(services())
    datasets.get(principal.tenant, dataset_id)
    return VersionPage(versions=datasets.versions(principal.tenant, dataset_id))


@router.get(
    "/v1/datasets/<dataset_id>/versions/<version>",
    tags=["datasets"],
    summary="One version: status, progress, counts and its cleaning report",
)
def get_version_detail(dataset_id: DatasetId, version: Version) -> VersionDetail:
    principal = caller(router)
    principal.require(*_READERS)
    return version_detail(services(), principal.tenant, dataset_id, version)


@router.get(
    "/v1/datasets/<dataset_id>/versions/<version>/diff",
    tags=["datasets"],
    summary="Images added, removed, relabelled and moved since another version",
)
def diff_version(
    dataset_id: DatasetId, version: Version, against: Annotated[int, Query(ge=1)]
) -> VersionDiff:
    principal = caller(router)
    principal.require(*_READERS)
    return diff_versions(services(), principal.tenant, dataset_id, against, version)


@router.post(
    "/v1/datasets/<dataset_id>/versions/<version>/exports",
    tags=["datasets"],
    summary="Export a version as a COCO, YOLO or VOC zip with an expiring download URL",
)
def export_dataset_version(
    dataset_id: DatasetId, version: Version, request: ExportRequest
) -> Response[str]:
    principal = caller(router)
    principal.require(Role.SCIENTIST)
    result = export_version(
        services(), principal.tenant, dataset_id, version, request.format, _correlation_id()
    )
    return _json(201, result)
