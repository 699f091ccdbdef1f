"""Datasets, their images and their versions in the catalog table.

Layout (the shared catalog table, generic keys; every key scoped by tenant):

* dataset: `pk` = `T#{tenant}#DATASET#{dataset_id}`, `sk` = `DATASET`; GSI `gsi1`:
  `gsi1pk` = `T#{tenant}#DATASETS`, `gsi1sk` = `{created_at}#{dataset_id}` (listing);
  `latest_version` counts the version numbers handed out;
* one image of a dataset: same `pk`, `sk` = `IMAGE#{image_id}` (its labels and split hint);
* one import: same `pk`, `sk` = `IMPORT#{import_id}` (what the import found);
* one version: same `pk`, `sk` = `VERSION#{version:06d}`, attribute `summary` (see manifest.py).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError
from pydantic import BaseModel, Field

from stek.datasets.manifest import Box, Split, Task, VersionSummary, version_item_key
from stek.errors import Conflict, NotFound
from stek.pagination import query_page

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_WRITE_BATCH = 25


class Dataset(BaseModel):
    tenant: str
    dataset_id: str
    name: str
    task: Task
    classes: list[str]
    created_at: datetime
    latest_version: int = 0


class DatasetImage(BaseModel):
    """An image as a member of one dataset: its labels there and where it came from."""

    image_id: str
    label: str | None = None
    boxes: list[Box] | None = None  # None: no box annotations were given (catalog images)
    split: Split | None = None  # a split the source asked for (imports); None: by hash
    source: str = "catalog"  # "catalog" or "import:{import_id}"
    path: str | None = None  # the file's path in the import, to report it by name
    added_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class DatasetCatalog:
    """Reads and writes dataset items; takes its DynamoDB client from the caller."""

    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table_name = table_name
        self._dynamodb = dynamodb

    # ------------------------------------------------------------------ datasets
    def create(self, tenant: str, name: str, task: Task, classes: list[str]) -> Dataset:
        dataset = Dataset(
            tenant=tenant,
            dataset_id=uuid.uuid4().hex[:16],
            name=name,
            task=task,
            classes=classes,
            created_at=datetime.now(UTC),
        )
        item = {
            **_dataset_key(tenant, dataset.dataset_id),
            "gsi1pk": {"S": f"T#{tenant}#DATASETS"},
            "gsi1sk": {"S": f"{dataset.created_at.isoformat()}#{dataset.dataset_id}"},
            "dataset": {"S": dataset.model_dump_json(exclude={"latest_version"})},
            "latest_version": {"N": "0"},
        }
        self._dynamodb.put_item(
            TableName=self._table_name, Item=item, ConditionExpression="attribute_not_exists(pk)"
        )
        return dataset

    def get(self, tenant: str, dataset_id: str) -> Dataset:
        answer = self._dynamodb.get_item(
            TableName=self._table_name, Key=_dataset_key(tenant, dataset_id), ConsistentRead=True
        )
        if "Item" not in answer:
            raise NotFound(f"dataset {dataset_id} does not exist")
        return _dataset(answer["Item"])

    def page(self, tenant: str, limit: int, cursor: str | None) -> tuple[list[Dataset], str | None]:
        request = {
            "TableName": self._table_name,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"T#{tenant}#DATASETS"}},
            "Limit": limit,
        }
        items, next_cursor = query_page(self._dynamodb, request, cursor)
        return [_dataset(item) for item in items], next_cursor

    def add_classes(self, dataset: Dataset, classes: Iterable[str]) -> Dataset:
        """The dataset with `classes` appended (an import into a dataset with no classes yet)."""
        merged = list(dict.fromkeys([*dataset.classes, *classes]))
        if merged == dataset.classes:
            return dataset
        updated = dataset.model_copy(update={"classes": merged})
        self._dynamodb.update_item(
            TableName=self._table_name,
            Key=_dataset_key(dataset.tenant, dataset.dataset_id),
            UpdateExpression="SET dataset = :dataset",
            ExpressionAttributeValues={
                ":dataset": {"S": updated.model_dump_json(exclude={"latest_version"})}
            },
        )
        return updated

    # ------------------------------------------------------------------- images
    def add_images(self, tenant: str, dataset_id: str, images: list[DatasetImage]) -> None:
        """Put images in the dataset; an image already there takes the new labels.

        An image keeps the time it first joined: versions asked for before a relabelling
        still include it, and it stays the representative of its look-alikes.
        """
        unique = list({image.image_id: image for image in images}.values())
        for start in range(0, len(unique), _WRITE_BATCH):
            batch = self._keeping_join_times(
                tenant, dataset_id, unique[start : start + _WRITE_BATCH]
            )
            requests = [
                {"PutRequest": {"Item": self._image_item(tenant, dataset_id, image)}}
                for image in batch
            ]
            pending: dict[str, Any] = {self._table_name: requests}
            while pending:
                answer = self._dynamodb.batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}

    def _keeping_join_times(
        self, tenant: str, dataset_id: str, batch: list[DatasetImage]
    ) -> list[DatasetImage]:
        keys = [
            {"pk": {"S": _dataset_pk(tenant, dataset_id)}, "sk": {"S": f"IMAGE#{image.image_id}"}}
            for image in batch
        ]
        joined: dict[str, datetime] = {}
        request: dict[str, Any] = {self._table_name: {"Keys": keys, "ConsistentRead": True}}
        while request:
            answer = self._dynamodb.batch_get_item(RequestItems=request)
            for item in answer["Responses"].get(self._table_name, []):
                existing = DatasetImage.model_validate_json(item["image"]["S"])
                joined[existing.image_id] = existing.added_at
            request = answer.get("UnprocessedKeys") or {}
        return [
            image.model_copy(update={"added_at": joined[image.image_id]})
            if image.image_id in joined
            else image
            for image in batch
        ]

    def images(
        self, tenant: str, dataset_id: str, added_until: datetime | None = None
    ) -> Iterator[DatasetImage]:
        """Every image of the dataset (added at or before `added_until`, when given)."""
        for item in self._query_prefix(tenant, dataset_id, "IMAGE#"):
            image = DatasetImage.model_validate_json(item["image"]["S"])
            if added_until is None or image.added_at <= added_until:
                yield image

    def count_images(self, tenant: str, dataset_id: str) -> int:
        return sum(1 for _ in self._query_prefix(tenant, dataset_id, "IMAGE#", keys_only=True))

    def _image_item(self, tenant: str, dataset_id: str, image: DatasetImage) -> dict[str, Any]:
        return {
            "pk": {"S": _dataset_pk(tenant, dataset_id)},
            "sk": {"S": f"IMAGE#{image.image_id}"},
            "image": {"S": image.model_dump_json()},
        }

    # ------------------------------------------------------------------ imports
    def put_import(
        self, tenant: str, dataset_id: str, import_id: str, result: dict[str, Any]
    ) -> None:
        self._dynamodb.put_item(
            TableName=self._table_name,
            Item={
                "pk": {"S": _dataset_pk(tenant, dataset_id)},
                "sk": {"S": f"IMPORT#{import_id}"},
                "result": {"S": json.dumps(result, default=str)},
            },
        )

    # ----------------------------------------------------------------- versions
    def next_version(self, tenant: str, dataset_id: str) -> int:
        """A new version number, handed out once (an atomic counter on the dataset)."""
        try:
            answer = self._dynamodb.update_item(
                TableName=self._table_name,
                Key=_dataset_key(tenant, dataset_id),
                UpdateExpression="ADD latest_version :one",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise NotFound(f"dataset {dataset_id} does not exist") from error
            raise
        return int(answer["Attributes"]["latest_version"]["N"])

    def put_version(self, summary: VersionSummary, *, new: bool = False) -> None:
        """Store a version's summary; a READY version is never written again."""
        key = version_item_key(summary.tenant, summary.dataset_id, summary.version)
        condition = (
            "attribute_not_exists(pk)" if new else "attribute_not_exists(pk) OR #status <> :ready"
        )
        request: dict[str, Any] = {
            "TableName": self._table_name,
            "Item": {
                **key,
                "summary": {"S": summary.model_dump_json()},
                "status": {"S": summary.status.value},
            },
            "ConditionExpression": condition,
        }
        if not new:
            request["ExpressionAttributeNames"] = {"#status": "status"}
            request["ExpressionAttributeValues"] = {":ready": {"S": "READY"}}
        try:
            self._dynamodb.put_item(**request)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise Conflict(
                    f"version {summary.version} of dataset {summary.dataset_id} is frozen"
                ) from error
            raise

    def versions(self, tenant: str, dataset_id: str) -> list[VersionSummary]:
        return [
            VersionSummary.model_validate_json(item["summary"]["S"])
            for item in self._query_prefix(tenant, dataset_id, "VERSION#")
        ]

    def _query_prefix(
        self, tenant: str, dataset_id: str, prefix: str, *, keys_only: bool = False
    ) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self._table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": {"S": _dataset_pk(tenant, dataset_id)},
                ":prefix": {"S": prefix},
            },
            "ConsistentRead": True,
        }
        if keys_only:
            request["ProjectionExpression"] = "pk, sk"
        while True:
            answer = self._dynamodb.query(**request)
            yield from answer.get("Items", [])
            if "LastEvaluatedKey" not in answer:
                return
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]


def _dataset_pk(tenant: str, dataset_id: str) -> str:
    return f"T#{tenant}#DATASET#{dataset_id}"


def _dataset_key(tenant: str, dataset_id: str) -> dict[str, Any]:
    return {"pk": {"S": _dataset_pk(tenant, dataset_id)}, "sk": {"S": "DATASET"}}


def _dataset(item: dict[str, Any]) -> Dataset:
    plain = json.loads(item["dataset"]["S"])
    plain["latest_version"] = int(_deserializer.deserialize(item.get("latest_version", {"N": "0"})))
    return Dataset.model_validate(plain)
