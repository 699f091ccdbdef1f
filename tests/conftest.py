"""Shared fixtures: an in-process AWS emulator with the template's resources, per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from moto import mock_aws

from stek import aws
from stek.local.stack import Stack, bring_up
from stek.services import Services, services, use_services
from stek.settings import get_settings

_AWS_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_SQS", "AWS_PROFILE")


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reaches a real AWS account or inherits another test's clients."""
    for name in _AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    saved = dict(os.environ)
    aws.reset_clients()
    get_settings.cache_clear()
    use_services(None)
    yield
    os.environ.clear()
    os.environ.update(saved)
    aws.reset_clients()
    get_settings.cache_clear()
    use_services(None)


@pytest.fixture
def stack() -> Iterator[Stack]:
    """template.yaml provisioned on moto's in-process mock under a random stack name."""
    with mock_aws():
        yield bring_up(
            stack_name=f"t{uuid.uuid4().hex[:10]}", parameters={"WebhookToken": "hook-secret"}
        )


@pytest.fixture
def svc(stack: Stack) -> Services:
    """The services (clients, event log, keys) bound to the test's stack."""
    return services()


@pytest.fixture
def tenant() -> str:
    return f"tenant{uuid.uuid4().hex[:8]}"
