"""ingest: bucket events from the ingest queue become catalog records; image and event routes.

Triggered by SQS batches of raw-bucket notifications (partial batch failures reported per
record) and by the HTTP API routes template.yaml gives it.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from stek.api import events, images, service
from stek.bucket_events import objects_in_message
from stek.http import build_resolver
from stek.ingest import ingest_object
from stek.observability import logger

app = build_resolver(service.router, images.router, events.router)
processor = BatchProcessor(event_type=EventType.SQS)


def handle_bucket_record(record: SQSRecord) -> None:
    for created in objects_in_message(record.body, record.message_id):
        ingest_object(created)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    if "Records" in event:
        return process_partial_response(
            event=event, record_handler=handle_bucket_record, processor=processor, context=context
        )
    return app.resolve(event, context)
