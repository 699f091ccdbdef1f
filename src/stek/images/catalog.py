"""The image catalog: one record per uploaded object, readable by tenant, status, machine, time.

Table layout (the shared catalog table, generic keys):

* image record: `pk` = `T#{tenant}#IMG#{image_id}`, `sk` = `IMG`;
  GSI `gsi1`: `gsi1pk` = `T#{tenant}#IMAGES`, `gsi1sk` = `{ingested_at}#{image_id}`, so a
  tenant's images list in ingestion order and a time range is a key condition;
* first owner of a content hash: `pk` = `T#{tenant}#SHA#{sha256}`, `sk` = `SHA`, written with a
  conditional put so exactly one image of a tenant owns each sha256 (see `claim_sha256`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError, ParamValidationError
from pydantic import BaseModel

from stek.errors import InvalidInput, NotFound
from stek.pagination import decode_cursor, encode_cursor

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_BATCH_GET_LIMIT = 100


class ImageStatus(StrEnum):
    INGESTED = "ingested"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class ImageRecord(BaseModel):
    """What stek knows about one uploaded object."""

    tenant: str
    image_id: str
    status: ImageStatus
    bucket: str
    key: str
    size: int
    sha256: str | None = None
    phash: str | None = None  # 16 hex chars: a 64-bit DCT perceptual hash
    width: int | None = None  # as displayed, EXIF orientation applied
    height: int | None = None
    format: str | None = None  # JPEG, PNG, WEBP, TIFF, BMP
    machine_id: str | None = None
    tray: str | None = None
    captured_at: datetime | None = None
    label: str | None = None
    thumbnail_key: str | None = None  # in the artifacts bucket
    duplicate_of: str | None = None
    reason: str | None = None  # short code, e.g. "not_an_image", "truncated"
    reason_detail: str | None = None
    quarantine_key: str | None = None  # in the artifacts bucket
    ingested_at: datetime
    correlation_id: str


class ImageCatalog:
    """Image records in the catalog table."""

    def __init__(self, table_name: str, dynamodb: Any) -> None:
        self._table_name = table_name
        self._dynamodb = dynamodb

    def get(self, tenant: str, image_id: str) -> ImageRecord:
        """The record of one image; NotFound if the tenant has no such image."""
        answer = self._dynamodb.get_item(
            TableName=self._table_name, Key=_record_key(tenant, image_id), ConsistentRead=True
        )
        if "Item" not in answer:
            raise NotFound(f"image {image_id} does not exist")
        return _record(answer["Item"])

    def find(self, tenant: str, image_id: str) -> ImageRecord | None:
        """The record of one image, or None."""
        try:
            return self.get(tenant, image_id)
        except NotFound:
            return None

    def get_many(self, tenant: str, image_ids: list[str]) -> list[ImageRecord]:
        """Records in the order asked; NotFound (with the `missing` ids) if any is unknown."""
        unique = list(dict.fromkeys(image_ids))
        found: dict[str, ImageRecord] = {}
        for start in range(0, len(unique), _BATCH_GET_LIMIT):
            chunk = unique[start : start + _BATCH_GET_LIMIT]
            for record in self._batch_get([_record_key(tenant, i) for i in chunk]):
                found[record.image_id] = record
        missing = [image_id for image_id in unique if image_id not in found]
        if missing:
            shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise NotFound(f"{len(missing)} image(s) do not exist: {shown}", missing=missing)
        return [found[image_id] for image_id in image_ids]

    def query(
        self,
        tenant: str,
        *,
        status: ImageStatus | str | None = None,
        machine_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        label: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[ImageRecord], str | None]:
        """One page of a tenant's images in ingestion order, and the cursor of the next page.

        `since`/`until` bound the ingestion time (inclusive). Filters on status, machine and
        label are applied by DynamoDB after the key range; pages are filled up to `limit`.
        """
        request = self._query_request(tenant, status, machine_id, since, until, label)
        start = decode_cursor(cursor)
        records: list[ImageRecord] = []
        while len(records) < limit:
            if start:
                request["ExclusiveStartKey"] = start
            request["Limit"] = limit - len(records)
            answer = self._query_page(request)
            items = answer.get("Items", [])
            records.extend(_record(item) for item in items)
            start = answer.get("LastEvaluatedKey")
            if not start:
                break
            if len(records) >= limit and items:
                start = _page_key(items[-1])
        return records[:limit], encode_cursor(start)

    def iter_all(
        self,
        tenant: str,
        *,
        status: ImageStatus | str | None = None,
        machine_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        label: str | None = None,
    ) -> Iterator[ImageRecord]:
        """Every image matching the filters, page by page."""
        cursor: str | None = None
        while True:
            records, cursor = self.query(
                tenant,
                status=status,
                machine_id=machine_id,
                since=since,
                until=until,
                label=label,
                limit=500,
                cursor=cursor,
            )
            yield from records
            if cursor is None:
                return

    def put_new(self, record: ImageRecord) -> ImageRecord:
        """Write a record unless one with its id exists; returns the record that is stored."""
        item = _item(record)
        try:
            self._dynamodb.put_item(
                TableName=self._table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return self.get(record.tenant, record.image_id)
        return record

    def claim_sha256(self, tenant: str, sha256: str, image_id: str) -> str:
        """The id of the tenant's first image with this content: `image_id` if it is the first.

        A conditional put makes the claim atomic, so two uploads of the same bytes racing
        each other still give one original and one duplicate.
        """
        key = {"pk": {"S": f"T#{tenant}#SHA#{sha256}"}, "sk": {"S": "SHA"}}
        try:
            self._dynamodb.put_item(
                TableName=self._table_name,
                Item={**key, "image_id": {"S": image_id}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            answer = self._dynamodb.get_item(
                TableName=self._table_name, Key=key, ConsistentRead=True
            )
            return str(answer["Item"]["image_id"]["S"])
        return image_id

    def _query_page(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            return self._dynamodb.query(**request)  # type: ignore[no-any-return]
        except ParamValidationError as error:
            raise InvalidInput("cursor is not one this list handed out") from error
        except ClientError as error:
            # Only a cursor from elsewhere (another list, another tenant) gets here.
            if (
                "ExclusiveStartKey" in request
                and error.response["Error"]["Code"] == "ValidationException"
            ):
                raise InvalidInput("cursor is not one this list handed out") from error
            raise

    def _batch_get(self, keys: list[dict[str, Any]]) -> Iterator[ImageRecord]:
        request: dict[str, Any] = {self._table_name: {"Keys": keys, "ConsistentRead": True}}
        while request:
            answer = self._dynamodb.batch_get_item(RequestItems=request)
            yield from (_record(item) for item in answer["Responses"].get(self._table_name, []))
            request = answer.get("UnprocessedKeys") or {}

    def _query_request(
        self,
        tenant: str,
        status: ImageStatus | str | None,
        machine_id: str | None,
        since: datetime | None,
        until: datetime | None,
        label: str | None,
    ) -> dict[str, Any]:
        low = _stamp(since) if since else "0"
        high = _stamp(until) + "~" if until else "~"
        values: dict[str, Any] = {
            ":pk": {"S": _index_key(tenant)},
            ":low": {"S": low},
            ":high": {"S": high},
        }
        filters: list[str] = []
        names: dict[str, str] = {}
        for name, value in (("status", status), ("machine_id", machine_id), ("label", label)):
            if value is not None:
                filters.append(f"#{name} = :{name}")
                names[f"#{name}"] = name
                values[f":{name}"] = {"S": str(value)}
        request: dict[str, Any] = {
            "TableName": self._table_name,
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :pk AND gsi1sk BETWEEN :low AND :high",
            "ExpressionAttributeValues": values,
        }
        if filters:
            request["FilterExpression"] = " AND ".join(filters)
            request["ExpressionAttributeNames"] = names
        return request


def _record_key(tenant: str, image_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"T#{tenant}#IMG#{image_id}"}, "sk": {"S": "IMG"}}


def _index_key(tenant: str) -> str:
    return f"T#{tenant}#IMAGES"


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _item(record: ImageRecord) -> dict[str, Any]:
    fields = {k: v for k, v in record.model_dump(mode="json").items() if v is not None}
    item = {
        **_record_key(record.tenant, record.image_id),
        "gsi1pk": {"S": _index_key(record.tenant)},
        "gsi1sk": {"S": f"{_stamp(record.ingested_at)}#{record.image_id}"},
    }
    item.update({name: _serializer.serialize(value) for name, value in fields.items()})
    return item


def _record(item: dict[str, Any]) -> ImageRecord:
    plain = {name: _deserializer.deserialize(value) for name, value in item.items()}
    return ImageRecord.model_validate(plain)


def _page_key(item: dict[str, Any]) -> dict[str, Any]:
    # The same shape as DynamoDB's own LastEvaluatedKey on the index, so cursors mix freely.
    return {name: item[name] for name in ("pk", "sk", "gsi1pk", "gsi1sk")}
