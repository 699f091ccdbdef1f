"""The bucket-event normaliser: every dialect becomes the same typed event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stek.bucket_events import parse_bucket_events
from stek.errors import MalformedEvent

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _load(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


def _body(name: str) -> str:
    """The notification a sample event carries: an SQS message body or an HTTP body."""
    event = _load(name)
    return event["Records"][0]["body"] if "Records" in event else event["body"]


def test_aws_key_decodes_plus_as_space() -> None:
    [created] = parse_bucket_events(_body("ingest_sqs_aws_put.json"))
    assert created.key == "greenhouse-a/machine-07/tray 12/IMG 0001.jpg"
    assert created.bucket == "stek-raw-123456789012-us-east-1"
    assert created.source == "aws"


def test_minio_webhook_decodes_slashes() -> None:
    [created] = parse_bucket_events(_body("ingest_http_minio_webhook.json"))
    assert created.key == "greenhouse-a/machine-07/tray 12/IMG 0002.jpg"
    assert created.source == "minio"


def test_localstack_decodes_percent_twenty() -> None:
    [created] = parse_bucket_events(_body("ingest_sqs_localstack_put.json"))
    assert created.key == "greenhouse-a/machine-07/tray 12/IMG+0003.jpg"


def test_moto_encodes_slashes_too() -> None:
    payload = json.loads(_body("ingest_sqs_localstack_put.json"))
    payload["Records"][0]["s3"]["object"]["key"] = "t1%2Fm1%2Fa%2Bb.jpg"
    [created] = parse_bucket_events(payload)
    assert created.key == "t1/m1/a+b.jpg"


@pytest.mark.parametrize(
    "payload",
    [
        {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"},
        {"EventName": "s3:TestEvent", "Key": "b/", "Records": None},
    ],
)
def test_test_events_give_nothing(payload: dict) -> None:
    assert parse_bucket_events(payload) == []


def test_removal_events_are_ignored() -> None:
    payload = json.loads(_body("ingest_sqs_localstack_put.json"))
    payload["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert parse_bucket_events(payload) == []


@pytest.mark.parametrize(
    "payload", ["not json", "[1, 2]", json.dumps({"Records": [{"nope": 1}]}), "{}"]
)
def test_malformed_payloads_raise(payload: str) -> None:
    with pytest.raises(MalformedEvent):
        parse_bucket_events(payload)


def test_redelivery_has_the_same_dedup_key() -> None:
    body = _body("ingest_sqs_aws_put.json")
    assert parse_bucket_events(body)[0].dedup_key == parse_bucket_events(body)[0].dedup_key
