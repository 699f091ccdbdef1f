"""POST/GET /v1/training-jobs and cancel, through the train_dispatch handler on the stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gpu_runner.synthetic import make_version
from stek.auth import Role
from stek.datasets.manifest import Task, VersionStatus
from stek.local.functions import load_handler
from stek.local.lambda_context import LocalContext
from stek.local.stack import Stack
from stek.services import Services
from stek.training.dispatch import job_store

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def _call(stack: Stack, event: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    handler = load_handler(stack.model.functions["TrainDispatchFunction"])
    answer = handler(event, LocalContext.for_function("TrainDispatchFunction", 60, 1024))
    return answer["statusCode"], json.loads(answer["body"] or "{}")


def _start(key: str, body: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
    event = _event("train_dispatch_http_start_job.json")
    event["headers"]["authorization"] = f"Bearer {key}"
    event["headers"].pop("idempotency-key")
    if idempotency_key:
        event["headers"]["idempotency-key"] = idempotency_key
    event["body"] = json.dumps(body)
    return event


def _job_route(key: str, job_id: str, action: str = "") -> dict[str, Any]:
    name = "train_dispatch_http_cancel_job.json" if action else "train_dispatch_http_get_job.json"
    event = _event(name)
    path = f"/v1/training-jobs/{job_id}{action}"
    event["rawPath"] = path
    event["requestContext"]["http"]["path"] = path
    event["pathParameters"] = {"job_id": job_id}
    event["headers"]["authorization"] = f"Bearer {key}"
    return event


def _messages(svc: Services) -> list[dict[str, Any]]:
    answer = svc.sqs.receive_message(
        QueueUrl=svc.settings.training_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )
    return [json.loads(message["Body"]) for message in answer.get("Messages", [])]


@pytest.fixture
def scientist(svc: Services, tenant: str) -> str:
    key, _ = svc.keys.create(tenant, Role.SCIENTIST)
    return key


@pytest.fixture
def request_body(svc: Services, tenant: str) -> dict[str, Any]:
    make_version(
        svc.s3,
        svc.dynamodb,
        svc.settings,
        tenant=tenant,
        dataset_id="ds-a",
        task=Task.CLASSIFICATION,
        images=4,
        size=(32, 32),
    )
    body = _event("train_dispatch_http_start_job.json")["body"]
    return {**json.loads(body), "dataset_id": "ds-a", "version": 1}


def test_start_queues_one_job_and_records_it(
    stack: Stack, svc: Services, tenant: str, scientist: str, request_body: dict[str, Any]
) -> None:
    status, job = _call(stack, _start(scientist, request_body))

    assert status == 201
    assert job["status"] == "QUEUED"
    assert job["classes"] == ["healthy", "wilted"]
    assert _messages(svc) == [
        {"tenant": tenant, "job_id": job["job_id"], "correlation_id": job["correlation_id"]}
    ]
    queued = svc.events.read(tenant, type="job.queued").events
    assert [event.subject for event in queued] == [job["job_id"]]


def test_same_idempotency_key_gives_same_job_and_one_message(
    stack: Stack, svc: Services, tenant: str, scientist: str, request_body: dict[str, Any]
) -> None:
    first_status, first = _call(stack, _start(scientist, request_body, "key-1"))
    again_status, again = _call(stack, _start(scientist, request_body, "key-1"))
    other_status, _ = _call(stack, _start(scientist, {**request_body, "seed": 99}, "key-1"))

    assert (first_status, again_status, other_status) == (201, 200, 409)
    assert again["job_id"] == first["job_id"]
    assert len(_messages(svc)) == 1
    assert len(svc.events.read(tenant, type="job.queued").events) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"architecture": "vgg16"}, "architecture"),
        ({"hyperparameters": {"epochs": 0}}, "epochs"),
        ({"hyperparameters": {"image_size": 100}}, "image_size"),
        ({"hyperparameters": {"lr": -1}}, "lr"),
        ({"model_name": "Not A Name"}, "model_name"),
        ({"task": "detection"}, "detection"),
        ({"architecture": "ssdlite320_mobilenet_v3_large"}, "detection architecture"),
        ({"version": 7}, "no version 7"),
    ],
)
def test_bad_requests_are_422_problems(
    stack: Stack,
    svc: Services,
    scientist: str,
    request_body: dict[str, Any],
    change: dict[str, Any],
    field: str,
) -> None:
    status, problem = _call(stack, _start(scientist, {**request_body, **change}))

    assert status == 422
    assert field in problem["detail"]
    assert _messages(svc) == []


def test_a_version_still_building_is_refused(
    stack: Stack, svc: Services, tenant: str, scientist: str, request_body: dict[str, Any]
) -> None:
    make_version(
        svc.s3,
        svc.dynamodb,
        svc.settings,
        tenant=tenant,
        dataset_id="ds-a",
        task=Task.CLASSIFICATION,
        images=2,
        size=(32, 32),
        version=2,
        status=VersionStatus.BUILDING,
    )

    status, problem = _call(stack, _start(scientist, {**request_body, "version": 2}))

    assert status == 422
    assert "READY" in problem["detail"]


def test_only_scientists_start_training(
    stack: Stack, svc: Services, tenant: str, request_body: dict[str, Any]
) -> None:
    machine, _ = svc.keys.create(tenant, Role.MACHINE)

    status, _ = _call(stack, _start(machine, request_body))

    assert status == 403


def test_jobs_are_listed_and_read_within_the_tenant(
    stack: Stack, svc: Services, tenant: str, scientist: str, request_body: dict[str, Any]
) -> None:
    _, first = _call(stack, _start(scientist, request_body))
    _, second = _call(stack, _start(scientist, request_body))
    stranger, _ = svc.keys.create("other-tenant", Role.SCIENTIST)

    listing_event = _event("train_dispatch_http_list_jobs.json")
    listing_event["headers"]["authorization"] = f"Bearer {scientist}"
    status, listing = _call(stack, listing_event)
    one_status, one = _call(stack, _job_route(scientist, first["job_id"]))
    hidden_status, _ = _call(stack, _job_route(stranger, first["job_id"]))

    assert status == 200
    assert [job["job_id"] for job in listing["jobs"]] == [second["job_id"], first["job_id"]]
    assert (one_status, one["job_id"], one["status"]) == (200, first["job_id"], "QUEUED")
    assert hidden_status == 404


def test_cancel_a_queued_job_stops_it_at_once(
    stack: Stack, svc: Services, tenant: str, scientist: str, request_body: dict[str, Any]
) -> None:
    _, job = _call(stack, _start(scientist, request_body))

    status, cancelled = _call(stack, _job_route(scientist, job["job_id"], "/cancel"))
    again_status, _ = _call(stack, _job_route(scientist, job["job_id"], "/cancel"))

    assert (status, cancelled["status"]) == (200, "CANCELLED")
    assert again_status == 409
    assert [e.subject for e in svc.events.read(tenant, type="job.cancelled").events] == [
        job["job_id"]
    ]


def test_cancel_a_running_job_asks_the_runner(
    stack: Stack, svc: Services, tenant: str, scientist: str, request_body: dict[str, Any]
) -> None:
    _, job = _call(stack, _start(scientist, request_body))
    job_store(svc).lease(tenant, job["job_id"], "runner-1", 60)

    status, answer = _call(stack, _job_route(scientist, job["job_id"], "/cancel"))

    assert (status, answer["status"], answer["cancel_requested"]) == (200, "RUNNING", True)
    assert svc.events.read(tenant, type="job.cancelled").events == []
