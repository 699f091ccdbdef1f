"""The local SQS event source mapping behaves like Lambda's: partial failures, retries, DLQ."""

from __future__ import annotations

import json
from typing import Any

from stek.local.lambda_context import LocalContext
from stek.local.pollers import Mapping, SqsPoller
from stek.local.stack import Stack
from stek.services import Services


def _mapping(stack: Stack, svc: Services, handler: Any) -> Mapping:
    function = stack.model.functions["CleanFunction"]
    source = function.sqs_sources[0]
    queue = stack.model.queues[source.queue_logical_id]
    url = stack.queue_urls[queue.logical_id]
    arn = svc.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return Mapping(function, source, queue, url, arn, handler)


def _count(svc: Services, url: str) -> int:
    attributes = svc.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_a_raising_handler_sends_the_message_to_the_dead_letter_queue(
    stack: Stack, svc: Services
) -> None:
    calls: list[int] = []

    def failing(event: dict[str, Any], context: LocalContext) -> None:
        calls.append(len(event["Records"]))
        raise RuntimeError("disk on fire")

    mapping = _mapping(stack, svc, failing)
    svc.sqs.send_message(
        QueueUrl=mapping.queue_url, MessageBody=json.dumps({"tenant": "tenant-a", "n": 1})
    )
    poller = SqsPoller(mapping, svc.sqs, svc.events, wait_s=0, retry_delay_s=0)

    for _ in range(6):
        poller.poll_once()

    dead_letter_url = stack.queue_urls[mapping.queue.dead_letter or ""]
    assert calls == [1, 1, 1]  # the max receive count in template.yaml
    assert _count(svc, mapping.queue_url) == 0
    assert _count(svc, dead_letter_url) == 1
    [event] = svc.events.read("tenant-a", type="delivery.dead_lettered").events
    assert event.data["receives"] == 3
    assert "disk on fire" in event.data["reason"]


def test_only_reported_failures_are_retried(stack: Stack, svc: Services) -> None:
    seen: list[str] = []

    def half_failing(event: dict[str, Any], context: LocalContext) -> dict[str, Any]:
        failures = []
        for record in event["Records"]:
            seen.append(json.loads(record["body"])["n"])
            if json.loads(record["body"])["n"] == 2:
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}

    mapping = _mapping(stack, svc, half_failing)
    mapping.source.batch_size = 10
    for n in (1, 2, 3):
        svc.sqs.send_message(QueueUrl=mapping.queue_url, MessageBody=json.dumps({"n": n}))
    poller = SqsPoller(mapping, svc.sqs, svc.events, wait_s=0, retry_delay_s=0)

    while poller.poll_once():
        pass

    assert sorted(seen) == [1, 2, 2, 2, 3]
    assert _count(svc, stack.queue_urls[mapping.queue.dead_letter or ""]) == 1


def test_records_are_shaped_like_lambdas(stack: Stack, svc: Services) -> None:
    records: list[dict[str, Any]] = []
    mapping = _mapping(stack, svc, lambda event, context: records.extend(event["Records"]))
    svc.sqs.send_message(QueueUrl=mapping.queue_url, MessageBody="hello")

    SqsPoller(mapping, svc.sqs, svc.events, wait_s=0).poll_once()

    [record] = records
    assert record["body"] == "hello"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(mapping.queue.name)
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert _count(svc, mapping.queue_url) == 0
