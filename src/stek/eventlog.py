"""The event log: one domain event per step, readable by type, subject and time range.

Table layout (see `EventsTable` in template.yaml):

* `pk` = `T#{tenant}`, `sk` = `{time}#{event_id}`: a tenant's events in time order;
* GSI `by_subject` on `subject_key` = `{tenant}#{subject}`;
* GSI `by_type` on `type_key` = `{tenant}#{type}`;
* `expires_at` is the TTL attribute.

Writes are idempotent: a caller that may run twice for the same delivery passes a `dedup`
string, the event id is derived from it, and a marker item written in the same transaction
makes the second write a no-op.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from boto3.dynamodb.conditions import Attr, Key
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from stek.pagination import decode_cursor, encode_cursor

_NAMESPACE = uuid.UUID("6f1d2c1e-57e4-4c3b-9a77-3a4f4d1a9b10")
_serializer = TypeSerializer()


class DomainEvent(BaseModel):
    """Something that happened to an image, dataset, job or model."""

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    type: str
    tenant: str
    subject: str
    correlation_id: str = ""
    actor: str = "system"
    data: dict[str, Any] = Field(default_factory=dict)


class EventPage(BaseModel):
    events: list[DomainEvent]
    next_cursor: str | None = None


class EventLog:
    """Writes and reads domain events in the events table."""

    def __init__(self, table_name: str, dynamodb: Any, ttl_days: int = 365) -> None:
        self._table_name = table_name
        self._dynamodb = dynamodb
        self._ttl = timedelta(days=ttl_days)
        self._table_resource: Any = None

    def record(
        self,
        type: str,
        tenant: str,
        subject: str,
        *,
        correlation_id: str = "",
        actor: str = "system",
        dedup: str | None = None,
        **data: Any,
    ) -> DomainEvent | None:
        """Append an event; returns None when `dedup` says it was written before."""
        event = DomainEvent(
            type=type,
            tenant=tenant,
            subject=subject,
            correlation_id=correlation_id,
            actor=actor,
            data=data,
        )
        if dedup:
            event.id = uuid.uuid5(_NAMESPACE, f"{type}|{tenant}|{dedup}").hex
        if not self._put(event, deduplicated=dedup is not None):
            return None
        return event

    def _put(self, event: DomainEvent, *, deduplicated: bool) -> bool:
        item = self._item(event)
        if not deduplicated:
            self._dynamodb.put_item(TableName=self._table_name, Item=_serialize(item))
            return True
        marker = {"pk": f"EVENT#{event.id}", "sk": "EVENT", "expires_at": item["expires_at"]}
        try:
            self._dynamodb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._table_name,
                            "Item": _serialize(marker),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Put": {"TableName": self._table_name, "Item": _serialize(item)}},
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise
        return True

    def _item(self, event: DomainEvent) -> dict[str, Any]:
        stamp = event.time.astimezone(UTC).isoformat(timespec="microseconds")
        return {
            "pk": f"T#{event.tenant}",
            "sk": f"{stamp}#{event.id}",
            "subject_key": f"{event.tenant}#{event.subject}",
            "type_key": f"{event.tenant}#{event.type}",
            "event": event.model_dump_json(),
            "expires_at": int(time.time() + self._ttl.total_seconds()),
        }

    def read(
        self,
        tenant: str,
        *,
        type: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
        newest_first: bool = False,
    ) -> EventPage:
        """One page of a tenant's events, oldest first unless `newest_first`."""
        index, key = self._key_condition(tenant, type, subject)
        key = key & _time_range(since, until)
        query: dict[str, Any] = {
            "KeyConditionExpression": key,
            "Limit": limit,
            "ScanIndexForward": not newest_first,
        }
        if index:
            query["IndexName"] = index
        if type and subject:
            query["FilterExpression"] = Attr("type_key").eq(f"{tenant}#{type}")
        if start := decode_cursor(cursor):
            query["ExclusiveStartKey"] = start
        answer = self._table().query(**query)
        events = [DomainEvent.model_validate_json(item["event"]) for item in answer["Items"]]
        return EventPage(events=events, next_cursor=encode_cursor(answer.get("LastEvaluatedKey")))

    def follow(self, tenant: str, since: datetime, **filters: Any) -> Iterator[DomainEvent]:
        """Every event after `since`, page by page (one pass; callers poll for more)."""
        cursor = None
        while True:
            page = self.read(tenant, since=since, cursor=cursor, **filters)
            yield from page.events
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def _key_condition(
        self, tenant: str, type: str | None, subject: str | None
    ) -> tuple[str | None, Any]:
        if subject:
            return "by_subject", Key("subject_key").eq(f"{tenant}#{subject}")
        if type:
            return "by_type", Key("type_key").eq(f"{tenant}#{type}")
        return None, Key("pk").eq(f"T#{tenant}")

    def _table(self) -> Any:
        # The resource API gives Key() conditions and plain values; it is built from the
        # client's own endpoint and region so both always talk to the same service.
        if self._table_resource is None:
            resource = boto3.resource(
                "dynamodb",
                region_name=self._dynamodb.meta.region_name,
                endpoint_url=self._dynamodb.meta.endpoint_url,
            )
            self._table_resource = resource.Table(self._table_name)
        return self._table_resource


def _time_range(since: datetime | None, until: datetime | None) -> Any:
    # Sort keys start with an ISO time; "0" sorts before and "~" after every one of them.
    low = since.astimezone(UTC).isoformat(timespec="microseconds") if since else "0"
    high = until.astimezone(UTC).isoformat(timespec="microseconds") + "~" if until else "~"
    return Key("sk").between(low, high)


def _serialize(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in item.items()}
