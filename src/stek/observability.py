"""One logger and one metrics object for every function, the runner and the runtime."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

logger = Logger(service="stek")
metrics = Metrics(namespace="stek", service="stek")
