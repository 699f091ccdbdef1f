"""The adapters one process uses, built once from the settings and the default clients.

Handlers and API routes ask `services()` for them; tests call `use_services()` to hand in
their own (for example clients bound to an emulator on a random port).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stek import aws
from stek.auth import ApiKeys
from stek.eventlog import EventLog
from stek.settings import Settings, get_settings


@dataclass
class Services:
    settings: Settings
    s3: Any
    sqs: Any
    dynamodb: Any
    events: EventLog
    keys: ApiKeys
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Services:
        dynamodb = aws.client("dynamodb")
        return cls(
            settings=settings,
            s3=aws.client("s3"),
            sqs=aws.client("sqs"),
            dynamodb=dynamodb,
            events=EventLog(settings.events_table, dynamodb, settings.event_ttl_days),
            keys=ApiKeys(settings.catalog_table, dynamodb),
        )


_current: Services | None = None


def services() -> Services:
    """The services of this process, built on first use."""
    global _current
    if _current is None:
        _current = Services.from_settings(get_settings())
    return _current


def use_services(replacement: Services | None) -> None:
    """Swap the services (tests, the local runtime after it changed the environment)."""
    global _current
    _current = replacement
