"""`stek up`: the whole stack on one machine.

An embedded moto server stands in for AWS on 127.0.0.1:4566 (LocalStack's port) unless
`AWS_ENDPOINT_URL` points elsewhere; the template's resources are created on it; SQS event
sources are polled like Lambda's event source mappings; the HTTP API is served on
127.0.0.1:3000; the GPU runner runs as a child process when PyTorch is installed.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stek import aws
from stek.auth import Role
from stek.local.functions import Handler, load_handler
from stek.local.gateway import Gateway, GatewayServer
from stek.local.pollers import Mapping, SqsPoller
from stek.local.stack import TEMPLATE, Stack, bring_up
from stek.local.template import Function
from stek.observability import runtime_logger as logger
from stek.services import services

DEFAULT_REGION = "us-east-1"


@dataclass
class RuntimeOptions:
    emulator_port: int = 4566
    api_port: int = 3000
    host: str = "127.0.0.1"
    start_runner: bool = True
    retry_delay_s: int | None = None  # None: the queue's visibility timeout, as on AWS
    poll_wait_s: int = 1
    stack_name: str = "stek"
    tenant: str = "local"
    template: Path = TEMPLATE
    state_dir: Path = field(default_factory=lambda: Path(".stek"))
    runner_log: Path | None = None  # the runner's console output; the terminal when None


@dataclass
class RuntimeInfo:
    api_url: str
    aws_endpoint: str
    webhook_token: str
    api_keys: dict[str, str]
    embedded_emulator: bool


class LocalRuntime:
    """Starts and stops every local part of stek."""

    def __init__(self, options: RuntimeOptions | None = None) -> None:
        self.options = options or RuntimeOptions()
        self._moto: Any = None
        self._pollers: list[SqsPoller] = []
        self._server: GatewayServer | None = None
        self._runner: subprocess.Popen[bytes] | None = None
        self.stack: Stack | None = None
        self.info: RuntimeInfo | None = None

    def start(self) -> RuntimeInfo:
        embedded = self._start_emulator()
        webhook_token = os.environ.get("STEK_WEBHOOK_TOKEN") or secrets.token_urlsafe(24)
        self.stack = bring_up(
            stack_name=self.options.stack_name,
            template=self.options.template,
            parameters={"WebhookToken": webhook_token},
        )
        functions = self._load_functions(self.stack)
        self._start_pollers(self.stack, functions)
        self._server = GatewayServer(
            Gateway.from_functions(functions), self.options.host, self.options.api_port
        )
        self._server.start()
        self.info = RuntimeInfo(
            api_url=self._server.url,
            aws_endpoint=os.environ["AWS_ENDPOINT_URL"],
            webhook_token=webhook_token,
            api_keys=self._create_keys(),
            embedded_emulator=embedded,
        )
        self._write_state(self.info)
        if self.options.start_runner:
            self._start_runner()
        logger.info("runtime started", api=self.info.api_url, aws=self.info.aws_endpoint)
        return self.info

    def stop(self) -> None:
        if self._runner and self._runner.poll() is None:
            self._runner.terminate()
            try:
                self._runner.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._runner.kill()
        for poller in self._pollers:
            poller.stop()
        for poller in self._pollers:
            poller.join(timeout=10)
        if self._server:
            self._server.stop()
        if self._moto:
            self._moto.stop()
        logger.info("runtime stopped")

    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    @property
    def pollers(self) -> list[SqsPoller]:
        return self._pollers

    def _start_emulator(self) -> bool:
        os.environ.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        if os.environ.get("AWS_ENDPOINT_URL"):
            aws.reset_clients()
            return False
        from moto.server import ThreadedMotoServer

        # The emulator's request log would drown the runtime's own; its errors still show.
        logging.getLogger("werkzeug").setLevel(logging.ERROR)

        self._moto = ThreadedMotoServer(
            ip_address=self.options.host, port=self.options.emulator_port, verbose=False
        )
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        os.environ["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
        aws.reset_clients()
        return True

    def _load_functions(self, stack: Stack) -> dict[str, tuple[Function, Handler]]:
        return {
            logical_id: (function, load_handler(function))
            for logical_id, function in stack.model.functions.items()
        }

    def _start_pollers(self, stack: Stack, functions: dict[str, tuple[Function, Handler]]) -> None:
        sqs = aws.client("sqs")
        for function, handler in functions.values():
            for source in function.sqs_sources:
                queue = stack.model.queues[source.queue_logical_id]
                url = stack.queue_urls[queue.logical_id]
                arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
                    "Attributes"
                ]["QueueArn"]
                poller = SqsPoller(
                    Mapping(function, source, queue, url, arn, handler),
                    sqs,
                    services().events,
                    wait_s=self.options.poll_wait_s,
                    retry_delay_s=self.options.retry_delay_s,
                )
                poller.start()
                self._pollers.append(poller)

    def _create_keys(self) -> dict[str, str]:
        keys = services().keys
        return {role.value: keys.create(self.options.tenant, role)[0] for role in Role}

    def _write_state(self, info: RuntimeInfo) -> None:
        # The CLI reads the API URL and keys from here when no STEK_API_KEY is set.
        self.options.state_dir.mkdir(parents=True, exist_ok=True)
        state = self.options.state_dir / "local.json"
        state.write_text(json.dumps(info.__dict__, indent=2))
        state.chmod(0o600)

    def _start_runner(self) -> None:
        if (
            importlib.util.find_spec("torch") is None
            or importlib.util.find_spec("gpu_runner") is None
        ):
            logger.warning(
                "runner not started", reason="PyTorch is not installed (pip install '.[runner]')"
            )
            return
        command = [sys.executable, "-m", "gpu_runner"]
        log = self.options.runner_log.open("ab") if self.options.runner_log else None
        self._runner = subprocess.Popen(
            command, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT if log else None
        )
        logger.info("runner started", pid=self._runner.pid)
