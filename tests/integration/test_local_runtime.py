"""`stek up` end to end: emulator, provisioning, bucket notifications, pollers and the HTTP API."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stek import aws
from stek.client import ApiError, StekClient
from stek.local.runtime import LocalRuntime, RuntimeOptions
from stek.services import services

EVENTS = Path(__file__).resolve().parents[2] / "events"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    options = RuntimeOptions(
        emulator_port=_free_port(),
        api_port=_free_port(),
        start_runner=False,
        retry_delay_s=0,
        poll_wait_s=0,
        stack_name="stekrt",
        state_dir=tmp_path_factory.mktemp("state"),
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("AWS_ENDPOINT_URL", raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", "test")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "test")
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        local = LocalRuntime(options)
        local.start()
        yield local
        local.stop()


@pytest.fixture(autouse=True)
def _isolated_environment() -> None:
    """The module-wide runtime owns the environment here (overrides the conftest fixture)."""


def _wait_for(probe: Callable[[], Any], timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def _client(runtime: LocalRuntime, role: str = "operator") -> StekClient:
    assert runtime.info
    return StekClient(runtime.info.api_url, runtime.info.api_keys[role])


def test_health_and_docs_are_served(runtime: LocalRuntime) -> None:
    client = StekClient(runtime.info.api_url if runtime.info else "", None)

    health = client.get("/v1/health")
    spec = client.get("/openapi.json")
    docs = client.get("/docs")

    assert health["status"] == "ok"
    assert "/v1/events" in spec["paths"]
    assert b"swagger-ui" in docs
    assert b"https://" not in docs.split(b"<script>")[0]  # no assets fetched from the internet


def test_a_put_object_reaches_ingest_with_its_decoded_key(runtime: LocalRuntime) -> None:
    raw = services().settings.raw_bucket
    aws.client("s3").put_object(
        Bucket=raw, Key="local/machine-01/tray 3/a+b.jpg", Body=b"not really a jpeg"
    )

    def arrived() -> list[Any]:
        events = _client(runtime).get("/v1/events", subject="local/machine-01/tray 3/a+b.jpg")[
            "events"
        ]
        return events or _client(runtime).get("/v1/events")["events"]

    events = _wait_for(arrived)
    keys = {e.get("data", {}).get("key") for e in events}
    assert "local/machine-01/tray 3/a+b.jpg" in keys


def test_a_minio_webhook_takes_the_same_path(runtime: LocalRuntime) -> None:
    event = json.loads((EVENTS / "ingest_http_minio_webhook.json").read_text())
    payload = json.loads(event["body"])
    payload["Records"][0]["s3"]["bucket"]["name"] = services().settings.raw_bucket
    payload["Records"][0]["s3"]["object"]["key"] = "local%2Fmachine-02%2Fminio+shot.jpg"
    assert runtime.info
    request = urllib.request.Request(
        f"{runtime.info.api_url}/v1/bucket-events",
        data=json.dumps(payload).encode(),
        headers={"Authorization": f"Bearer {runtime.info.webhook_token}"},
        method="POST",
    )
    with urllib.request.urlopen(request) as answer:
        assert json.loads(answer.read()) == {"accepted": 1}

    def arrived() -> bool:
        events = _client(runtime).get("/v1/events", limit=1000)["events"]
        return any(
            e.get("data", {}).get("key") == "local/machine-02/minio shot.jpg" for e in events
        )

    assert _wait_for(arrived)


def test_requests_without_a_key_or_to_unknown_routes_get_problems(runtime: LocalRuntime) -> None:
    anonymous = StekClient(runtime.info.api_url if runtime.info else "", None)

    with pytest.raises(ApiError) as missing_key:
        anonymous.get("/v1/events")
    with pytest.raises(ApiError) as unknown:
        anonymous.get("/v1/no-such-thing")
    with pytest.raises(ApiError) as bad_body:
        _client(runtime).request("POST", "/v1/bucket-events", raw=b"{not json")

    assert missing_key.value.status == 401
    assert unknown.value.status == 404
    assert unknown.value.problem["title"] == "Not found"
    assert bad_body.value.status in (400, 401, 422)
