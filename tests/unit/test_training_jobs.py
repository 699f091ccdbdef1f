"""Job records and leases: one runner at a time, expired leases taken over, stale writes refused."""

from __future__ import annotations

import time

import pytest

from stek.errors import Conflict, NotFound
from stek.services import Services
from stek.training.jobs import JobStore, LeaseLost, LeaseRefused, job_id_for
from stek.training.schema import Artifacts, EpochReport, JobStatus, TrainingRequest

REQUEST = TrainingRequest.model_validate(
    {
        "dataset_id": "ds",
        "version": 1,
        "task": "classification",
        "architecture": "resnet18",
        "model_name": "m",
    }
)


@pytest.fixture
def store(svc: Services) -> JobStore:
    return JobStore(svc.settings.catalog_table, svc.dynamodb)


@pytest.fixture
def job_id(store: JobStore, tenant: str) -> str:
    job, _ = store.create(tenant, "job-1", REQUEST, ["a", "b"], correlation_id="c", actor="k")
    return job.job_id


def test_idempotency_key_gives_a_stable_id_per_tenant() -> None:
    assert job_id_for("t1", "key") == job_id_for("t1", "key")
    assert job_id_for("t1", "key") != job_id_for("t2", "key")
    assert job_id_for("t1", None) != job_id_for("t1", None)


def test_creating_twice_returns_the_first_job(store: JobStore, tenant: str, job_id: str) -> None:
    again, created = store.create(
        tenant, job_id, REQUEST, ["a", "b"], correlation_id="other", actor="k"
    )

    assert not created
    assert again.correlation_id == "c"
    with pytest.raises(Conflict):
        store.create(
            tenant,
            job_id,
            REQUEST.model_copy(update={"seed": 5}),
            ["a"],
            correlation_id="c",
            actor="k",
        )


def test_only_one_runner_holds_a_live_lease(store: JobStore, tenant: str, job_id: str) -> None:
    first = store.lease(tenant, job_id, "runner-a", 60)
    second = store.lease(tenant, job_id, "runner-b", 60)

    assert not isinstance(first, LeaseRefused)
    assert (first.status, first.lease_owner, first.attempts) == (JobStatus.RUNNING, "runner-a", 1)
    assert isinstance(second, LeaseRefused)
    assert not second.finished
    assert 50 < second.held_for_s <= 60


def test_an_expired_lease_is_taken_over_and_the_old_holder_is_refused(
    store: JobStore, tenant: str, job_id: str
) -> None:
    store.lease(tenant, job_id, "runner-a", 0.01)
    time.sleep(0.05)

    taken = store.lease(tenant, job_id, "runner-b", 60)

    assert not isinstance(taken, LeaseRefused)
    assert (taken.lease_owner, taken.attempts) == ("runner-b", 2)
    report = EpochReport(epoch=1, train_loss=0.5)
    with pytest.raises(LeaseLost):
        store.record_epoch(tenant, job_id, "runner-a", report, epochs=2, best=0.5)
    with pytest.raises(LeaseLost):
        store.heartbeat(tenant, job_id, "runner-a", 60)


def test_epoch_reports_are_keyed_by_epoch(store: JobStore, tenant: str, job_id: str) -> None:
    store.lease(tenant, job_id, "runner-a", 60)
    report = EpochReport(epoch=1, train_loss=0.5, metrics={"accuracy": 0.75})

    store.record_epoch(tenant, job_id, "runner-a", report, epochs=4, best=0.75)
    job = store.record_epoch(tenant, job_id, "runner-a", report, epochs=4, best=0.75)

    assert [r.epoch for r in job.epochs] == [1]
    assert (job.progress, job.epochs_done, job.best_metric) == (0.25, 1, 0.75)


def test_release_puts_the_job_back_for_anyone(store: JobStore, tenant: str, job_id: str) -> None:
    store.lease(tenant, job_id, "runner-a", 60)

    released = store.release(tenant, job_id, "runner-a", last_error="boom")
    taken = store.lease(tenant, job_id, "runner-b", 60)

    assert (released.status, released.lease_owner, released.last_error) == (
        JobStatus.QUEUED,
        None,
        "boom",
    )
    assert not isinstance(taken, LeaseRefused)


def test_a_finished_job_cannot_be_leased_or_cancelled(
    store: JobStore, tenant: str, job_id: str
) -> None:
    store.lease(tenant, job_id, "runner-a", 60)
    done = store.succeed(
        tenant, job_id, "runner-a", Artifacts(model_uri="s3://m/x.onnx"), {"accuracy": 1.0}
    )

    refused = store.lease(tenant, job_id, "runner-b", 60)

    assert (done.status, done.progress, done.metrics) == (
        JobStatus.SUCCEEDED,
        1.0,
        {"accuracy": 1.0},
    )
    assert isinstance(refused, LeaseRefused)
    assert refused.finished
    with pytest.raises(Conflict):
        store.cancel(tenant, job_id)


def test_cancel_is_immediate_when_queued_and_a_request_when_running(
    store: JobStore, tenant: str, job_id: str
) -> None:
    other, _ = store.create(tenant, "job-2", REQUEST, ["a"], correlation_id="c", actor="k")
    store.lease(tenant, other.job_id, "runner-a", 60)

    queued = store.cancel(tenant, job_id)
    running = store.cancel(tenant, other.job_id)
    seen_by_runner = store.heartbeat(tenant, other.job_id, "runner-a", 60)

    assert queued.status is JobStatus.CANCELLED
    assert (running.status, running.cancel_requested) == (JobStatus.RUNNING, True)
    assert seen_by_runner.cancel_requested
    assert isinstance(store.lease(tenant, job_id, "runner-b", 60), LeaseRefused)


def test_unknown_jobs_are_not_found(store: JobStore, tenant: str) -> None:
    with pytest.raises(NotFound):
        store.get(tenant, "job-missing")
    with pytest.raises(NotFound):
        store.cancel(tenant, "job-missing")


def test_jobs_list_newest_first_in_pages(store: JobStore, tenant: str) -> None:
    for number in range(3):
        store.create(tenant, f"job-{number}", REQUEST, ["a"], correlation_id="c", actor="k")

    first = store.list(tenant, limit=2)
    rest = store.list(tenant, limit=2, cursor=first.next_cursor)

    assert [job.job_id for job in first.jobs + rest.jobs] == ["job-2", "job-1", "job-0"]
    assert store.list("someone-else").jobs == []
