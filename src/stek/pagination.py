"""Opaque page cursors over DynamoDB's LastEvaluatedKey."""

from __future__ import annotations

import base64
import json
from typing import Any

from stek.errors import InvalidInput


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    """A URL-safe cursor for the next page, or None on the last page."""
    if not last_key:
        return None
    return base64.urlsafe_b64encode(json.dumps(last_key, default=str).encode()).decode()


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    """The ExclusiveStartKey a cursor stands for."""
    if not cursor:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, TypeError) as error:
        raise InvalidInput("cursor is not one this API handed out") from error
    if not isinstance(decoded, dict):
        raise InvalidInput("cursor is not one this API handed out")
    return decoded


def query_page(
    dynamodb: Any, query: dict[str, Any], cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a DynamoDB query (client API) and the cursor of the next page."""
    if start := decode_cursor(cursor):
        query = {**query, "ExclusiveStartKey": start}
    answer = dynamodb.query(**query)
    return answer.get("Items", []), encode_cursor(answer.get("LastEvaluatedKey"))
