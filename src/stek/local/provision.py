"""Create what template.yaml declares on the emulator, bucket notifications included.

Safe to run again: resources that exist are kept.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from stek.local.template import LocalStackModel, Table
from stek.observability import runtime_logger as logger


def provision(model: LocalStackModel, s3: Any, sqs: Any, dynamodb: Any) -> dict[str, str]:
    """Create queues, tables and buckets; returns each queue's logical id -> URL."""
    queue_urls = _create_queues(model, sqs)
    for table in model.tables.values():
        _create_table(table, dynamodb)
    for bucket in model.buckets.values():
        _create_bucket(bucket.name, s3, model.region)
        if bucket.versioned:
            s3.put_bucket_versioning(
                Bucket=bucket.name, VersioningConfiguration={"Status": "Enabled"}
            )
        if bucket.queue_notifications:
            _subscribe_queues(s3, bucket.name, bucket.queue_notifications)
    logger.info(
        "stack provisioned",
        buckets=len(model.buckets),
        queues=len(model.queues),
        tables=len(model.tables),
    )
    return queue_urls


def _create_queues(model: LocalStackModel, sqs: Any) -> dict[str, str]:
    urls: dict[str, str] = {}
    arns: dict[str, str] = {}
    # Dead-letter queues first: a redrive policy names its target's ARN.
    ordered = sorted(model.queues.values(), key=lambda queue: queue.dead_letter is not None)
    for queue in ordered:
        attributes = dict(queue.attributes)
        if queue.dead_letter:
            attributes["RedrivePolicy"] = json.dumps(
                {
                    "deadLetterTargetArn": arns[queue.dead_letter],
                    "maxReceiveCount": queue.max_receive_count,
                }
            )
        url = sqs.create_queue(QueueName=queue.name, Attributes=attributes)["QueueUrl"]
        urls[queue.logical_id] = url
        arns[queue.logical_id] = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
    return urls


def _create_table(table: Table, dynamodb: Any) -> None:
    properties = table.properties
    request: dict[str, Any] = {
        "TableName": table.name,
        "AttributeDefinitions": properties["AttributeDefinitions"],
        "KeySchema": properties["KeySchema"],
        "BillingMode": properties.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if indexes := properties.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = indexes
    try:
        dynamodb.create_table(**request)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ResourceInUseException":
            raise
        return
    if ttl := properties.get("TimeToLiveSpecification"):
        dynamodb.update_time_to_live(
            TableName=table.name,
            TimeToLiveSpecification={
                "AttributeName": ttl["AttributeName"],
                "Enabled": bool(ttl["Enabled"]),
            },
        )


def _create_bucket(name: str, s3: Any, region: str) -> None:
    request: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        request["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**request)
    except ClientError as error:
        if error.response["Error"]["Code"] not in {
            "BucketAlreadyOwnedByYou",
            "BucketAlreadyExists",
        }:
            raise


def _subscribe_queues(s3: Any, bucket: str, notifications: list[dict[str, Any]]) -> None:
    try:
        s3.put_bucket_notification_configuration(
            Bucket=bucket,
            NotificationConfiguration={
                "QueueConfigurations": [_queue_notification(item) for item in notifications]
            },
        )
    except ClientError as error:
        # MinIO knows only its own notification targets: there the webhook to
        # POST /v1/bucket-events takes the queue's place (see docker-compose.yml).
        logger.warning(
            "bucket notifications not set",
            bucket=bucket,
            code=error.response["Error"]["Code"],
            hint="point the storage's webhook at POST /v1/bucket-events",
        )


def _queue_notification(item: dict[str, Any]) -> dict[str, Any]:
    notification: dict[str, Any] = {"QueueArn": item["Queue"], "Events": [item["Event"]]}
    if rules := item.get("Filter", {}).get("S3Key", {}).get("Rules"):
        notification["Filter"] = {"Key": {"FilterRules": rules}}
    return notification
