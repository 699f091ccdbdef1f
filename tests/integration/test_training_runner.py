"""The runner in-process on the stack: jobs train, export, fail, retry, cancel and never
run twice."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import onnx
import pytest

from gpu_runner.runner import Runner
from gpu_runner.synthetic import make_version
from gpu_runner.train import Outcome
from stek.datasets.manifest import Task
from stek.modelcard import ModelCard
from stek.services import Services
from stek.training.dispatch import job_store, submit_job
from stek.training.schema import (
    Architecture,
    Hyperparameters,
    JobStatus,
    TrainingJob,
    TrainingRequest,
)

pytestmark = pytest.mark.torch

TINY = Hyperparameters(epochs=2, batch_size=8, lr=3e-3, image_size=64, augment=True)


def _runner(svc: Services, cache: Path, **options: Any) -> Runner:
    return Runner(
        svc.settings,
        svc.s3,
        svc.sqs,
        svc.dynamodb,
        svc.events,
        cache_dir=cache,
        wait_s=0,
        **options,
    )


def _submit(
    svc: Services,
    tenant: str,
    task: Task,
    architecture: str,
    params: Hyperparameters = TINY,
    dataset: str = "ds",
) -> TrainingJob:
    request = TrainingRequest(
        dataset_id=dataset,
        version=1,
        task=task,
        architecture=Architecture(architecture),
        hyperparameters=params,
        seed=3,
        model_name="cuttings",
    )
    job, _ = submit_job(svc, tenant, request, idempotency_key=None, actor="test")
    return job


def _model_keys(svc: Services, tenant: str) -> list[str]:
    answer = svc.s3.list_object_versions(Bucket=svc.settings.models_bucket, Prefix=f"{tenant}/")
    return sorted(version["Key"] for version in answer.get("Versions", []))


def _types(svc: Services, tenant: str, job_id: str) -> list[str]:
    return [event.type for event in svc.events.read(tenant, subject=job_id).events]


def test_classification_job_leaves_an_onnx_model_and_card(
    svc: Services, tenant: str, tmp_path: Path
) -> None:
    make_version(
        svc.s3,
        svc.dynamodb,
        svc.settings,
        tenant=tenant,
        dataset_id="ds",
        task=Task.CLASSIFICATION,
        images=24,
        size=(64, 48),
    )
    job = _submit(svc, tenant, Task.CLASSIFICATION, "mobilenet_v3_small")

    outcome = _runner(svc, tmp_path).run_once()

    assert outcome is Outcome.SUCCEEDED
    done = job_store(svc).get(tenant, job.job_id)
    assert done.status is JobStatus.SUCCEEDED
    assert [report.epoch for report in done.epochs] == [1, 2]
    assert "accuracy" in done.epochs[0].metrics
    assert done.progress == 1.0
    prefix = f"{tenant}/cuttings/{job.job_id}/"
    assert _model_keys(svc, tenant) == [prefix + "card.json", prefix + "model.onnx"]
    card = ModelCard.model_validate_json(
        svc.s3.get_object(Bucket=svc.settings.models_bucket, Key=prefix + "card.json")[
            "Body"
        ].read()
    )
    assert card.classes == ["healthy", "wilted"]
    assert {"accuracy", "per_class_f1", "confusion", "epoch"} <= set(card.metrics)
    assert card.parity is not None
    assert card.parity.passed
    assert card.lineage.training_job_id == job.job_id
    model_body = svc.s3.get_object(Bucket=svc.settings.models_bucket, Key=prefix + "model.onnx")[
        "Body"
    ].read()
    graph = onnx.load_from_string(model_body).graph
    assert graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert done.artifacts.model_uri == f"s3://{svc.settings.models_bucket}/{prefix}model.onnx"
    assert _types(svc, tenant, job.job_id) == [
        "job.queued",
        "job.started",
        "job.progress",
        "job.progress",
        "job.succeeded",
    ]
    assert (
        svc.sqs.receive_message(QueueUrl=svc.settings.training_queue_url, VisibilityTimeout=0).get(
            "Messages"
        )
        is None
    )


def test_detection_job_leaves_an_onnx_model_and_card(
    svc: Services, tenant: str, tmp_path: Path
) -> None:
    make_version(
        svc.s3,
        svc.dynamodb,
        svc.settings,
        tenant=tenant,
        dataset_id="ds",
        task=Task.DETECTION,
        images=16,
        size=(64, 64),
    )
    params = TINY.model_copy(update={"epochs": 1})
    job = _submit(svc, tenant, Task.DETECTION, "ssdlite320_mobilenet_v3_large", params)

    outcome = _runner(svc, tmp_path).run_once()

    assert outcome is Outcome.SUCCEEDED
    done = job_store(svc).get(tenant, job.job_id)
    assert "map_50" in done.epochs[0].metrics
    assert "map_50_95" in done.epochs[0].metrics
    prefix = f"{tenant}/cuttings/{job.job_id}/"
    assert _model_keys(svc, tenant) == [prefix + "card.json", prefix + "model.onnx"]
    card = ModelCard.model_validate_json(
        svc.s3.get_object(Bucket=svc.settings.models_bucket, Key=prefix + "card.json")[
            "Body"
        ].read()
    )
    assert set(card.outputs) == {"boxes", "scores", "labels"}
    assert card.normalisation.mean == [0.0, 0.0, 0.0]


def _fast_lease(svc: Services, seconds: int = 2) -> Services:
    svc.settings = svc.settings.model_copy(update={"training_lease_s": seconds})
    return svc


def test_a_running_job_is_cancelled_between_steps(
    svc: Services, tenant: str, tmp_path: Path
) -> None:
    make_version(
        svc.s3,
        svc.dynamodb,
        svc.settings,
        tenant=tenant,
        dataset_id="ds",
        task=Task.CLASSIFICATION,
        images=16,
        size=(32, 32),
    )
    job = _submit(
        svc,
        tenant,
        Task.CLASSIFICATION,
        "mobilenet_v3_small",
        TINY.model_copy(update={"epochs": 200, "image_size": 32}),
    )
    runner = _runner(_fast_lease(svc, 1), tmp_path)
    outcomes: list[Any] = []
    worker = threading.Thread(target=lambda: outcomes.append(runner.run_once()))
    worker.start()

    _wait_for(lambda: job_store(svc).get(tenant, job.job_id).epochs_done >= 1)
    job_store(svc).cancel(tenant, job.job_id)
    worker.join(timeout=120)

    assert outcomes == [Outcome.CANCELLED]
    done = job_store(svc).get(tenant, job.job_id)
    assert done.status is JobStatus.CANCELLED
    assert done.epochs_done < 200
    assert _types(svc, tenant, job.job_id)[-1] == "job.cancelled"
    assert _model_keys(svc, tenant) == []


def test_failures_are_retried_then_the_job_fails_into_the_dead_letter_queue(
    stack: Any, svc: Services, tenant: str, tmp_path: Path
) -> None:
    make_version(
        svc.s3,
        svc.dynamodb,
        svc.settings,
        tenant=tenant,
        dataset_id="ds",
        task=Task.CLASSIFICATION,
        images=4,
        size=(32, 32),
    )
    svc.s3.delete_object(Bucket=svc.settings.raw_bucket, Key=f"{tenant}/synthetic/ds/00001.jpg")
    job = _submit(svc, tenant, Task.CLASSIFICATION, "mobilenet_v3_small")
    runner = _runner(svc, tmp_path, retry_backoff_s=0)

    attempts = [runner.run_once() for _ in range(3)]
    after_last = runner.run_once()

    assert attempts == ["retry", "retry", "failed"]
    assert after_last is None
    failed = job_store(svc).get(tenant, job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert "attempt 3 of 3" in failed.error
    assert "NoSuchKey" in failed.error
    dead = svc.sqs.receive_message(QueueUrl=stack.queue_urls["TrainingDeadLetterQueue"])["Messages"]
    assert [json.loads(message["Body"])["job_id"] for message in dead] == [job.job_id]
    assert _types(svc, tenant, job.job_id).count("job.failed") == 1


def test_a_job_that_cannot_succeed_fails_at_once(
    stack: Any, svc: Services, tenant: str, tmp_path: Path
) -> None:
    make_version(
        svc.s3,
        svc.dynamodb,
        svc.settings,
        tenant=tenant,
        dataset_id="ds",
        task=Task.CLASSIFICATION,
        images=1,
        size=(32, 32),
    )
    job = _submit(svc, tenant, Task.CLASSIFICATION, "mobilenet_v3_small")

    outcome = _runner(svc, tmp_path).run_once()

    assert outcome == "failed"
    failed = job_store(svc).get(tenant, job.job_id)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert "needs both splits" in failed.error
    assert (
        svc.sqs.receive_message(QueueUrl=svc.settings.training_queue_url, VisibilityTimeout=0).get(
            "Messages"
        )
        is None
    )
    assert (
        svc.sqs.receive_message(QueueUrl=stack.queue_urls["TrainingDeadLetterQueue"]).get(
            "Messages"
        )
        is None
    )


def test_two_runners_on_one_queue_never_train_the_same_job(
    svc: Services, tenant: str, tmp_path: Path
) -> None:
    make_version(
        svc.s3,
        svc.dynamodb,
        svc.settings,
        tenant=tenant,
        dataset_id="ds",
        task=Task.CLASSIFICATION,
        images=16,
        size=(32, 32),
    )
    job = _submit(
        svc,
        tenant,
        Task.CLASSIFICATION,
        "mobilenet_v3_small",
        TINY.model_copy(update={"epochs": 3, "image_size": 32}),
    )
    # At-least-once delivery: the same job arrives twice.
    svc.sqs.send_message(
        QueueUrl=svc.settings.training_queue_url,
        MessageBody=json.dumps({"tenant": tenant, "job_id": job.job_id}),
    )
    first, second = (
        _runner(_fast_lease(svc, 2), tmp_path / name, owner=name)
        for name in ("runner-a", "runner-b")
    )
    outcomes: list[Any] = []
    worker = threading.Thread(target=lambda: outcomes.append(first.run_once()))
    worker.start()
    _wait_for(lambda: job_store(svc).get(tenant, job.job_id).status is JobStatus.RUNNING)

    while_first_trains = second.run_once()
    worker.join(timeout=120)
    after_it_finished = second.run_once(wait_s=5)

    assert while_first_trains == "leased elsewhere"
    assert outcomes == [Outcome.SUCCEEDED]
    assert after_it_finished == "already finished"
    assert _types(svc, tenant, job.job_id).count("job.started") == 1
    assert job_store(svc).get(tenant, job.job_id).attempts == 1
    assert len(_model_keys(svc, tenant)) == 2  # one card, one model
    assert (
        svc.sqs.receive_message(QueueUrl=svc.settings.training_queue_url, VisibilityTimeout=0).get(
            "Messages"
        )
        is None
    )


def _wait_for(condition: Any, timeout_s: float = 120) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("the runner did not get there in time")
        time.sleep(0.05)


def test_a_job_starts_from_the_users_weights(svc: Services, tenant: str, tmp_path: Path) -> None:
    import io

    import torch

    from gpu_runner.models import build_model

    make_version(
        svc.s3,
        svc.dynamodb,
        svc.settings,
        tenant=tenant,
        dataset_id="ds",
        task=Task.CLASSIFICATION,
        images=8,
        size=(32, 32),
    )
    weights = io.BytesIO()
    torch.save(build_model(Architecture.MOBILENET_V3_SMALL, 5, 32).state_dict(), weights)
    svc.s3.put_object(
        Bucket=svc.settings.artifacts_bucket,
        Key=f"{tenant}/weights/start.pt",
        Body=weights.getvalue(),
    )
    uri = f"s3://{svc.settings.artifacts_bucket}/{tenant}/weights/start.pt"
    good = _submit(
        svc,
        tenant,
        Task.CLASSIFICATION,
        "mobilenet_v3_small",
        TINY.model_copy(update={"epochs": 1, "image_size": 32, "weights_uri": uri}),
    )
    missing = _submit(
        svc,
        tenant,
        Task.CLASSIFICATION,
        "mobilenet_v3_small",
        TINY.model_copy(update={"weights_uri": uri + ".gone"}),
    )
    runner = _runner(svc, tmp_path)

    outcomes = [runner.train_by_id(tenant, good.job_id), runner.train_by_id(tenant, missing.job_id)]

    assert outcomes == [Outcome.SUCCEEDED, "failed"]
    refused = job_store(svc).get(tenant, missing.job_id)
    assert refused.status is JobStatus.FAILED
    assert refused.error == f"the weights file {uri}.gone does not exist"
    # The queue still held both messages; they find finished jobs and go.
    assert [runner.run_once(), runner.run_once(), runner.run_once()] == [
        "already finished",
        "already finished",
        None,
    ]


def test_a_job_dead_lettered_after_its_runner_died_is_failed_by_the_sweep(
    svc: Services, tenant: str, tmp_path: Path
) -> None:
    make_version(
        svc.s3,
        svc.dynamodb,
        svc.settings,
        tenant=tenant,
        dataset_id="ds",
        task=Task.CLASSIFICATION,
        images=8,
        size=(64, 48),
    )
    abandoned = _submit(svc, tenant, Task.CLASSIFICATION, "mobilenet_v3_small")
    alive = _submit(
        svc,
        tenant,
        Task.CLASSIFICATION,
        "mobilenet_v3_small",
        TINY.model_copy(update={"epochs": 3}),
    )
    store = job_store(svc)
    # The first job's runner was killed: its lease has run out. The second is still trained.
    store.lease(tenant, abandoned.job_id, "killed-runner", lease_s=-1)
    store.lease(tenant, alive.job_id, "busy-runner", lease_s=600)
    for job in (abandoned, alive):
        svc.sqs.send_message(
            QueueUrl=svc.settings.training_dead_letter_queue_url,
            MessageBody=json.dumps({"tenant": tenant, "job_id": job.job_id}),
        )

    failed = _runner(svc, tmp_path).sweep_dead_letters()

    assert failed == 1
    assert store.get(tenant, abandoned.job_id).status is JobStatus.FAILED
    assert "dead-letter queue" in (store.get(tenant, abandoned.job_id).error or "")
    assert store.get(tenant, alive.job_id).status is JobStatus.RUNNING
    assert "job.failed" in _types(svc, tenant, abandoned.job_id)
