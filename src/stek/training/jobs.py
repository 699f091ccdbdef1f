"""Training job records in the catalog table, and the lease a runner holds on one.

Layout: `pk` = `T#{tenant}#JOB#{job_id}`, `sk` = `JOB`; GSI `gsi1` lists a tenant's jobs
newest first (`gsi1pk` = `T#{tenant}#JOBS`, `gsi1sk` = `{created_at}#{job_id}`).

Every change a runner makes is conditional on it still holding the lease (`lease_owner`),
so a runner that lost its lease (it stalled past `lease_expires_at` and another took over)
cannot overwrite the newer runner's progress. Per-epoch reports live in a map keyed by the
epoch number, so writing the same epoch twice after a resume leaves one report.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from stek.errors import Conflict, NotFound
from stek.pagination import query_page
from stek.training.schema import (
    Artifacts,
    EpochReport,
    JobStatus,
    TrainingJob,
    TrainingJobPage,
    TrainingRequest,
)

_NAMESPACE = uuid.UUID("0b6f6d3e-7a53-4d5e-9d0f-2f6e0c3f1a42")
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_LIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


class LeaseLost(Exception):
    """This runner no longer holds the job's lease: another runner owns it, or it finished."""


@dataclass(frozen=True)
class LeaseRefused:
    """Why a runner could not lease a job: it has finished, or another runner holds it."""

    job: TrainingJob
    held_for_s: float  # 0 when the job has finished

    @property
    def finished(self) -> bool:
        return self.job.status.finished


def job_id_for(tenant: str, idempotency_key: str | None) -> str:
    """A fresh id, or the same id every time the same client key is presented."""
    if idempotency_key:
        return "job-" + uuid.uuid5(_NAMESPACE, f"{tenant}|{idempotency_key}").hex[:20]
    return "job-" + uuid.uuid4().hex[:20]


class JobStore:
    """Reads and conditionally writes training job records."""

    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table = table_name
        self._dynamodb = dynamodb

    # ------------------------------------------------------------------ the API's side

    def create(
        self,
        tenant: str,
        job_id: str,
        request: TrainingRequest,
        classes: list[str],
        *,
        correlation_id: str,
        actor: str,
    ) -> tuple[TrainingJob, bool]:
        """Create a QUEUED job; returns (job, created). The same id twice returns the first job,
        or refuses when the request differs (an idempotency key reused for other work)."""
        now = _now()
        item = {
            "pk": _pk(tenant, job_id),
            "sk": "JOB",
            "gsi1pk": f"T#{tenant}#JOBS",
            "gsi1sk": f"{now}#{job_id}",
            "job_id": job_id,
            "tenant": tenant,
            "status": JobStatus.QUEUED.value,
            "request": request.model_dump_json(),
            "classes": list(classes),
            "progress": Decimal(0),
            "epochs_done": 0,
            "epoch_reports": {},
            "attempts": 0,
            "cancel_requested": False,
            "message_sent": False,
            "correlation_id": correlation_id,
            "actor": actor,
            "created_at": now,
            "updated_at": now,
        }
        try:
            self._dynamodb.put_item(
                TableName=self._table,
                Item=_serialize(item),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            existing = self.get(tenant, job_id)
            if existing.request != request:
                raise Conflict(
                    "this Idempotency-Key was used for a different training request; "
                    "use a new key for new work",
                    job_id=job_id,
                ) from error
            return existing, False
        return self.get(tenant, job_id), True

    def message_sent(self, tenant: str, job_id: str) -> bool:
        item = self._item(tenant, job_id)
        return bool(item.get("message_sent"))

    def mark_message_sent(self, tenant: str, job_id: str) -> None:
        self._update(tenant, job_id, "SET message_sent = :yes", {":yes": True})

    def get(self, tenant: str, job_id: str) -> TrainingJob:
        return _job(self._item(tenant, job_id))

    def list(self, tenant: str, *, limit: int = 50, cursor: str | None = None) -> TrainingJobPage:
        """A tenant's jobs, newest first."""
        query = {
            "TableName": self._table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :jobs",
            "ExpressionAttributeValues": {":jobs": {"S": f"T#{tenant}#JOBS"}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        items, next_cursor = query_page(self._dynamodb, query, cursor)
        return TrainingJobPage(
            jobs=[_job(_deserialize(item)) for item in items], next_cursor=next_cursor
        )

    def cancel(self, tenant: str, job_id: str) -> TrainingJob:
        """A QUEUED job is CANCELLED at once; a RUNNING one is asked to stop between steps."""
        now = _now()
        try:
            return self._update(
                tenant,
                job_id,
                "SET #status = :cancelled, cancel_requested = :yes, finished_at = :now, "
                "updated_at = :now",
                {
                    ":cancelled": JobStatus.CANCELLED.value,
                    ":yes": True,
                    ":now": now,
                    ":queued": "QUEUED",
                },
                condition="#status = :queued",
            )
        except _ConditionFailed:
            pass
        try:
            return self._update(
                tenant,
                job_id,
                "SET cancel_requested = :yes, updated_at = :now",
                {":yes": True, ":now": now, ":running": JobStatus.RUNNING.value},
                condition="#status = :running",
            )
        except _ConditionFailed:
            job = self.get(tenant, job_id)
            raise Conflict(f"job {job_id} is {job.status} and can no longer be cancelled") from None

    # --------------------------------------------------------------- the runner's side

    def lease(
        self, tenant: str, job_id: str, owner: str, lease_s: float
    ) -> TrainingJob | LeaseRefused:
        """Take the job for `owner` unless another runner holds a live lease or it finished."""
        now = time.time()
        try:
            return self._update(
                tenant,
                job_id,
                "SET #status = :running, lease_owner = :owner, lease_expires_at = :expires, "
                "attempts = attempts + :one, started_at = if_not_exists(started_at, :stamp), "
                "updated_at = :stamp",
                {
                    ":running": JobStatus.RUNNING.value,
                    ":queued": JobStatus.QUEUED.value,
                    ":owner": owner,
                    ":expires": Decimal(str(round(now + lease_s, 3))),
                    ":now": Decimal(str(round(now, 3))),
                    ":one": 1,
                    ":stamp": _now(),
                },
                condition="#status IN (:queued, :running) AND (attribute_not_exists(lease_owner) "
                "OR lease_owner = :owner OR lease_expires_at < :now)",
            )
        except _ConditionFailed:
            job = self.get(tenant, job_id)
            held = max((job.lease_expires_at or now) - now, 0.0) if not job.status.finished else 0.0
            return LeaseRefused(job, held)

    def heartbeat(self, tenant: str, job_id: str, owner: str, lease_s: float) -> TrainingJob:
        """Extend the lease; the answer tells the runner whether cancellation was asked."""
        return self._runner_update(
            tenant,
            job_id,
            owner,
            "SET lease_expires_at = :expires",
            {":expires": Decimal(str(round(time.time() + lease_s, 3)))},
        )

    def record_epoch(
        self,
        tenant: str,
        job_id: str,
        owner: str,
        report: EpochReport,
        *,
        epochs: int,
        best: float | None,
    ) -> TrainingJob:
        return self._runner_update(
            tenant,
            job_id,
            owner,
            "SET epoch_reports.#epoch = :report, epochs_done = :done, progress = :progress, "
            "best_metric = :best",
            {
                ":report": report.model_dump_json(),
                ":done": report.epoch,
                ":progress": Decimal(str(round(report.epoch / epochs, 4))),
                ":best": None if best is None else Decimal(str(round(best, 6))),
            },
            names={"#epoch": str(report.epoch)},
        )

    def set_checkpoint(self, tenant: str, job_id: str, owner: str, uri: str) -> None:
        self._runner_update(tenant, job_id, owner, "SET checkpoint_uri = :uri", {":uri": uri})

    def succeed(
        self, tenant: str, job_id: str, owner: str, artifacts: Artifacts, metrics: dict[str, Any]
    ) -> TrainingJob:
        return self._finish(
            tenant,
            job_id,
            owner,
            JobStatus.SUCCEEDED,
            "model_uri = :model, card_uri = :card, final_metrics = :metrics, progress = :progress",
            {
                ":model": artifacts.model_uri,
                ":card": artifacts.card_uri,
                ":metrics": json.dumps(metrics, default=float),
                ":progress": Decimal(1),
            },
        )

    def fail(self, tenant: str, job_id: str, owner: str, reason: str) -> TrainingJob:
        return self._finish(
            tenant, job_id, owner, JobStatus.FAILED, "#error = :reason", {":reason": reason}
        )

    def fail_abandoned(self, tenant: str, job_id: str, reason: str) -> TrainingJob | None:
        """FAILED for a job no runner holds any more; None if one does, or it finished."""
        now = time.time()
        try:
            return self._update(
                tenant,
                job_id,
                "SET #status = :failed, #error = :reason, finished_at = :stamp, "
                "updated_at = :stamp REMOVE lease_owner, lease_expires_at",
                {
                    ":failed": JobStatus.FAILED.value,
                    ":reason": reason,
                    ":stamp": _now(),
                    ":queued": JobStatus.QUEUED.value,
                    ":running": JobStatus.RUNNING.value,
                    ":now": Decimal(str(round(now, 3))),
                },
                condition="#status IN (:queued, :running) AND "
                "(attribute_not_exists(lease_owner) OR lease_expires_at < :now)",
            )
        except _ConditionFailed:
            return None

    def mark_cancelled(self, tenant: str, job_id: str, owner: str) -> TrainingJob:
        return self._finish(tenant, job_id, owner, JobStatus.CANCELLED, "", {})

    def release(
        self, tenant: str, job_id: str, owner: str, *, last_error: str | None = None
    ) -> TrainingJob:
        """Give the job back (QUEUED, no lease) so another runner resumes it."""
        values: dict[str, Any] = {":queued": JobStatus.QUEUED.value}
        extra = ""
        if last_error is not None:
            extra = ", last_error = :last_error"
            values[":last_error"] = last_error
        return self._runner_update(
            tenant,
            job_id,
            owner,
            f"SET #status = :queued{extra} REMOVE lease_owner, lease_expires_at",
            values,
        )

    # ------------------------------------------------------------------------ helpers

    def _finish(
        self,
        tenant: str,
        job_id: str,
        owner: str,
        status: JobStatus,
        assignments: str,
        values: dict[str, Any],
    ) -> TrainingJob:
        extra = f", {assignments}" if assignments else ""
        return self._runner_update(
            tenant,
            job_id,
            owner,
            f"SET #status = :final, finished_at = :stamp{extra} "
            "REMOVE lease_owner, lease_expires_at",
            {":final": status.value, ":stamp": _now(), **values},
        )

    def _runner_update(
        self,
        tenant: str,
        job_id: str,
        owner: str,
        expression: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
    ) -> TrainingJob:
        # updated_at goes into the SET clause, which always comes first in these expressions.
        expression = expression.replace("SET ", "SET updated_at = :updated, ", 1)
        try:
            return self._update(
                tenant,
                job_id,
                expression,
                {
                    **values,
                    ":owner": owner,
                    ":running": JobStatus.RUNNING.value,
                    ":updated": _now(),
                },
                condition="lease_owner = :owner AND #status = :running",
                names=names,
            )
        except _ConditionFailed as error:
            raise LeaseLost(f"runner {owner} no longer holds the lease of job {job_id}") from error

    def _update(
        self,
        tenant: str,
        job_id: str,
        expression: str,
        values: dict[str, Any],
        *,
        condition: str | None = None,
        names: dict[str, str] | None = None,
    ) -> TrainingJob:
        all_names = {"#status": "status", "#error": "error", **(names or {})}
        used = {
            name: field
            for name, field in all_names.items()
            if name in expression or name in (condition or "")
        }
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": _serialize({"pk": _pk(tenant, job_id), "sk": "JOB"}),
            "UpdateExpression": expression,
            "ExpressionAttributeValues": _serialize(values),
            "ReturnValues": "ALL_NEW",
        }
        if used:
            request["ExpressionAttributeNames"] = used
        # Never create a record by updating one that does not exist.
        request["ConditionExpression"] = (
            f"attribute_exists(pk) AND ({condition})" if condition else "attribute_exists(pk)"
        )
        try:
            answer = self._dynamodb.update_item(**request)
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                if condition is None:
                    raise NotFound(f"training job {job_id} does not exist") from error
                raise _ConditionFailed from error
            raise
        return _job(_deserialize(answer["Attributes"]))

    def _item(self, tenant: str, job_id: str) -> dict[str, Any]:
        answer = self._dynamodb.get_item(
            TableName=self._table,
            Key=_serialize({"pk": _pk(tenant, job_id), "sk": "JOB"}),
            ConsistentRead=True,
        )
        if "Item" not in answer:
            raise NotFound(f"training job {job_id} does not exist")
        return _deserialize(answer["Item"])


class _ConditionFailed(Exception):
    pass


def _job(item: dict[str, Any]) -> TrainingJob:
    reports = [
        EpochReport.model_validate_json(text) for text in item.get("epoch_reports", {}).values()
    ]
    metrics = json.loads(item["final_metrics"]) if item.get("final_metrics") else {}
    expires = item.get("lease_expires_at")
    best = item.get("best_metric")
    return TrainingJob(
        job_id=item["job_id"],
        tenant=item["tenant"],
        status=JobStatus(item["status"]),
        request=TrainingRequest.model_validate_json(item["request"]),
        classes=list(item.get("classes", [])),
        progress=float(item.get("progress", 0)),
        epochs_done=int(item.get("epochs_done", 0)),
        epochs=sorted(reports, key=lambda report: report.epoch),
        best_metric=None if best is None else float(best),
        metrics=metrics,
        artifacts=Artifacts(
            checkpoint_uri=item.get("checkpoint_uri"),
            model_uri=item.get("model_uri"),
            card_uri=item.get("card_uri"),
        ),
        error=item.get("error"),
        last_error=item.get("last_error"),
        attempts=int(item.get("attempts", 0)),
        cancel_requested=bool(item.get("cancel_requested", False)),
        correlation_id=item.get("correlation_id", ""),
        created_at=item["created_at"],
        updated_at=item["updated_at"],
        started_at=item.get("started_at"),
        finished_at=item.get("finished_at"),
        lease_owner=item.get("lease_owner"),
        lease_expires_at=None if expires is None else float(expires),
    )


def _pk(tenant: str, job_id: str) -> str:
    return f"T#{tenant}#JOB#{job_id}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in item.items()}


def _deserialize(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _deserializer.deserialize(value) for name, value in item.items()}
