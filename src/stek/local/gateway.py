"""The HTTP API on 127.0.0.1:3000: each request becomes an API Gateway HTTP API (payload 2.0)
event for the function template.yaml routes it to, and the function's answer goes back.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from stek.local.functions import Handler
from stek.local.lambda_context import LocalContext
from stek.local.template import ACCOUNT_ID, Function, HttpRoute
from stek.observability import runtime_logger as logger

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
_TEXT_TYPES = (
    "application/json",
    "application/problem+json",
    "text/",
    "application/xml",
    "application/x-www-form-urlencoded",
)


@dataclass
class RouteTarget:
    route: HttpRoute
    function: Function
    handler: Handler
    pattern: re.Pattern[str]


def compile_route(path: str) -> re.Pattern[str]:
    """`/v1/images/{image_id}` -> a regex with a named group per path parameter."""
    parts = re.split(r"(\{[^}]+\})", path)
    regex = "".join(
        f"(?P<{part[1:-1].rstrip('+')}>.+)"
        if part.endswith("+}")
        else f"(?P<{part[1:-1]}>[^/]+)"
        if part.startswith("{")
        else re.escape(part)
        for part in parts
    )
    return re.compile(f"^{regex}$")


class Gateway:
    """Routes requests to handlers; shared by the threaded server and the tests."""

    def __init__(self, targets: list[RouteTarget]) -> None:
        # Literal routes win over parameterised ones, as in API Gateway.
        self._targets = sorted(targets, key=lambda t: t.route.path.count("{"))

    @classmethod
    def from_functions(cls, functions: dict[str, tuple[Function, Handler]]) -> Gateway:
        targets = [
            RouteTarget(route, function, handler, compile_route(route.path))
            for function, handler in functions.values()
            for route in function.routes
        ]
        return cls(targets)

    def match(self, method: str, path: str) -> tuple[RouteTarget, dict[str, str]] | None:
        for target in self._targets:
            if target.route.method not in (method, "ANY"):
                continue
            if found := target.pattern.match(path):
                return target, found.groupdict()
        return None

    def invoke(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(raw_path)
        matched = self.match(method, url.path)
        if matched is None:
            return _problem(404, "Not found", f"no route for {method} {url.path}; see /docs")
        target, path_parameters = matched
        event = build_event(
            target.route, method, url.path, url.query, headers, body, path_parameters
        )
        function = target.function
        context = LocalContext.for_function(function.logical_id, function.timeout, function.memory)
        try:
            answer = target.handler(event, context)
        except Exception:
            logger.exception(
                "handler failed", function=function.logical_id, route=target.route.route_key
            )
            return _problem(500, "Internal error", "the function failed; its log says why")
        return _response(answer)


def build_event(
    route: HttpRoute,
    method: str,
    path: str,
    query: str,
    headers: dict[str, str],
    body: bytes,
    path_parameters: dict[str, str],
) -> dict[str, Any]:
    """An API Gateway HTTP API payload 2.0 event."""
    lowered = {name.lower(): value for name, value in headers.items()}
    query_parameters: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        # Repeated parameters arrive comma-joined in payload 2.0.
        query_parameters[name] = (
            f"{query_parameters[name]},{value}" if name in query_parameters else value
        )
    content_type = lowered.get("content-type", "")
    is_text = not body or any(content_type.startswith(kind) for kind in _TEXT_TYPES)
    now = datetime.now(UTC)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": path,
        "rawQueryString": query,
        "cookies": [c.strip() for c in lowered.get("cookie", "").split(";") if c.strip()] or None,
        "headers": lowered,
        "queryStringParameters": query_parameters or None,
        "pathParameters": path_parameters or None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": "local",
            "domainName": lowered.get("host", "127.0.0.1"),
            "domainPrefix": "local",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route.route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": not is_text,
    }
    if body:
        event["body"] = (
            body.decode("utf-8", errors="replace") if is_text else base64.b64encode(body).decode()
        )
    return {name: value for name, value in event.items() if value is not None}


def _response(answer: Any) -> tuple[int, dict[str, str], bytes]:
    if not isinstance(answer, dict) or "statusCode" not in answer:
        # HTTP API treats a bare return value as a JSON 200.
        return 200, {"Content-Type": "application/json"}, json.dumps(answer).encode()
    headers = {name: str(value) for name, value in (answer.get("headers") or {}).items()}
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(str(v) for v in values)
    raw = answer.get("body") or ""
    body = base64.b64decode(raw) if answer.get("isBase64Encoded") else str(raw).encode()
    return int(answer["statusCode"]), headers, body


def _problem(status: int, title: str, detail: str) -> tuple[int, dict[str, str], bytes]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return status, {"Content-Type": "application/problem+json"}, json.dumps(body).encode()


class _RequestHandler(BaseHTTPRequestHandler):
    gateway: Gateway
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            status, headers, body = _problem(
                413, "Payload too large", "request bodies are limited to 10 MB"
            )
            self.close_connection = True
        else:
            payload = self.rfile.read(length) if length else b""
            status, headers, body = self.gateway.invoke(
                self.command, self.path, dict(self.headers.items()), payload
            )
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("http request", line=format % args)


class GatewayServer:
    """The threaded HTTP server around a Gateway."""

    def __init__(self, gateway: Gateway, host: str = "127.0.0.1", port: int = 3000) -> None:
        handler = type("BoundHandler", (_RequestHandler,), {"gateway": gateway})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gateway", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
