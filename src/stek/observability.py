"""One logger and one metrics object for every function, the runner and the runtime."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="stek")
metrics = Metrics(namespace="stek", service="stek")

# The local runtime logs under its own service name so that the Lambda context keys of
# the last handler it ran do not leak onto its own lines.
runtime_logger = Logger(service="stek-local")
