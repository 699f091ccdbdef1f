"""train_dispatch: validates training requests, queues them for the GPU runners, reports jobs.

Triggered by the HTTP API routes template.yaml gives it. Imports no PyTorch.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from stek.api import training
from stek.http import build_resolver
from stek.observability import logger

app = build_resolver(training.router)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
