"""The two grading machines of the demo: one PUTs straight into the raw bucket, the other asks
the API for a presigned upload, as machines on a real line do.
"""

from __future__ import annotations

from typing import Any

import urllib3

from stek.client import StekClient
from stek.demo.scenario import Upload

_storage = urllib3.PoolManager()  # one connection pool for every presigned upload


def put_to_bucket(s3: Any, bucket: str, tenant: str, upload: Upload) -> str:
    """S3 PUT under `{tenant}/{machine}/...` with the machine's metadata."""
    key = f"{tenant}/{upload.machine_id}/{upload.tray or 'no-tray'}/{upload.filename}"
    metadata = {"machine-id": upload.machine_id}
    if upload.label:
        metadata["label"] = upload.label
    if upload.tray:
        metadata["tray"] = upload.tray
    s3.put_object(
        Bucket=bucket, Key=key, Body=upload.body, ContentType=upload.content_type, Metadata=metadata
    )
    return key


def post_presigned(machine: StekClient, upload: Upload) -> str:
    """Ask the API for a presigned POST, then send the file to storage with it."""
    ticket = machine.post(
        "/v1/uploads",
        {
            "machine_id": upload.machine_id,
            "filename": upload.filename,
            "content_type": upload.content_type,
            "size": max(len(upload.body), 1),
            "tray": upload.tray,
            "label": upload.label,
        },
    )
    fields: dict[str, Any] = dict(ticket["fields"])
    fields["file"] = (upload.filename, upload.body, upload.content_type)
    answer = _storage.request("POST", ticket["url"], fields=fields)
    if answer.status >= 300:
        raise RuntimeError(
            f"storage refused the presigned upload: {answer.status} {answer.data[:200]!r}"
        )
    return str(ticket["key"])
