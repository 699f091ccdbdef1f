"""`stek invoke`: one handler, one event, once, with the environment template.yaml gives it."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from stek import aws
from stek.client import local_state
from stek.local.functions import load_handler
from stek.local.lambda_context import LocalContext
from stek.local.stack import Stack, bring_up
from stek.services import services

API_KEY_PLACEHOLDER = "{{api_key}}"


@contextmanager
def attach_to_local_stack() -> Iterator[Stack]:
    """Use the running `stek up` (or AWS_ENDPOINT_URL); else an in-process emulator."""
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or local_state().get("aws_endpoint")
    if endpoint and _reachable(endpoint):
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        aws.reset_clients()
        yield bring_up()
        return
    # Nothing running: a throwaway emulator in this process, gone when the command ends.
    from moto import mock_aws

    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        aws.reset_clients()
        yield bring_up(parameters={"WebhookToken": "hook-secret"})


def invoke_once(function: str, event_file: Path, *, tenant: str, role: str) -> Any:
    """Run `function`'s handler on the event in `event_file` and return its result."""
    with attach_to_local_stack() as stack:
        target = _find_function(stack, function)
        event = json.loads(_with_api_key(event_file.read_text(), tenant, role))
        context = LocalContext.for_function(target.logical_id, target.timeout, target.memory)
        return load_handler(target)(event, context)


def _find_function(stack: Stack, name: str) -> Any:
    for logical_id, function in stack.model.functions.items():
        if name in (logical_id, function.code_uri.name):
            return function
    known = ", ".join(sorted(f.code_uri.name for f in stack.model.functions.values()))
    raise SystemExit(f"no function {name!r} in template.yaml; choose one of {known}")


def _with_api_key(text: str, tenant: str, role: str) -> str:
    if API_KEY_PLACEHOLDER not in text:
        return text
    secret, _ = services().keys.create(tenant, role)
    return text.replace(API_KEY_PLACEHOLDER, secret)


def _reachable(endpoint: str) -> bool:
    parts = urlsplit(endpoint)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 80), timeout=0.5
        ):
            return True
    except OSError:
        return False
