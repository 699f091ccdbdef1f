"""The models bucket as the registry sees it: model files, their cards and external data."""

from __future__ import annotations

import posixpath
import tempfile
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from stek.registry.inference import new_session, verify_sha256
from stek.registry.records import ModelVersion

# A deleted bucket cannot come back through retries either.
_MISSING = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchVersion", "NoSuchBucket"})


class ObjectMissing(Exception):
    """The object is not (or no longer) in the bucket."""


class ModelObjects:
    """Reads from one bucket with an injectable S3 client."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    def size(self, key: str, version_id: str | None = None) -> int:
        try:
            answer = self._s3.head_object(Bucket=self.bucket, Key=key, **_version(version_id))
        except ClientError as error:
            raise _missing_or(error, key) from error
        return int(answer["ContentLength"])

    def read(self, key: str, version_id: str | None = None) -> bytes:
        try:
            answer = self._s3.get_object(Bucket=self.bucket, Key=key, **_version(version_id))
        except ClientError as error:
            raise _missing_or(error, key) from error
        content: bytes = answer["Body"].read()
        return content

    def presign(self, key: str, version_id: str | None, expiry_s: int) -> str:
        params = {"Bucket": self.bucket, "Key": key, **_version(version_id)}
        url: str = self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expiry_s)
        return url


def load_session(s3: Any, version: ModelVersion) -> Any:
    """An onnxruntime session for a registered version, its bytes checked against its sha256.

    A model with external data is laid out in a temporary folder as it was in the bucket,
    since onnxruntime resolves external data relative to the model file.
    """
    objects = ModelObjects(s3, version.bucket)
    content = objects.read(version.key, version.object_version_id)
    verify_sha256(content, version)
    if not version.external_data:
        return new_session(content)
    folder = posixpath.dirname(version.key)
    with tempfile.TemporaryDirectory(prefix="stek-session-") as temporary:
        root = Path(temporary)
        (root / "model.onnx").write_bytes(content)
        for location in version.external_data:
            path = root / location
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(objects.read(posixpath.join(folder, location)))
        return new_session(str(root / "model.onnx"))


def _version(version_id: str | None) -> dict[str, str]:
    return {"VersionId": version_id} if version_id else {}


def _missing_or(error: ClientError, key: str) -> Exception:
    if error.response["Error"]["Code"] in _MISSING:
        return ObjectMissing(key)
    return error
