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
from stek.training.schema import Hyperparameters, JobStatus, TrainingJob, TrainingRequest

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
        architecture=architecture,
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
    assert card.parity is not None and card.parity.passed
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
    assert "map_50" in done.epochs[0].metrics and "map_50_95" in done.epochs[0].metrics
    prefix = f"{tenant}/cuttings/{job.job_id}/"
    assert _model_keys(svc, tenant) == [prefix + "card.json", prefix + "model.onnx"]
    card = ModelCard.model_validate_json(
        svc.s3.get_object(Bucket=svc.settings.models_bucket, Key=prefix + "card.json")[
            "Body"
        ].read()
    )
    assert set(card.outputs) == {"boxes", "scores", "labels"}
    assert card.normalisation.mean == [0.0, 0.0, 0.0]
