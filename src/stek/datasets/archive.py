"""Where an import's files come from: an uploaded zip or a prefix in a bucket.

Paths are checked before anything is read: an entry whose path is absolute, has a drive
letter, climbs out with `..`, or is a symbolic link is refused, as is a zip that would
unpack to more than the import limit (zip bombs). A refused import writes nothing.
"""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import PurePosixPath
from typing import Any

from stek.errors import InvalidInput, PayloadTooLarge

_MAX_ENTRIES = 100_000


def safe_relative_path(raw: str, where: str) -> str:
    """`raw` as a relative POSIX path inside its archive or prefix; InvalidInput otherwise."""
    path = raw.replace("\\", "/")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":") or "\x00" in path:
        raise InvalidInput(
            f"{where}: path {raw!r} is absolute; only relative paths are accepted", path=raw
        )
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidInput(f"{where}: path {raw!r} escapes the import with '..'", path=raw)
    if not parts:
        raise InvalidInput(f"{where}: an entry has an empty path", path=raw)
    return "/".join(parts)


class ZipTree:
    """The files of a zip archive held in memory."""

    def __init__(self, body: bytes, max_bytes: int) -> None:
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(body))
        except zipfile.BadZipFile as error:
            raise InvalidInput(f"the archive is not a zip file: {error}") from error
        self._members = self._checked_members(max_bytes)

    def _checked_members(self, max_bytes: int) -> dict[str, zipfile.ZipInfo]:
        members: dict[str, zipfile.ZipInfo] = {}
        infos = self._zip.infolist()
        if len(infos) > _MAX_ENTRIES:
            raise PayloadTooLarge(
                f"the archive has {len(infos)} entries; at most {_MAX_ENTRIES} are accepted"
            )
        total = 0
        for info in infos:
            path = safe_relative_path(info.filename, "archive")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise InvalidInput(
                    f"archive: {info.filename!r} is a symbolic link", path=info.filename
                )
            if info.is_dir():
                continue
            total += info.file_size
            members[path] = info
        if total > max_bytes:
            raise PayloadTooLarge(f"the archive unpacks to {total} bytes; the limit is {max_bytes}")
        return members

    def paths(self) -> list[str]:
        return sorted(self._members)

    def read(self, path: str) -> bytes:
        info = self._members[path]
        with self._zip.open(info) as member:
            # file_size comes from the archive itself; read no more than it promised.
            body = member.read(info.file_size + 1)
        if len(body) > info.file_size:
            raise InvalidInput(f"archive: {path!r} unpacks to more than its stated size", path=path)
        return body


class PrefixTree:
    """The objects under a prefix of a bucket, by their path below the prefix."""

    def __init__(self, s3: Any, bucket: str, prefix: str, max_bytes: int) -> None:
        self._s3, self._bucket = s3, bucket
        self._prefix = prefix if prefix.endswith("/") else prefix + "/"
        self._keys: dict[str, str] = {}
        total = 0
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=self._prefix
        ):
            for found in page.get("Contents", []):
                relative = safe_relative_path(
                    found["Key"][len(self._prefix) :], f"s3://{bucket}/{self._prefix}"
                )
                self._keys[relative] = found["Key"]
                total += int(found["Size"])
        if total > max_bytes:
            raise PayloadTooLarge(f"the prefix holds {total} bytes; the limit is {max_bytes}")
        if not self._keys:
            raise InvalidInput(f"s3://{bucket}/{self._prefix} holds no objects")

    def paths(self) -> list[str]:
        return sorted(self._keys)

    def read(self, path: str) -> bytes:
        body: bytes = self._s3.get_object(Bucket=self._bucket, Key=self._keys[path])["Body"].read()
        return body


def check_prefix(prefix: str, tenant: str) -> str:
    """A prefix of the caller's own tenant, with no '..' or absolute parts."""
    relative = safe_relative_path(prefix, "prefix")
    if PurePosixPath(relative).parts[0] != tenant:
        raise InvalidInput(f"prefix must start with your tenant, '{tenant}/'", path=prefix)
    return relative
