"""A small HTTP client for the stek API, used by the CLI and the demo."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

STATE_FILE = Path(".stek") / "local.json"


class ApiError(Exception):
    """A problem response from the API."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', problem)}")
        self.status = status
        self.problem = problem


def local_state() -> dict[str, Any]:
    """What the last `stek up` in this folder wrote: API URL, endpoint, keys."""
    if STATE_FILE.is_file():
        return dict(json.loads(STATE_FILE.read_text()))
    return {}


class StekClient:
    def __init__(self, api_url: str, api_key: str | None, timeout_s: float = 60) -> None:
        self.api_url = api_url.rstrip("/")
        self.api_key = api_key
        self.timeout_s = timeout_s

    @classmethod
    def from_environment(cls, role: str = "scientist") -> StekClient:
        """STEK_API_URL / STEK_API_KEY, else what `stek up` wrote for `role`."""
        state = local_state()
        url = os.environ.get("STEK_API_URL") or state.get("api_url") or "http://127.0.0.1:3000"
        key = os.environ.get("STEK_API_KEY") or state.get("api_keys", {}).get(role)
        return cls(url, key)

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Any:
        url = self.api_url + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - our API
        if self.api_key:
            request.add_header("Authorization", f"Bearer {self.api_key}")
        if body is not None:
            request.add_header("Content-Type", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310
                payload = answer.read()
                content_type = answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                problem = json.loads(payload)
            except ValueError:
                problem = {"detail": payload.decode(errors="replace")}
            raise ApiError(error.code, problem) from None
        if "json" in content_type:
            return json.loads(payload) if payload else None
        return payload

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query or None)

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self.request("POST", path, body=body, **kwargs)

    def put(self, path: str, body: Any = None) -> Any:
        return self.request("PUT", path, body=body)
