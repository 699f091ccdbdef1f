"""Training routes: scientists start, follow and cancel training jobs."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query

from stek.auth import Role
from stek.http import caller
from stek.services import services
from stek.training.dispatch import cancel_job, job_store, submit_job
from stek.training.schema import TrainingJob, TrainingJobPage, TrainingRequest

router = Router()

_READERS = (Role.SCIENTIST, Role.OPERATOR)


@router.post("/v1/training-jobs", tags=["training"], summary="Start training on a dataset version")
def start_training(
    request: TrainingRequest,
    idempotency_key: Annotated[
        str | None,
        Header(alias="idempotency-key", max_length=128, description="same key, same job"),
    ] = None,
) -> Response[TrainingJob]:
    principal = caller(router)
    principal.require(Role.SCIENTIST)
    job, created = submit_job(
        services(),
        principal.tenant,
        request,
        idempotency_key=idempotency_key,
        actor=principal.key_id,
    )
    return Response(
        status_code=201 if created else 200,
        content_type="application/json",
        body=job,
        headers={"Location": f"/v1/training-jobs/{job.job_id}"},
    )


@router.get("/v1/training-jobs", tags=["training"], summary="List training jobs, newest first")
def list_training_jobs(
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query()] = None,
) -> TrainingJobPage:
    principal = caller(router)
    principal.require(*_READERS)
    return job_store(services()).list(principal.tenant, limit=limit, cursor=cursor)


@router.get("/v1/training-jobs/<job_id>", tags=["training"], summary="One training job")
def get_training_job(job_id: Annotated[str, Path(max_length=64)]) -> TrainingJob:
    principal = caller(router)
    principal.require(*_READERS)
    return job_store(services()).get(principal.tenant, job_id)


@router.post(
    "/v1/training-jobs/<job_id>/cancel", tags=["training"], summary="Cancel a training job"
)
def cancel_training_job(job_id: Annotated[str, Path(max_length=64)]) -> TrainingJob:
    principal = caller(router)
    principal.require(Role.SCIENTIST)
    return cancel_job(services(), principal.tenant, job_id, actor=principal.key_id)
