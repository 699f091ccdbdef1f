"""Event log routes: operators and scientists read what happened, and why."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Query

from stek.eventlog import EventPage
from stek.http import caller
from stek.services import services

router = Router()


@router.get("/v1/events", tags=["events"], summary="Read the event log")
def list_events(
    type: Annotated[str | None, Query(description="e.g. image.ingested")] = None,
    subject: Annotated[str | None, Query(description="image, dataset, job or model id")] = None,
    since: Annotated[datetime | None, Query()] = None,
    until: Annotated[datetime | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query()] = None,
) -> EventPage:
    principal = caller(router)
    return services().events.read(
        principal.tenant,
        type=type,
        subject=subject,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
