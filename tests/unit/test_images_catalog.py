"""ImageCatalog on the catalog table: records, sha256 claims, batch reads and pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stek.errors import InvalidInput, NotFound
from stek.images.catalog import ImageCatalog, ImageRecord, ImageStatus
from stek.pagination import encode_cursor
from stek.services import Services


@pytest.fixture
def catalog(svc: Services) -> ImageCatalog:
    return ImageCatalog(svc.settings.catalog_table, svc.dynamodb)


def _record(tenant: str, number: int, **changes: Any) -> ImageRecord:
    fields: dict[str, Any] = {
        "tenant": tenant,
        "image_id": f"img{number:04d}",
        "status": ImageStatus.INGESTED,
        "bucket": "raw",
        "key": f"{tenant}/machine-1/{number}.jpg",
        "size": 1000 + number,
        "sha256": f"{number:064x}",
        "phash": "8f0f0f0f0f0f0f0f",
        "width": 640,
        "height": 480,
        "format": "JPEG",
        "machine_id": "machine-1",
        "label": "rooted" if number % 3 == 0 else None,
        "ingested_at": datetime(2026, 12, 1, tzinfo=UTC) + timedelta(minutes=number),
        "correlation_id": f"c{number}",
    }
    fields.update(changes)
    return ImageRecord(**fields)


def test_a_record_reads_back_as_written(catalog: ImageCatalog, tenant: str) -> None:
    record = _record(tenant, 1, captured_at=datetime(2026, 12, 1, 6, 0, tzinfo=UTC), tray="7")

    catalog.put_new(record)

    assert catalog.get(tenant, "img0001") == record


def test_put_new_keeps_the_first_record(catalog: ImageCatalog, tenant: str) -> None:
    first = catalog.put_new(_record(tenant, 1))

    second = catalog.put_new(_record(tenant, 1, size=5))

    assert second == first
    assert catalog.get(tenant, "img0001").size == first.size


def test_records_are_scoped_by_tenant(catalog: ImageCatalog, tenant: str) -> None:
    catalog.put_new(_record(tenant, 1))

    with pytest.raises(NotFound):
        catalog.get(f"other-{tenant}", "img0001")
    assert catalog.query(f"other-{tenant}") == ([], None)


def test_get_many_keeps_the_order_asked_and_names_what_is_missing(
    catalog: ImageCatalog, tenant: str
) -> None:
    for number in range(130):  # more than one BatchGetItem call
        catalog.put_new(_record(tenant, number))
    wanted = [f"img{n:04d}" for n in (129, 3, 77, 3)]

    assert [r.image_id for r in catalog.get_many(tenant, wanted)] == wanted
    assert len(catalog.get_many(tenant, [f"img{n:04d}" for n in range(130)])) == 130
    with pytest.raises(NotFound) as missing:
        catalog.get_many(tenant, ["img0001", "nope", "gone"])
    assert missing.value.extra["missing"] == ["nope", "gone"]


def test_the_first_claim_on_a_sha256_wins(catalog: ImageCatalog, tenant: str) -> None:
    sha = "ab" * 32

    assert catalog.claim_sha256(tenant, sha, "img-a") == "img-a"
    assert catalog.claim_sha256(tenant, sha, "img-b") == "img-a"
    assert catalog.claim_sha256(tenant, sha, "img-a") == "img-a"  # a retry of the first
    assert catalog.claim_sha256(f"other-{tenant}", sha, "img-c") == "img-c"


def test_filters_and_pages_cover_every_match_once(catalog: ImageCatalog, tenant: str) -> None:
    for number in range(30):
        status = ImageStatus.REJECTED if number % 4 == 0 else ImageStatus.INGESTED
        catalog.put_new(_record(tenant, number, status=status))

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        records, cursor = catalog.query(
            tenant, status="ingested", label="rooted", limit=3, cursor=cursor
        )
        pages.append([r.image_id for r in records])
        if cursor is None:
            break

    expected = [f"img{n:04d}" for n in range(30) if n % 3 == 0 and n % 4 != 0]
    assert [image_id for page in pages for image_id in page] == expected
    assert all(len(page) == 3 for page in pages[:-1])


def test_a_time_range_is_inclusive(catalog: ImageCatalog, tenant: str) -> None:
    for number in range(10):
        catalog.put_new(_record(tenant, number))
    start = datetime(2026, 12, 1, 0, 2, tzinfo=UTC)

    records, _ = catalog.query(tenant, since=start, until=start + timedelta(minutes=3))

    assert [r.image_id for r in records] == ["img0002", "img0003", "img0004", "img0005"]


def test_iter_all_reads_past_one_page(catalog: ImageCatalog, tenant: str) -> None:
    for number in range(520):
        catalog.put_new(_record(tenant, number, label=None))

    assert sum(1 for _ in catalog.iter_all(tenant, machine_id="machine-1")) == 520


def test_a_foreign_cursor_is_refused(catalog: ImageCatalog, tenant: str) -> None:
    with pytest.raises(InvalidInput):
        catalog.query(tenant, cursor="not a cursor")


def test_a_cursor_of_another_list_is_refused(catalog: ImageCatalog, tenant: str) -> None:
    events_cursor = encode_cursor({"pk": "T#x", "sk": "2026-12-01T00:00:00#e1"})

    with pytest.raises(InvalidInput):
        catalog.query(tenant, cursor=events_cursor)
