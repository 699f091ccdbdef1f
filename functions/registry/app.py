"""registry: ONNX files in the models bucket become model versions; model routes.

Triggered by SQS batches of models-bucket notifications (suffix .onnx; partial batch
failures reported per record) and by the model routes template.yaml gives it.
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

from stek.api import models
from stek.bucket_events import parse_bucket_events
from stek.errors import MalformedEvent
from stek.http import build_resolver
from stek.observability import logger
from stek.registry.register import register_model_object

app = build_resolver(models.router)
processor = BatchProcessor(event_type=EventType.SQS)


def handle_model_record(record: SQSRecord) -> None:
    try:
        objects = parse_bucket_events(record.body)
    except MalformedEvent as error:
        # Retrying cannot fix a payload no dialect matches: log it and let it go.
        logger.warning("bucket event dropped", reason=error.detail, message_id=record.message_id)
        return
    for created in objects:
        register_model_object(created)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    if "Records" in event:
        return process_partial_response(
            event=event, record_handler=handle_model_record, processor=processor, context=context
        )
    return app.resolve(event, context)
