"""Handlers on the provisioned stack: bucket events reach the event log; the API guards keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stek.auth import Role
from stek.local.functions import load_handler
from stek.local.lambda_context import LocalContext
from stek.local.stack import Stack
from stek.services import Services

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def _event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def _ingest(stack: Stack) -> Any:
    return load_handler(stack.model.functions["IngestFunction"])


def _http(
    method: str, path: str, key: str | None = None, body: Any = None, **query: str
) -> dict[str, Any]:
    event = _event("ingest_http_health.json")
    event["routeKey"] = f"{method} {path}"
    event["rawPath"] = path
    event["requestContext"]["http"].update(method=method, path=path)
    event["queryStringParameters"] = query or None
    if key:
        event["headers"]["authorization"] = f"Bearer {key}"
    if body is not None:
        event["body"] = body if isinstance(body, str) else json.dumps(body)
    return event


def test_bucket_event_reaches_event_log_once(stack: Stack, svc: Services) -> None:
    handler = _ingest(stack)
    event = _event("ingest_sqs_aws_put.json")

    for _ in range(3):
        answer = handler(event, LocalContext.for_function("IngestFunction", 300, 2048))
        assert answer == {"batchItemFailures": []}

    page = svc.events.read("greenhouse-a")
    assert [e.data["key"] for e in page.events] == ["greenhouse-a/machine-07/tray 12/IMG 0001.jpg"]


def test_test_event_does_nothing(stack: Stack, svc: Services) -> None:
    answer = _ingest(stack)(
        _event("ingest_sqs_test_event.json"), LocalContext.for_function("f", 3, 128)
    )
    assert answer == {"batchItemFailures": []}
    assert svc.events.read("greenhouse-a").events == []


def test_health_needs_no_key(stack: Stack) -> None:
    answer = _ingest(stack)(_http("GET", "/v1/health"), LocalContext.for_function("f", 3, 128))
    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["status"] == "ok"


def test_events_need_a_known_key(stack: Stack, svc: Services) -> None:
    handler = _ingest(stack)
    context = LocalContext.for_function("f", 3, 128)

    missing = handler(_http("GET", "/v1/events"), context)
    wrong = handler(_http("GET", "/v1/events", key="stek_not-a-key"), context)

    assert missing["statusCode"] == 401
    assert missing["headers"]["Content-Type"] == "application/problem+json"
    assert wrong["statusCode"] == 401


def test_events_are_scoped_to_the_callers_tenant(stack: Stack, svc: Services) -> None:
    svc.events.record("image.ingested", "tenant-a", "img-1")
    svc.events.record("image.ingested", "tenant-b", "img-2")
    key, _ = svc.keys.create("tenant-a", Role.OPERATOR)

    answer = _ingest(stack)(
        _http("GET", "/v1/events", key=key), LocalContext.for_function("f", 3, 128)
    )

    assert answer["statusCode"] == 200
    assert [e["subject"] for e in json.loads(answer["body"])["events"]] == ["img-1"]


def test_invalid_query_is_a_422_problem(stack: Stack, svc: Services) -> None:
    key, _ = svc.keys.create("tenant-a", Role.OPERATOR)
    event = _http("GET", "/v1/events", key=key, limit="0")

    answer = _ingest(stack)(event, LocalContext.for_function("f", 3, 128))

    assert answer["statusCode"] == 422
    assert "limit" in json.loads(answer["body"])["detail"]


def test_unknown_route_is_a_404_problem(stack: Stack) -> None:
    answer = _ingest(stack)(
        _http("GET", "/v1/nothing-here"), LocalContext.for_function("f", 3, 128)
    )
    assert answer["statusCode"] in (401, 404)


def test_minio_webhook_is_queued_for_ingest(stack: Stack, svc: Services) -> None:
    answer = _ingest(stack)(
        _event("ingest_http_minio_webhook.json"), LocalContext.for_function("f", 3, 128)
    )

    assert answer["statusCode"] == 200
    messages = svc.sqs.receive_message(
        QueueUrl=svc.settings.ingest_queue_url, MaxNumberOfMessages=10
    )
    # The queue also holds the s3:TestEvent the emulator sent when notifications were set up.
    bodies = [json.loads(m["Body"]) for m in messages["Messages"]]
    assert [b["Key"] for b in bodies if "EventName" in b] == [
        "stek-raw-123456789012-us-east-1/greenhouse-a%2Fmachine-07%2Ftray+12%2FIMG+0002.jpg"
    ]


def test_minio_webhook_refuses_a_wrong_token(stack: Stack) -> None:
    event = _event("ingest_http_minio_webhook.json")
    event["headers"]["authorization"] = "Bearer guess"
    answer = _ingest(stack)(event, LocalContext.for_function("f", 3, 128))
    assert answer["statusCode"] == 401
