"""One typed bucket event from the dialects AWS, MinIO, LocalStack and moto send.

The dialects differ in small ways that lose uploads when handled ad hoc:

* AWS wraps records in `{"Records": [...]}` and encodes a space in a key as `+`;
* MinIO's webhook sends `{"EventName", "Key", "Records"}` and encodes `/` as `%2F`;
* LocalStack encodes a space as `%20`; moto encodes `/` as well;
* each sends an `s3:TestEvent` without records when notifications are first configured;
* through SQS the same payload arrives as the message body, a JSON string.

All keys are decoded with `unquote_plus`: every dialect encodes a literal `+` as `%2B`, so
plus-as-space decoding is correct for all of them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import unquote_plus

from pydantic import BaseModel, ValidationError

from stek.errors import MalformedEvent
from stek.observability import logger


class ObjectCreated(BaseModel):
    """An object that appeared in a bucket."""

    bucket: str
    key: str
    size: int = 0
    etag: str = ""
    version_id: str | None = None
    sequencer: str = ""
    event_name: str = "ObjectCreated:Put"
    event_time: datetime | None = None
    source: str = "aws"

    @property
    def dedup_key(self) -> str:
        """What identifies this exact object version across redeliveries."""
        return f"{self.bucket}/{self.key}@{self.version_id or self.etag or self.sequencer}"


class _S3Object(BaseModel):
    key: str
    size: int = 0
    eTag: str = ""  # noqa: N815 - the wire name
    versionId: str | None = None  # noqa: N815
    sequencer: str = ""


class _S3Bucket(BaseModel):
    name: str


class _S3Entity(BaseModel):
    bucket: _S3Bucket
    object: _S3Object


class _Record(BaseModel):
    eventName: str  # noqa: N815
    eventTime: datetime | None = None  # noqa: N815
    eventSource: str = "aws:s3"  # noqa: N815
    s3: _S3Entity


def parse_bucket_events(payload: Any, source: str = "aws") -> list[ObjectCreated]:
    """Every ObjectCreated in `payload`; test events and other event kinds give none.

    Raises MalformedEvent when the payload is neither a bucket event nor a test event.
    """
    document = _as_document(payload)
    if _is_test_event(document):
        return []
    if "EventName" in document and "Key" in document:
        source = "minio"
    records = document.get("Records")
    if not isinstance(records, list):
        raise MalformedEvent("bucket event has no Records list")
    return [event for raw in records if (event := _object_created(raw, source)) is not None]


def _as_document(payload: Any) -> dict[str, Any]:
    if isinstance(payload, bytes | str):
        try:
            payload = json.loads(payload)
        except ValueError as error:
            raise MalformedEvent(f"bucket event is not JSON: {error}") from error
    if not isinstance(payload, dict):
        raise MalformedEvent("bucket event is not a JSON object")
    return payload


def _is_test_event(document: dict[str, Any]) -> bool:
    return document.get("Event") == "s3:TestEvent" or document.get("EventName") == "s3:TestEvent"


def _object_created(raw: Any, source: str) -> ObjectCreated | None:
    try:
        record = _Record.model_validate(raw)
    except ValidationError as error:
        raise MalformedEvent(
            f"bucket event record is malformed: {error.errors()[0]['msg']}"
        ) from error
    event_name = record.eventName.removeprefix("s3:")
    if not event_name.startswith("ObjectCreated"):
        return None
    if source == "aws" and record.eventSource.startswith("minio"):
        source = "minio"
    return ObjectCreated(
        bucket=record.s3.bucket.name,
        key=unquote_plus(record.s3.object.key),
        size=record.s3.object.size,
        etag=record.s3.object.eTag.strip('"'),
        version_id=record.s3.object.versionId or None,
        sequencer=record.s3.object.sequencer,
        event_name=event_name,
        event_time=record.eventTime,
        source=source,
    )


def objects_in_message(body: str, message_id: str) -> list[ObjectCreated]:
    """The objects a queued bucket notification announces; none for a malformed one.

    Retrying cannot fix a payload no dialect matches, so it is logged and dropped instead
    of being raised back to the queue.
    """
    try:
        return parse_bucket_events(body)
    except MalformedEvent as error:
        logger.warning("bucket event dropped", reason=error.detail, message_id=message_id)
        return []
