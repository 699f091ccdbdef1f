"""Service routes: health, the OpenAPI document, Swagger UI and the MinIO bucket webhook."""

from __future__ import annotations

import hmac
from functools import lru_cache
from pathlib import Path

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.swagger_ui.html import generate_swagger_html
from pydantic import BaseModel

from stek import __version__
from stek.bucket_events import parse_bucket_events
from stek.errors import MalformedEvent, Unauthorized
from stek.observability import logger
from stek.services import services

router = Router()


class Health(BaseModel):
    status: str
    version: str


class WebhookAccepted(BaseModel):
    accepted: int


@router.get("/v1/health", tags=["service"], summary="Liveness of the API")
def health() -> Health:
    return Health(status="ok", version=__version__)


@router.get("/openapi.json", tags=["service"], summary="The OpenAPI document of the whole API")
def openapi_document() -> Response[str]:
    return Response(status_code=200, content_type="application/json", body=_spec_json())


@router.get("/docs", tags=["service"], summary="Swagger UI", include_in_schema=False)
def swagger_ui() -> Response[str]:
    # Swagger UI's script and style come from the installed Powertools package and are
    # inlined, so the page works on a line machine with no internet.
    assets = Path(_powertools_swagger_dir())
    html = generate_swagger_html(
        _spec_json().replace("</", "<\\/"),
        (assets / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (assets / "swagger-ui.min.css").read_text(encoding="utf-8"),
        "",
        None,
        True,
    )
    return Response(status_code=200, content_type="text/html", body=html)


@router.post("/v1/bucket-events", tags=["service"], summary="MinIO bucket-notification webhook")
def minio_webhook() -> WebhookAccepted:
    """Queue MinIO's notification for the ingest function, as S3 would through SQS."""
    _check_webhook_token(router.current_event.headers.get("authorization"))
    body = router.current_event.decoded_body or ""
    try:
        objects = parse_bucket_events(body, source="minio")
    except MalformedEvent:
        logger.info("bucket webhook refused", reason="malformed payload")
        raise
    if objects:
        services().sqs.send_message(QueueUrl=services().settings.ingest_queue_url, MessageBody=body)
    logger.info("bucket webhook accepted", objects=len(objects))
    return WebhookAccepted(accepted=len(objects))


def _check_webhook_token(authorization: str | None) -> None:
    expected = services().settings.webhook_token
    if not expected:
        raise Unauthorized("the bucket webhook is disabled: set STEK_WEBHOOK_TOKEN")
    presented = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise Unauthorized("wrong webhook token")


@lru_cache(maxsize=1)
def _spec_json() -> str:
    # Imported here: the spec spans every function's routes, and building it is only
    # needed when someone asks for it.
    from stek.api.spec import openapi_json

    return openapi_json()


def _powertools_swagger_dir() -> str:
    from aws_lambda_powertools.event_handler.openapi import swagger_ui

    return str(Path(swagger_ui.__file__).parent)
