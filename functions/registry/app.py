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
from stek.bucket_events import objects_in_message
from stek.http import build_resolver
from stek.observability import logger
from stek.registry.register import register_model_object

app = build_resolver(models.router)
processor = BatchProcessor(event_type=EventType.SQS)


def handle_model_record(record: SQSRecord) -> None:
    for created in objects_in_message(record.body, record.message_id):
        register_model_object(created)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    if "Records" in event:
        return process_partial_response(
            event=event, record_handler=handle_model_record, processor=processor, context=context
        )
    return app.resolve(event, context)
