"""Import paths stay inside their archive or prefix; anything else is a clear 422."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from stek.datasets.archive import ZipTree, check_prefix, safe_relative_path
from stek.errors import InvalidInput, PayloadTooLarge


def _zip(entries: dict[str, bytes], symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, body in entries.items():
            archive.writestr(zipfile.ZipInfo(name), body)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../../etc/cron.d/evil", "escapes"),
        ("images/../../outside.jpg", "escapes"),
        ("/etc/passwd", "absolute"),
        ("C:/Windows/evil.dll", "absolute"),
        ("..\\..\\evil.jpg", "escapes"),
    ],
)
def test_zip_slip_and_absolute_paths_are_refused(name: str, message: str) -> None:
    body = _zip({"images/ok.jpg": b"x", name: b"evil"})

    with pytest.raises(InvalidInput, match=message) as refused:
        ZipTree(body, max_bytes=1 << 20)

    assert refused.value.status == 422
    assert refused.value.extra["path"] == name


def test_symbolic_links_are_refused() -> None:
    with pytest.raises(InvalidInput, match="symbolic link"):
        ZipTree(_zip({"a.jpg": b"x"}, symlink="images/link.jpg"), max_bytes=1 << 20)


def test_an_archive_over_the_limit_is_refused_before_reading() -> None:
    with pytest.raises(PayloadTooLarge):
        ZipTree(_zip({"big.bin": b"\0" * 5000}), max_bytes=4096)


def test_a_clean_archive_lists_its_files_normalised() -> None:
    tree = ZipTree(
        _zip({"./images/train/a.jpg": b"a", "labels/train/a.txt": b"0 0.5 0.5 0.1 0.1\n"}), 1 << 20
    )

    assert tree.paths() == ["images/train/a.jpg", "labels/train/a.txt"]
    assert tree.read("images/train/a.jpg") == b"a"


def test_not_a_zip_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match="not a zip"):
        ZipTree(b"PK but not really", 1 << 20)


def test_a_prefix_must_belong_to_the_callers_tenant() -> None:
    assert check_prefix("tenant-a/uploads/coco/", "tenant-a") == "tenant-a/uploads/coco"
    with pytest.raises(InvalidInput, match="your tenant"):
        check_prefix("tenant-b/uploads/", "tenant-a")
    with pytest.raises(InvalidInput, match="escapes"):
        check_prefix("tenant-a/../tenant-b/", "tenant-a")


def test_relative_paths_lose_dot_segments() -> None:
    assert safe_relative_path("a/./b//c.jpg", "archive") == "a/b/c.jpg"
