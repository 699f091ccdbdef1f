"""clean: dataset routes, and the version builds the versions queue hands it.

Triggered by the HTTP API routes template.yaml gives it, and by SQS batches of version
builds (one per batch; a failed build is reported as a partial batch failure, so it is
retried and ends in the dead-letter queue). Imports no PyTorch.
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
from pydantic import ValidationError

from stek.api import datasets
from stek.datasets.catalog import DatasetCatalog
from stek.datasets.versions import VersionBuild, build_version
from stek.errors import NotFound
from stek.http import build_resolver
from stek.images.catalog import ImageCatalog
from stek.observability import logger
from stek.services import services

app = build_resolver(datasets.router)
processor = BatchProcessor(event_type=EventType.SQS)


def handle_version_build(record: SQSRecord) -> None:
    try:
        build = VersionBuild.model_validate_json(record.body)
    except ValidationError as error:
        # Retrying cannot fix a message that is not a version build: log it and let it go.
        logger.warning(
            "version build dropped",
            reason=str(error.errors()[0]["msg"]),
            message_id=record.message_id,
        )
        return
    logger.append_keys(
        tenant=build.tenant, dataset_id=build.dataset_id, correlation_id=build.correlation_id
    )
    svc = services()
    try:
        build_version(
            svc,
            DatasetCatalog(svc.settings.catalog_table, svc.dynamodb),
            ImageCatalog(svc.settings.catalog_table, svc.dynamodb),
            build,
        )
    except NotFound as error:
        # The version was never asked for (or its dataset is gone): nothing to retry.
        logger.warning("version build dropped", reason=error.detail, message_id=record.message_id)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    if "Records" in event:
        return process_partial_response(
            event=event, record_handler=handle_version_build, processor=processor, context=context
        )
    return app.resolve(event, context)
