"""The registry's records in the catalog table.

Layout, all under `pk` = `T#{tenant}#MODEL#{name}`:

* `sk` = `MODEL`: the model, its version counter `latest_version` and promotion rule; listed
  through GSI `gsi1` (`gsi1pk` = `T#{tenant}#MODELS`, `gsi1sk` = name);
* `sk` = `VERSION#{version:06d}`: one model version (JSON in `record`);
* `sk` = `SOURCE#{sha256 of the object's dedup key}`: which version an object became, so a
  redelivered bucket event registers nothing new;
* `sk` = `ALIAS#{alias}`: where an alias points now; `ALIASLOG#{time}#{id}`: its history;
* `sk` = `VALIDATION#{version:06d}#{validation_id}`: a validation of a version.

A new version takes the next number with one transaction: the counter moves only if nobody
else moved it since it was read, and the source marker and the version are written with it.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from botocore.exceptions import ClientError

from stek.errors import Conflict, InvalidInput, NotFound
from stek.pagination import query_page
from stek.registry.records import (
    AliasChange,
    Model,
    ModelVersion,
    PromotionRule,
    Validation,
)

_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_REGISTER_ATTEMPTS = 5


def validate_name(name: str, what: str = "model name") -> str:
    """Names are object-key segments and sort keys: keep them plain."""
    if not name or len(name) > 63 or not set(name) <= _NAME_CHARACTERS or name.startswith("."):
        raise InvalidInput(f"{what} must be 1-63 letters, digits, '-', '_' or '.': {name!r}")
    return name


class ModelRegistry:
    """Models, versions, aliases and validations of every tenant, in the catalog table."""

    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table = table_name
        self._dynamodb = dynamodb

    # ---------------------------------------------------------------- versions

    def register(self, candidate: ModelVersion, dedup_key: str) -> tuple[ModelVersion, bool]:
        """Write `candidate` as the next version of its model; (version, True) when new,
        (the version the object became before, False) on a redelivery."""
        source_sk = "SOURCE#" + hashlib.sha256(dedup_key.encode()).hexdigest()
        pk = _model_pk(candidate.tenant, candidate.name)
        for _ in range(_REGISTER_ATTEMPTS):
            earlier = self._get(pk, source_sk)
            if earlier:
                return self.version(
                    candidate.tenant, candidate.name, int(earlier["version"]["N"])
                ), False
            latest = self._latest_version(pk)
            registered = candidate.model_copy(update={"version": latest + 1})
            if self._write_next_version(registered, latest, source_sk):
                return registered, True
        raise Conflict(f"model {candidate.name} is being registered concurrently; retry")

    def version(self, tenant: str, name: str, version: int) -> ModelVersion:
        item = self._get(_model_pk(tenant, name), _version_sk(version))
        if not item:
            raise NotFound(f"model {name} has no version {version}")
        return ModelVersion.model_validate_json(item["record"]["S"])

    def versions(
        self, tenant: str, name: str, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[ModelVersion], str | None]:
        items, next_cursor = self._query_prefix(_model_pk(tenant, name), "VERSION#", limit, cursor)
        return [ModelVersion.model_validate_json(i["record"]["S"]) for i in items], next_cursor

    # ------------------------------------------------------------------ models

    def model(self, tenant: str, name: str) -> Model:
        item = self._get(_model_pk(tenant, name), "MODEL")
        if not item:
            raise NotFound(f"there is no model {name}")
        return _model(tenant, name, item)

    def models(
        self, tenant: str, *, limit: int = 100, cursor: str | None = None
    ) -> tuple[list[Model], str | None]:
        query = {
            "TableName": self._table,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :models",
            "ExpressionAttributeValues": {":models": {"S": f"T#{tenant}#MODELS"}},
            "Limit": limit,
        }
        # The index projects the whole MODEL item: no second read per model.
        items, next_cursor = query_page(self._dynamodb, query, cursor)
        return [_model(tenant, item["name"]["S"], item) for item in items], next_cursor

    def set_promotion_rule(self, tenant: str, name: str, rule: PromotionRule | None) -> None:
        self.model(tenant, name)  # 404 for a model that does not exist
        key = {"pk": {"S": _model_pk(tenant, name)}, "sk": {"S": "MODEL"}}
        if rule is None:
            self._dynamodb.update_item(
                TableName=self._table, Key=key, UpdateExpression="REMOVE promotion_rule"
            )
            return
        self._dynamodb.update_item(
            TableName=self._table,
            Key=key,
            UpdateExpression="SET promotion_rule = :rule",
            ExpressionAttributeValues={":rule": {"S": rule.model_dump_json()}},
        )

    # ----------------------------------------------------------------- aliases

    def aliases(self, tenant: str, name: str) -> dict[str, int]:
        items, _ = self._query_prefix(_model_pk(tenant, name), "ALIAS#", 1000, None)
        return {i["sk"]["S"].removeprefix("ALIAS#"): int(i["version"]["N"]) for i in items}

    def alias_history(self, tenant: str, name: str, *, limit: int = 100) -> list[AliasChange]:
        """Newest change first."""
        answer = self._dynamodb.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": _model_pk(tenant, name)},
                ":prefix": {"S": "ALIASLOG#"},
            },
            ScanIndexForward=False,
            Limit=limit,
        )
        return [AliasChange.model_validate_json(i["record"]["S"]) for i in answer["Items"]]

    def point_alias(self, tenant: str, name: str, change: AliasChange) -> None:
        """Move the alias, unless someone else moved it since `change.previous_version` was
        read; the history entry is written in the same transaction."""
        pk = _model_pk(tenant, name)
        if change.previous_version is None:
            condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"}
        else:
            condition = {
                "ConditionExpression": "version = :previous",
                "ExpressionAttributeValues": {":previous": {"N": str(change.previous_version)}},
            }
        stamp = change.changed_at.isoformat(timespec="microseconds")
        alias_item = {
            "pk": {"S": pk},
            "sk": {"S": f"ALIAS#{change.alias}"},
            "version": {"N": str(change.version)},
            "record": {"S": change.model_dump_json()},
        }
        history_item = {
            "pk": {"S": pk},
            "sk": {"S": f"ALIASLOG#{stamp}#{uuid.uuid4().hex[:8]}"},
            "record": {"S": change.model_dump_json()},
        }
        try:
            self._dynamodb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self._table, "Item": alias_item, **condition}},
                    {"Put": {"TableName": self._table, "Item": history_item}},
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                raise Conflict(
                    f"alias {change.alias} changed meanwhile; read it and retry"
                ) from error
            raise

    # ------------------------------------------------------------- validations

    def save_validation(self, validation: Validation) -> None:
        self._dynamodb.put_item(
            TableName=self._table,
            Item={
                "pk": {"S": _model_pk(validation.tenant, validation.name)},
                "sk": {"S": _validation_sk(validation.version, validation.validation_id)},
                "record": {"S": validation.model_dump_json()},
            },
        )

    def validation(self, tenant: str, name: str, version: int, validation_id: str) -> Validation:
        item = self._get(_model_pk(tenant, name), _validation_sk(version, validation_id))
        if not item:
            raise NotFound(f"model {name} version {version} has no validation {validation_id}")
        return Validation.model_validate_json(item["record"]["S"])

    def validations(self, tenant: str, name: str, version: int) -> list[Validation]:
        """Oldest first."""
        prefix = f"VALIDATION#{version:06d}#"
        items, _ = self._query_prefix(_model_pk(tenant, name), prefix, 1000, None)
        found = [Validation.model_validate_json(i["record"]["S"]) for i in items]
        return sorted(found, key=lambda validation: validation.created_at)

    # ---------------------------------------------------------------- plumbing

    def _latest_version(self, pk: str) -> int:
        item = self._get(pk, "MODEL")
        return int(item["latest_version"]["N"]) if item else 0

    def _write_next_version(self, registered: ModelVersion, latest: int, source_sk: str) -> bool:
        pk = _model_pk(registered.tenant, registered.name)
        counter = {
            "TableName": self._table,
            "Key": {"pk": {"S": pk}, "sk": {"S": "MODEL"}},
            "UpdateExpression": (
                "SET latest_version = :next, #name = :name, task = if_not_exists(task, :task), "
                "created_at = if_not_exists(created_at, :now), gsi1pk = :models, gsi1sk = :name"
            ),
            "ConditionExpression": "attribute_not_exists(pk) OR latest_version = :latest",
            "ExpressionAttributeNames": {"#name": "name"},
            "ExpressionAttributeValues": {
                ":next": {"N": str(registered.version)},
                ":latest": {"N": str(latest)},
                ":name": {"S": registered.name},
                ":task": {"S": registered.task.value},
                ":now": {"S": registered.registered_at.isoformat()},
                ":models": {"S": f"T#{registered.tenant}#MODELS"},
            },
        }
        version_item = {
            "pk": {"S": pk},
            "sk": {"S": _version_sk(registered.version)},
            "record": {"S": registered.model_dump_json()},
        }
        source_item = {
            "pk": {"S": pk},
            "sk": {"S": source_sk},
            "version": {"N": str(registered.version)},
        }
        absent = "attribute_not_exists(pk)"
        try:
            self._dynamodb.transact_write_items(
                TransactItems=[
                    {"Update": counter},
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": version_item,
                            "ConditionExpression": absent,
                        }
                    },
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": source_item,
                            "ConditionExpression": absent,
                        }
                    },
                ]
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "TransactionCanceledException":
                return False
            raise
        return True

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        answer = self._dynamodb.get_item(
            TableName=self._table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
        )
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def _query_prefix(
        self, pk: str, prefix: str, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        query = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}},
            "Limit": limit,
        }
        return query_page(self._dynamodb, query, cursor)


def _model(tenant: str, name: str, item: dict[str, Any]) -> Model:
    rule = item.get("promotion_rule", {}).get("S")
    return Model(
        tenant=tenant,
        name=name,
        task=item["task"]["S"],
        latest_version=int(item["latest_version"]["N"]),
        promotion_rule=PromotionRule.model_validate_json(rule) if rule else None,
        created_at=item["created_at"]["S"],
    )


def _model_pk(tenant: str, name: str) -> str:
    return f"T#{tenant}#MODEL#{name}"


def _version_sk(version: int) -> str:
    return f"VERSION#{version:06d}"


def _validation_sk(version: int, validation_id: str) -> str:
    return f"VALIDATION#{version:06d}#{validation_id}"
