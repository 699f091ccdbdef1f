"""Versions: asked for over HTTP (202, BUILDING), built by the clean function from its queue.

A build reads the dataset's images as they were when the version was asked for, cleans them
(cleaning.py), writes the content-addressed manifest and the cleaning report to the artifacts
bucket and freezes the summary as READY. Progress goes to the summary and to
`dataset.version.progress` events. A redelivered build of a READY version does nothing; a
rebuild after a crash writes the same manifest, because every step is deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from stek.datasets.catalog import Dataset, DatasetCatalog, DatasetImage
from stek.datasets.cleaning import (
    Candidate,
    CleaningOptions,
    CleaningReport,
    clean,
    counts_per_split,
)
from stek.datasets.manifest import (
    ManifestEntry,
    Split,
    VersionStatus,
    VersionSummary,
    encode_manifest,
    get_version,
    read_manifest,
)
from stek.errors import Conflict, InvalidInput, NotFound, StekError
from stek.images.catalog import ImageCatalog, ImageRecord
from stek.observability import logger
from stek.services import Services

_RECORD_BATCH = 1000


class VersionRequest(BaseModel):
    cleaning: CleaningOptions = Field(default_factory=CleaningOptions)


class VersionBuild(BaseModel):
    """The message on the versions queue."""

    tenant: str
    dataset_id: str
    version: int
    requested_at: datetime
    cleaning: CleaningOptions
    correlation_id: str = ""


class VersionDetail(BaseModel):
    summary: VersionSummary
    report: CleaningReport | None = None


def manifest_key(tenant: str, dataset_id: str, version: int, sha256: str) -> str:
    return f"{version_prefix(tenant, dataset_id, version)}/manifest-{sha256}.jsonl"


def version_prefix(tenant: str, dataset_id: str, version: int) -> str:
    return f"{tenant}/datasets/{dataset_id}/versions/{version}"


def request_version(
    svc: Services,
    datasets: DatasetCatalog,
    tenant: str,
    dataset_id: str,
    request: VersionRequest,
    correlation_id: str,
) -> VersionSummary:
    dataset = datasets.get(tenant, dataset_id)
    if not dataset.classes:
        raise InvalidInput(f"dataset {dataset_id} has no classes yet; import annotations first")
    if datasets.count_images(tenant, dataset_id) == 0:
        raise InvalidInput(f"dataset {dataset_id} has no images yet; add or import some first")
    parent = _latest_ready(datasets, tenant, dataset_id)
    number = datasets.next_version(tenant, dataset_id)
    now = datetime.now(UTC)
    summary = VersionSummary(
        tenant=tenant,
        dataset_id=dataset_id,
        version=number,
        task=dataset.task,
        classes=dataset.classes,
        status=VersionStatus.BUILDING,
        parent_version=parent,
        created_at=now,
    )
    datasets.put_version(summary, new=True)
    build = VersionBuild(
        tenant=tenant,
        dataset_id=dataset_id,
        version=number,
        requested_at=now,
        cleaning=request.cleaning,
        correlation_id=correlation_id,
    )
    svc.sqs.send_message(
        QueueUrl=svc.settings.versions_queue_url, MessageBody=build.model_dump_json()
    )
    logger.info("version requested", dataset_id=dataset_id, version=number, parent_version=parent)
    return summary


def _latest_ready(datasets: DatasetCatalog, tenant: str, dataset_id: str) -> int | None:
    ready = [
        v.version for v in datasets.versions(tenant, dataset_id) if v.status is VersionStatus.READY
    ]
    return max(ready, default=None)


def build_version(
    svc: Services, datasets: DatasetCatalog, images: ImageCatalog, build: VersionBuild
) -> VersionSummary:
    """Clean and freeze one version; a no-op for a version that is already READY."""
    table = svc.settings.catalog_table
    summary = get_version(svc.dynamodb, table, build.tenant, build.dataset_id, build.version)
    if summary.frozen:
        logger.info("version already built", dataset_id=build.dataset_id, version=build.version)
        return summary
    try:
        return _build(svc, datasets, images, build, summary)
    except Conflict:
        # Another delivery of the same build froze it first: that one stands.
        return get_version(svc.dynamodb, table, build.tenant, build.dataset_id, build.version)
    except StekError as error:
        # Bad data cannot be fixed by retrying: the version fails with the reason.
        _fail(datasets, summary, error.detail)
        return summary.model_copy(update={"status": VersionStatus.FAILED, "error": error.detail})
    except Exception as error:
        _fail(datasets, summary, f"{type(error).__name__}: {error}")
        raise


def _build(
    svc: Services,
    datasets: DatasetCatalog,
    images: ImageCatalog,
    build: VersionBuild,
    summary: VersionSummary,
) -> VersionSummary:
    progress = _Progress(svc, datasets, summary, build.correlation_id)
    dataset = datasets.get(build.tenant, build.dataset_id)
    members = list(datasets.images(build.tenant, build.dataset_id, added_until=build.requested_at))
    progress.report(0.1, "images listed", images=len(members))

    parent_splits = _parent_splits(svc, summary)
    candidates = list(_candidates(images, build.tenant, members, parent_splits))
    progress.report(0.4, "records read", images=len(candidates))

    cleaned = clean(candidates, dataset.task, dataset.classes, build.cleaning)
    progress.report(0.7, "images cleaned", images=len(cleaned.entries))

    frozen = _write(svc, dataset, summary, cleaned.entries, cleaned.report)
    datasets.put_version(frozen)
    _announce(svc, frozen, cleaned.report, build.correlation_id)
    logger.info(
        "version built",
        dataset_id=dataset.dataset_id,
        version=frozen.version,
        images=len(cleaned.entries),
    )
    return frozen


def _parent_splits(svc: Services, summary: VersionSummary) -> dict[str, Split]:
    if summary.parent_version is None:
        return {}
    parent = get_version(
        svc.dynamodb,
        svc.settings.catalog_table,
        summary.tenant,
        summary.dataset_id,
        summary.parent_version,
    )
    return {entry.image_id: entry.split for entry in read_manifest(svc.s3, parent)}


def _candidates(
    images: ImageCatalog, tenant: str, members: list[DatasetImage], parent_splits: dict[str, Split]
) -> Iterator[Candidate]:
    for start in range(0, len(members), _RECORD_BATCH):
        batch = members[start : start + _RECORD_BATCH]
        records = _records(images, tenant, [member.image_id for member in batch])
        for member in batch:
            yield Candidate(
                member, records.get(member.image_id), parent_splits.get(member.image_id)
            )


def _records(images: ImageCatalog, tenant: str, image_ids: list[str]) -> dict[str, ImageRecord]:
    try:
        found = images.get_many(tenant, image_ids)
    except NotFound as error:
        missing = set(error.extra.get("missing", []))
        found = (
            images.get_many(tenant, [i for i in image_ids if i not in missing])
            if len(missing) < len(image_ids)
            else []
        )
    return {record.image_id: record for record in found}


def _write(
    svc: Services,
    dataset: Dataset,
    summary: VersionSummary,
    entries: list[ManifestEntry],
    report: CleaningReport,
) -> VersionSummary:
    bucket = svc.settings.artifacts_bucket
    body, sha256 = encode_manifest(entries)
    key = manifest_key(dataset.tenant, dataset.dataset_id, summary.version, sha256)
    svc.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson")
    prefix = version_prefix(dataset.tenant, dataset.dataset_id, summary.version)
    report_key = f"{prefix}/cleaning-report.json"
    svc.s3.put_object(
        Bucket=bucket,
        Key=report_key,
        Body=report.model_dump_json(indent=1).encode(),
        ContentType="application/json",
    )
    return summary.model_copy(
        update={
            "status": VersionStatus.READY,
            "classes": dataset.classes,
            "manifest_bucket": bucket,
            "manifest_key": key,
            "manifest_sha256": sha256,
            "counts": counts_per_split(entries, dataset.task, dataset.classes),
            "report_key": report_key,
            "progress": 1.0,
            "error": None,
        }
    )


def _announce(
    svc: Services, summary: VersionSummary, report: CleaningReport, correlation_id: str
) -> None:
    svc.events.record(
        "dataset.version.created",
        summary.tenant,
        summary.dataset_id,
        correlation_id=correlation_id,
        dedup=f"{summary.dataset_id}/{summary.version}",
        version=summary.version,
        parent_version=summary.parent_version,
        images=report.images_out,
        counts=summary.counts,
        manifest_sha256=summary.manifest_sha256,
        dropped={rule.rule: len(rule.dropped) for rule in report.rules if rule.dropped},
        found={rule.rule: len(rule.found) for rule in report.rules if rule.found},
    )


def _fail(datasets: DatasetCatalog, summary: VersionSummary, reason: str) -> None:
    logger.warning(
        "version failed", dataset_id=summary.dataset_id, version=summary.version, reason=reason
    )
    datasets.put_version(
        summary.model_copy(update={"status": VersionStatus.FAILED, "error": reason})
    )


class _Progress:
    """Progress of one build, in the summary and as deduplicated events."""

    def __init__(
        self, svc: Services, datasets: DatasetCatalog, summary: VersionSummary, correlation_id: str
    ) -> None:
        self._svc, self._datasets, self._summary, self._correlation_id = (
            svc,
            datasets,
            summary,
            correlation_id,
        )

    def report(self, progress: float, stage: str, images: int) -> None:
        self._summary = self._summary.model_copy(update={"progress": progress})
        self._datasets.put_version(self._summary)
        self._svc.events.record(
            "dataset.version.progress",
            self._summary.tenant,
            self._summary.dataset_id,
            correlation_id=self._correlation_id,
            dedup=f"{self._summary.dataset_id}/{self._summary.version}/{stage}",
            version=self._summary.version,
            progress=progress,
            stage=stage,
            images=images,
        )
        logger.info(
            "version progress", version=self._summary.version, progress=progress, stage=stage
        )


def version_detail(svc: Services, tenant: str, dataset_id: str, version: int) -> VersionDetail:
    summary = get_version(svc.dynamodb, svc.settings.catalog_table, tenant, dataset_id, version)
    if not summary.report_key:
        return VersionDetail(summary=summary)
    body = svc.s3.get_object(Bucket=svc.settings.artifacts_bucket, Key=summary.report_key)[
        "Body"
    ].read()
    return VersionDetail(summary=summary, report=CleaningReport.model_validate(json.loads(body)))


def ready_version(svc: Services, tenant: str, dataset_id: str, version: int) -> VersionSummary:
    summary = get_version(svc.dynamodb, svc.settings.catalog_table, tenant, dataset_id, version)
    if not summary.frozen:
        raise InvalidInput(
            f"version {version} is {summary.status.value}; only READY versions can be read"
        )
    return summary
