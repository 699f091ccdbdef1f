"""Bring the template's resources up on whatever endpoint boto3 is pointed at."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from stek import aws
from stek.local.provision import provision
from stek.local.template import LocalStackModel, load_template
from stek.services import use_services
from stek.settings import get_settings

TEMPLATE = Path(__file__).resolve().parents[3] / "template.yaml"


@dataclass
class Stack:
    model: LocalStackModel
    queue_urls: dict[str, str]
    environment: dict[str, str]


def bring_up(
    *,
    stack_name: str = "stek",
    template: Path = TEMPLATE,
    parameters: dict[str, str] | None = None,
) -> Stack:
    """Provision the template and export the functions' environment into this process.

    All functions share the Globals environment in template.yaml, so one process
    environment serves every handler the runtime hosts.
    """
    endpoint = os.environ.get("AWS_ENDPOINT_URL_SQS") or os.environ.get("AWS_ENDPOINT_URL") or ""
    model = load_template(
        template,
        stack_name=stack_name,
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        parameters=parameters,
        queue_endpoint=endpoint or "https://sqs.us-east-1.amazonaws.com",
    )
    queue_urls = provision(model, aws.client("s3"), aws.client("sqs"), aws.client("dynamodb"))
    environment: dict[str, str] = {}
    for function in model.functions.values():
        environment.update(function.environment)
    for logical_id, url in queue_urls.items():
        # The emulator's own URL for each queue, whatever host name it answers with.
        for name, value in environment.items():
            if value == model.queue_url(
                endpoint or "https://sqs.us-east-1.amazonaws.com", logical_id
            ):
                environment[name] = url
    os.environ.update(environment)
    get_settings.cache_clear()
    use_services(None)
    return Stack(model, queue_urls, environment)
