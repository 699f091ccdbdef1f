"""Ingest: one uploaded object becomes a catalog record, or goes to quarantine with a reason."""

from __future__ import annotations

from stek.bucket_events import ObjectCreated
from stek.errors import MalformedEvent
from stek.observability import logger
from stek.services import services


def ingest_object(created: ObjectCreated) -> None:
    """Record that an object arrived under `{tenant}/{machine_id}/...`."""
    tenant, _, rest = created.key.partition("/")
    if not tenant or not rest:
        raise MalformedEvent(f"object key {created.key!r} has no tenant prefix")
    logger.info("object received", bucket=created.bucket, key=created.key, size=created.size)
    services().events.record(
        "image.received",
        tenant,
        created.key,
        correlation_id=created.dedup_key,
        dedup=created.dedup_key,
        key=created.key,
        bucket=created.bucket,
        size=created.size,
    )
