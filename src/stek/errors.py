"""Domain exceptions. The HTTP layer maps each to an `application/problem+json` answer once."""

from __future__ import annotations

from typing import Any


class StekError(Exception):
    """Base of every error a person can act on. `status` is the HTTP status it maps to."""

    status = 400
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class InvalidInput(StekError):
    status = 422
    title = "Invalid input"


class Unauthorized(StekError):
    status = 401
    title = "Unauthorized"


class Forbidden(StekError):
    status = 403
    title = "Forbidden"


class NotFound(StekError):
    status = 404
    title = "Not found"


class Conflict(StekError):
    status = 409
    title = "Conflict"


class PayloadTooLarge(StekError):
    status = 413
    title = "Payload too large"


class RejectedImage(StekError):
    """An upload that is not an acceptable image; `reason` is a short machine-readable code."""

    status = 422
    title = "Rejected image"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, reason=reason)
        self.reason = reason


class MalformedEvent(StekError):
    """An event that no handler can make sense of. Logged and dropped, never retried."""

    title = "Malformed event"


def problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem document."""
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    body["detail"] = detail
    body.update(extra)
    return body
