"""The HTTP layer shared by every function: one resolver shape, one auth rule, one error shape.

Every function builds its resolver with `build_resolver(...)` from the routers it serves.
Domain errors become `application/problem+json` here, and only here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError

from stek.auth import Principal
from stek.errors import StekError, Unauthorized, problem
from stek.observability import logger
from stek.services import services

PROBLEM_JSON = "application/problem+json"

# Routes that answer without an API key. The MinIO webhook checks its own bearer token.
PUBLIC_PATHS = frozenset({"/v1/health", "/openapi.json", "/docs", "/v1/bucket-events"})


def build_resolver(*routers: Router) -> APIGatewayHttpResolver:
    """A resolver with validation, key authentication and problem responses."""
    app = APIGatewayHttpResolver(enable_validation=True)
    app.use(middlewares=[_authenticate])
    for router in routers:
        app.include_router(router)
    app.exception_handler(StekError)(_domain_problem)
    app.exception_handler(RequestValidationError)(_validation_problem)
    app.not_found()(_route_not_found)
    return app


def caller(router: Router | APIGatewayHttpResolver) -> Principal:
    """The principal the auth middleware put in the request context."""
    principal = router.context.get("principal")
    if not isinstance(principal, Principal):
        raise Unauthorized("this route needs an API key")
    return principal


def problem_response(status: int, title: str, detail: str, **extra: Any) -> Response:
    return Response(
        status_code=status,
        content_type=PROBLEM_JSON,
        body=json.dumps(problem(status, title, detail, **extra), default=str),
    )


def _authenticate(
    app: APIGatewayHttpResolver, next_middleware: Callable[..., Response]
) -> Response:
    path = app.current_event.path
    if path in PUBLIC_PATHS:
        return next_middleware(app)
    try:
        principal = services().keys.authenticate(app.current_event.headers.get("authorization"))
    except StekError as error:
        return _domain_problem(error)
    app.append_context(principal=principal)
    logger.append_keys(tenant=principal.tenant, role=principal.role.value)
    return next_middleware(app)


def _domain_problem(error: StekError) -> Response:
    logger.info("request refused", status=error.status, reason=error.detail)
    return problem_response(error.status, error.title, error.detail, **error.extra)


def _validation_problem(error: RequestValidationError) -> Response:
    errors = [
        {"location": ".".join(str(part) for part in e.get("loc", ())), "message": e.get("msg", "")}
        for e in error.errors()
    ]
    detail = "; ".join(f"{e['location']}: {e['message']}" for e in errors) or "request is invalid"
    logger.info("request refused", status=422, reason=detail)
    return problem_response(422, "Invalid request", detail, errors=errors)


def _route_not_found(_: Exception) -> Response:
    return problem_response(404, "Not found", "no such route; see /docs for the API")
