"""SQS event source mappings, as Lambda runs them.

For each SQS event of a function in template.yaml, one poller thread:

* receives up to `BatchSize` messages (10 at most per call, as SQS allows) with the queue's
  visibility timeout;
* invokes the handler with an SQS event shaped exactly like Lambda's;
* deletes what succeeded: everything when the handler returns without
  `batchItemFailures`, all but the reported failures when it reports them (and
  `ReportBatchItemFailures` is on), nothing when it raises;
* leaves failures on the queue to be received again after `retry_delay_s`, so SQS's own
  redrive policy moves them to the dead-letter queue after the max receive count. When a
  message fails its last allowed receive the event log gets `delivery.dead_lettered`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any

from stek.eventlog import EventLog
from stek.local.functions import Handler
from stek.local.lambda_context import LocalContext
from stek.local.template import Function, Queue, SqsSource
from stek.observability import runtime_logger as logger

_MAX_PER_RECEIVE = 10


@dataclass
class Mapping:
    """One function subscribed to one queue."""

    function: Function
    source: SqsSource
    queue: Queue
    queue_url: str
    queue_arn: str
    handler: Handler


class SqsPoller(threading.Thread):
    """Polls one queue for one function until stopped."""

    def __init__(
        self,
        mapping: Mapping,
        sqs: Any,
        events: EventLog | None,
        *,
        wait_s: int = 1,
        retry_delay_s: int | None = None,
    ) -> None:
        super().__init__(
            name=f"poller-{mapping.function.logical_id}-{mapping.queue.logical_id}", daemon=True
        )
        self.mapping = mapping
        self._sqs = sqs
        self._events = events
        self._wait_s = wait_s
        visibility = int(mapping.queue.attributes.get("VisibilityTimeout", 30))
        self._visibility_s = visibility
        self._retry_delay_s = visibility if retry_delay_s is None else retry_delay_s
        self._stop_requested = threading.Event()
        self.batches = 0

    def stop(self) -> None:
        self._stop_requested.set()

    def run(self) -> None:
        while not self._stop_requested.is_set():
            try:
                self.poll_once()
            except Exception:  # the runtime must outlive any one failure, as Lambda does
                logger.exception("poller failed", queue=self.mapping.queue.logical_id)
                self._stop_requested.wait(1)

    def poll_once(self) -> int:
        """Receive and process one batch; returns how many messages it held."""
        answer = self._sqs.receive_message(
            QueueUrl=self.mapping.queue_url,
            MaxNumberOfMessages=min(self.mapping.source.batch_size, _MAX_PER_RECEIVE),
            WaitTimeSeconds=self._wait_s,
            VisibilityTimeout=self._visibility_s,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if messages:
            self.batches += 1
            self._process(messages)
        return len(messages)

    def _process(self, messages: list[dict[str, Any]]) -> None:
        function = self.mapping.function
        event = {"Records": [self._record(message) for message in messages]}
        context = LocalContext.for_function(function.logical_id, function.timeout, function.memory)
        try:
            result = self.mapping.handler(event, context)
        except Exception as error:
            logger.exception("batch failed", function=function.logical_id, messages=len(messages))
            self._retry(messages, reason=f"{type(error).__name__}: {error}")
            return
        failed_ids = self._failed_ids(result)
        succeeded = [m for m in messages if m["MessageId"] not in failed_ids]
        failed = [m for m in messages if m["MessageId"] in failed_ids]
        self._delete_messages(succeeded)
        if failed:
            self._retry(failed, reason="reported as a batch item failure")

    def _failed_ids(self, result: Any) -> set[str]:
        if not self.mapping.source.report_batch_item_failures or not isinstance(result, dict):
            return set()
        return {item["itemIdentifier"] for item in result.get("batchItemFailures", [])}

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        body = message["Body"]
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": body,
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324
            "eventSource": "aws:sqs",
            "eventSourceARN": self.mapping.queue_arn,
            "awsRegion": self.mapping.queue_arn.split(":")[3],
        }

    def _delete_messages(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), _MAX_PER_RECEIVE):
            chunk = messages[start : start + _MAX_PER_RECEIVE]
            self._sqs.delete_message_batch(
                QueueUrl=self.mapping.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )

    def _retry(self, messages: list[dict[str, Any]], *, reason: str) -> None:
        for message in messages:
            receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            if (
                self.mapping.queue.max_receive_count
                and receives >= self.mapping.queue.max_receive_count
            ):
                self._record_dead_letter(message, receives, reason)
            self._sqs.change_message_visibility(
                QueueUrl=self.mapping.queue_url,
                ReceiptHandle=message["ReceiptHandle"],
                VisibilityTimeout=self._retry_delay_s,
            )

    def _record_dead_letter(self, message: dict[str, Any], receives: int, reason: str) -> None:
        logger.warning(
            "message dead-lettered",
            queue=self.mapping.queue.logical_id,
            message_id=message["MessageId"],
            receives=receives,
            reason=reason,
        )
        if self._events is None:
            return
        self._events.record(
            "delivery.dead_lettered",
            _tenant_of(message["Body"]),
            message["MessageId"],
            correlation_id=message["MessageId"],
            dedup=f"dead-letter|{message['MessageId']}",
            queue=self.mapping.queue.name,
            dead_letter_queue=self.mapping.queue.dead_letter,
            function=self.mapping.function.logical_id,
            receives=receives,
            reason=reason,
        )


def _tenant_of(body: str) -> str:
    """The tenant a message belongs to, so operators see its failure in their event log."""
    try:
        document = json.loads(body)
    except ValueError:
        return "_system"
    if isinstance(document, dict) and isinstance(document.get("tenant"), str):
        return document["tenant"]
    try:
        from stek.bucket_events import parse_bucket_events

        objects = parse_bucket_events(document)
    except Exception:  # any payload we cannot read belongs to the operators of the stack
        return "_system"
    return objects[0].key.split("/", 1)[0] if objects else "_system"
