"""Starting and cancelling training jobs: what POST /v1/training-jobs and cancel do."""

from __future__ import annotations

import uuid
from typing import Any

from stek.datasets.manifest import VersionSummary, get_version
from stek.errors import InvalidInput, NotFound
from stek.observability import logger
from stek.services import Services
from stek.training.jobs import JobStore, job_id_for
from stek.training.schema import ARCHITECTURE_TASK, TrainingJob, TrainingMessage, TrainingRequest


def job_store(svc: Services) -> JobStore:
    return JobStore(svc.settings.catalog_table, svc.dynamodb)


def submit_job(
    svc: Services, tenant: str, request: TrainingRequest, *, idempotency_key: str | None, actor: str
) -> tuple[TrainingJob, bool]:
    """Check the request against the dataset version, record the job and queue it.

    Returns (job, created). Retrying with the same idempotency key gives the same job and
    queues no second message, unless the first attempt stopped between the two steps.
    """
    version = _version(svc, tenant, request)
    check_request_fits_version(request, version)

    store = job_store(svc)
    job_id = job_id_for(tenant, idempotency_key)
    job, created = store.create(
        tenant,
        job_id,
        request,
        version.classes,
        correlation_id=uuid.uuid4().hex,
        actor=actor,
    )
    if not store.message_sent(tenant, job.job_id):
        _queue(svc, job)
        store.mark_message_sent(tenant, job.job_id)
    if created:
        svc.events.record(
            "job.queued",
            tenant,
            job.job_id,
            correlation_id=job.correlation_id,
            actor=actor,
            dedup=f"{job.job_id}:queued",
            dataset_id=request.dataset_id,
            version=request.version,
            architecture=request.architecture.value,
            model_name=request.model_name,
        )
        logger.info(
            "training job queued", job_id=job.job_id, architecture=request.architecture.value
        )
    return job, created


def cancel_job(svc: Services, tenant: str, job_id: str, *, actor: str) -> TrainingJob:
    job = job_store(svc).cancel(tenant, job_id)
    if job.status.finished:
        # Queued jobs stop here; the runner reports running ones when it honours the request.
        svc.events.record(
            "job.cancelled",
            tenant,
            job_id,
            correlation_id=job.correlation_id,
            actor=actor,
            dedup=f"{job_id}:cancelled",
            while_status="QUEUED",
        )
    logger.info("training job cancel requested", job_id=job_id, status=job.status.value)
    return job


def check_request_fits_version(request: TrainingRequest, version: VersionSummary) -> None:
    """Refuse, up front, work that cannot succeed on this version."""
    if not version.frozen:
        raise InvalidInput(
            f"dataset {request.dataset_id} version {request.version} is {version.status}; "
            "train on a READY (frozen) version"
        )
    if request.task is not version.task:
        raise InvalidInput(
            f"the version is a {version.task} dataset, but the request asks for {request.task}"
        )
    expected = ARCHITECTURE_TASK[request.architecture]
    if expected is not request.task:
        raise InvalidInput(
            f"{request.architecture} is a {expected} architecture; pick one for {request.task}"
        )
    if len(version.classes) < 2 and request.task == "classification":
        raise InvalidInput("classification needs a version with at least 2 classes")
    if not version.classes:
        raise InvalidInput("the version has no classes to learn")


def _version(svc: Services, tenant: str, request: TrainingRequest) -> VersionSummary:
    try:
        return get_version(
            svc.dynamodb, svc.settings.catalog_table, tenant, request.dataset_id, request.version
        )
    except NotFound as error:
        # A missing version is something wrong in the body, not a missing route.
        raise InvalidInput(error.detail) from error


def _queue(svc: Services, job: TrainingJob) -> Any:
    message = TrainingMessage(
        tenant=job.tenant, job_id=job.job_id, correlation_id=job.correlation_id
    )
    return svc.sqs.send_message(
        QueueUrl=svc.settings.training_queue_url, MessageBody=message.model_dump_json()
    )
