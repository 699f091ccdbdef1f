"""A runner stopped mid-job (SIGTERM) or killed (SIGKILL) is followed by another that resumes.

The first runner is `python -m gpu_runner` in a subprocess, as the local runtime and a GPU
host start it, talking to a moto server on a free port; the second runs in this process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto.server import ThreadedMotoServer

from gpu_runner.runner import Runner
from gpu_runner.synthetic import make_version
from gpu_runner.train import Outcome
from stek import aws
from stek.datasets.manifest import Task
from stek.local.stack import Stack, bring_up
from stek.services import Services, services
from stek.training.dispatch import job_store, submit_job
from stek.training.schema import (
    Architecture,
    Hyperparameters,
    JobStatus,
    TrainingJob,
    TrainingRequest,
)

pytestmark = pytest.mark.torch

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 3


@pytest.fixture
def served_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """template.yaml on a moto server that a subprocess can reach too."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("STEK_TRAINING_LEASE_S", str(LEASE_S))
    aws.reset_clients()
    try:
        yield bring_up(stack_name=f"t{uuid.uuid4().hex[:10]}")
    finally:
        server.stop()


def _job(svc: Services, tenant: str) -> TrainingJob:
    make_version(
        svc.s3,
        svc.dynamodb,
        svc.settings,
        tenant=tenant,
        dataset_id="ds",
        task=Task.CLASSIFICATION,
        images=48,
        size=(32, 32),
    )
    params = Hyperparameters(epochs=4, batch_size=4, lr=3e-3, image_size=32)
    request = TrainingRequest(
        dataset_id="ds",
        version=1,
        task=Task.CLASSIFICATION,
        architecture=Architecture.MOBILENET_V3_SMALL,
        hyperparameters=params,
        model_name="cuttings",
    )
    return submit_job(svc, tenant, request, idempotency_key=None, actor="test")[0]


def _start_runner(tmp_path: Path) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "STEK_RUNNER_CACHE_DIR": str(tmp_path / "cache-first")}
    log = (tmp_path / "runner.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "gpu_runner"],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait_for_an_epoch(
    svc: Services, tenant: str, job_id: str, runner: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + 180
    while job_store(svc).get(tenant, job_id).epochs_done < 1:
        if runner.poll() is not None or time.monotonic() > deadline:
            runner.kill()
            pytest.fail("the runner never finished an epoch:\n" + log.read_text()[-3000:])
        time.sleep(0.05)


def _second_runner(svc: Services, tmp_path: Path) -> Runner:
    return Runner(
        svc.settings,
        svc.s3,
        svc.sqs,
        svc.dynamodb,
        svc.events,
        cache_dir=tmp_path / "cache-second",
        owner="second",
    )


def _started(svc: Services, tenant: str, job_id: str) -> list[dict[str, Any]]:
    return [
        event.data
        for event in svc.events.read(tenant, type="job.started").events
        if event.subject == job_id
    ]


def _model_versions(svc: Services, tenant: str) -> list[str]:
    answer = svc.s3.list_object_versions(Bucket=svc.settings.models_bucket, Prefix=f"{tenant}/")
    return sorted(version["Key"].rsplit("/", 1)[-1] for version in answer.get("Versions", []))


def test_sigterm_checkpoints_and_another_runner_resumes(
    served_stack: Stack, tenant: str, tmp_path: Path
) -> None:
    svc = services()
    job = _job(svc, tenant)
    first = _start_runner(tmp_path)
    _wait_for_an_epoch(svc, tenant, job.job_id, first, tmp_path / "runner.log")

    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0

    handed_back = job_store(svc).get(tenant, job.job_id)
    assert handed_back.status is JobStatus.QUEUED
    assert handed_back.lease_owner is None
    # A stop is not a failed try: the job is queued afresh, not counted towards the DLQ.
    queued = svc.sqs.receive_message(
        QueueUrl=svc.settings.training_queue_url,
        AttributeNames=["ApproximateReceiveCount"],
        VisibilityTimeout=0,
        WaitTimeSeconds=5,
    )["Messages"]
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in queued] == ["1"]
    outcome = _second_runner(svc, tmp_path).run_once(wait_s=5)

    assert outcome is Outcome.SUCCEEDED
    done = job_store(svc).get(tenant, job.job_id)
    assert done.status is JobStatus.SUCCEEDED
    assert [report.epoch for report in done.epochs] == [1, 2, 3, 4]
    started = _started(svc, tenant, job.job_id)
    assert [event["attempt"] for event in started] == [1, 2]
    assert started[1]["resumed_from_epoch"] >= 1
    assert _model_versions(svc, tenant) == ["card.json", "model.onnx"]


def test_sigkill_lease_runs_out_and_another_runner_resumes(
    served_stack: Stack, tenant: str, tmp_path: Path
) -> None:
    svc = services()
    job = _job(svc, tenant)
    first = _start_runner(tmp_path)
    _wait_for_an_epoch(svc, tenant, job.job_id, first, tmp_path / "runner.log")

    first.kill()
    first.wait(timeout=30)
    abandoned = job_store(svc).get(tenant, job.job_id)
    # The message comes back once its visibility (a little longer than the lease) runs out.
    outcome = _second_runner(svc, tmp_path).run_once(wait_s=LEASE_S + 10)

    assert abandoned.status is JobStatus.RUNNING
    assert outcome is Outcome.SUCCEEDED
    done = job_store(svc).get(tenant, job.job_id)
    assert [report.epoch for report in done.epochs] == [1, 2, 3, 4]
    started = _started(svc, tenant, job.job_id)
    assert [event["runner"] for event in started][1] == "second"
    assert started[1]["resumed_from_epoch"] >= 1
    assert _model_versions(svc, tenant) == ["card.json", "model.onnx"]


def test_an_idle_runner_stops_at_once_on_sigterm(served_stack: Stack, tmp_path: Path) -> None:
    runner = _start_runner(tmp_path)
    log = tmp_path / "runner.log"
    deadline = time.monotonic() + 120
    while "runner started" not in log.read_text():
        if runner.poll() is not None or time.monotonic() > deadline:
            runner.kill()
            pytest.fail("the runner did not start:\n" + log.read_text()[-3000:])
        time.sleep(0.05)

    runner.send_signal(signal.SIGTERM)

    # Well within the 20 s long poll it was waiting in.
    assert runner.wait(timeout=10) == 0
