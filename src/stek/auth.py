"""Tenants and API keys.

A key belongs to one tenant and one role. Only its SHA-256 is stored: keys are 256 bits of
randomness, so a slow password hash would add cost without adding safety.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from stek.errors import Forbidden, InvalidInput, Unauthorized

_KEY_PREFIX = "stek_"


class Role(StrEnum):
    MACHINE = "machine"
    SCIENTIST = "scientist"
    OPERATOR = "operator"


class Principal(BaseModel):
    """Who is calling: the tenant and role of the key they presented."""

    tenant: str
    role: Role
    key_id: str

    def require(self, *roles: Role) -> None:
        """Refuse the call unless the caller has one of `roles`."""
        if self.role not in roles:
            allowed = ", ".join(sorted(roles))
            raise Forbidden(f"this needs a key with role {allowed}; yours is {self.role}")


def validate_tenant(tenant: str) -> str:
    """Tenants prefix every object key, so they must be safe path segments."""
    if not tenant or len(tenant) > 63 or not all(c.isalnum() or c in "-_" for c in tenant):
        raise InvalidInput("tenant must be 1-63 letters, digits, '-' or '_'")
    return tenant


class ApiKeys:
    """API keys in the catalog table, under `pk` = `APIKEY#{sha256}`."""

    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table_name = table_name
        self._dynamodb = dynamodb

    def create(self, tenant: str, role: Role | str) -> tuple[str, Principal]:
        """A new key; the secret is returned once and never stored."""
        role = Role(role)
        validate_tenant(tenant)
        secret = _KEY_PREFIX + secrets.token_urlsafe(32)
        digest = _digest(secret)
        principal = Principal(tenant=tenant, role=role, key_id=digest[:12])
        self._dynamodb.put_item(
            TableName=self._table_name,
            Item={
                "pk": {"S": f"APIKEY#{digest}"},
                "sk": {"S": "APIKEY"},
                "tenant": {"S": tenant},
                "role": {"S": role.value},
                "key_id": {"S": principal.key_id},
                "created_at": {"S": datetime.now(UTC).isoformat()},
            },
        )
        return secret, principal

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal behind an `Authorization: Bearer <key>` header."""
        if not authorization:
            raise Unauthorized("send your API key as 'Authorization: Bearer <key>'")
        scheme, _, secret = authorization.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthorized("send your API key as 'Authorization: Bearer <key>'")
        answer = self._dynamodb.get_item(
            TableName=self._table_name,
            Key={"pk": {"S": f"APIKEY#{_digest(secret.strip())}"}, "sk": {"S": "APIKEY"}},
        )
        item = answer.get("Item")
        if not item:
            raise Unauthorized("this API key is not known; create one with 'stek keys create'")
        return Principal(
            tenant=item["tenant"]["S"], role=Role(item["role"]["S"]), key_id=item["key_id"]["S"]
        )


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
