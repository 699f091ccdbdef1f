"""boto3 clients for the AWS APIs stek uses.

Endpoints come from the standard SDK variables (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_S3`,
...), which boto3 honours by itself. Adapters take a client as an argument so tests can hand
in their own; these helpers only build the default one.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

_RETRIES: Any = {"max_attempts": 5, "mode": "standard"}


def _config(service: str) -> Config:
    # An emulator at an IP address cannot serve virtual-hosted bucket names, so path-style
    # addressing is used whenever a custom S3 endpoint is set.
    custom_s3 = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if service == "s3" and custom_s3:
        return Config(retries=_RETRIES, s3={"addressing_style": "path"}, signature_version="s3v4")
    return Config(retries=_RETRIES)


@lru_cache(maxsize=16)
def client(service: str) -> Any:
    """A shared boto3 client for `service` (thread-safe for concurrent calls)."""
    return boto3.session.Session().client(service, config=_config(service))  # type: ignore[call-overload]


def reset_clients() -> None:
    """Forget cached clients, for when the endpoint variables change (tests, `stek up`)."""
    client.cache_clear()
