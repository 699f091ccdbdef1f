"""The `stek` command line: run the stack locally, invoke functions, manage keys, read events.

stek up                          # embedded emulator + functions + HTTP API + runner
stek invoke ingest --event events/ingest_sqs_aws_put.json
stek keys create --tenant greenhouse-a --role scientist
stek events --type image.rejected --follow
stek api GET /v1/images
stek jobs watch job-1234           # a training job's progress, epoch by epoch
stek demo
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from stek.client import ApiError, StekClient

console = Console()


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    arguments = parser.parse_args(argv)
    if not hasattr(arguments, "command"):
        parser.print_help()
        return 2
    try:
        return int(arguments.command(arguments) or 0)
    except ApiError as error:
        console.print(f"[red]{error}[/red]")
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stek", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(title="commands")

    up = commands.add_parser("up", help="run the whole stack locally")
    up.add_argument("--api-port", type=int, default=3000)
    up.add_argument("--emulator-port", type=int, default=4566)
    up.add_argument("--host", default="127.0.0.1", help="address to listen on")
    up.add_argument("--no-runner", action="store_true", help="do not start the GPU runner")
    up.add_argument("--tenant", default="local", help="tenant of the printed API keys")
    up.set_defaults(command=cmd_up)

    invoke = commands.add_parser("invoke", help="run one function handler once on a sample event")
    invoke.add_argument("function", help="ingest, clean, train_dispatch or registry")
    invoke.add_argument("--event", required=True, type=Path, help="a JSON file, e.g. from events/")
    invoke.add_argument(
        "--tenant", default="greenhouse-a", help="tenant of the key put into {{api_key}}"
    )
    invoke.add_argument("--role", default="scientist", help="role of the key put into {{api_key}}")
    invoke.set_defaults(command=cmd_invoke)

    keys = commands.add_parser("keys", help="API keys")
    key_commands = keys.add_subparsers(title="keys commands")
    create = key_commands.add_parser("create", help="create an API key for a tenant and role")
    create.add_argument("--tenant", required=True)
    create.add_argument("--role", required=True, choices=["machine", "scientist", "operator"])
    create.set_defaults(command=cmd_keys_create)

    events = commands.add_parser("events", help="read the event log")
    events.add_argument("--type", dest="event_type")
    events.add_argument("--subject")
    events.add_argument("--since", type=_utc_time)
    events.add_argument("--until", type=_utc_time)
    events.add_argument("--limit", type=int, default=100)
    events.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    events.add_argument("--json", action="store_true", help="one JSON document per line")
    events.add_argument("--file", type=Path, help="read a saved log (JSON Lines), e.g. the demo's")
    events.set_defaults(command=cmd_events)

    api = commands.add_parser("api", help="call any API route, e.g. stek api GET /v1/images")
    api.add_argument("method", type=str.upper)
    api.add_argument("path")
    api.add_argument("--data", help="JSON body")
    api.add_argument("--role", default="scientist", help="which local key to use")
    api.set_defaults(command=cmd_api)

    jobs = commands.add_parser("jobs", help="training jobs")
    job_commands = jobs.add_subparsers(title="jobs commands")
    watch = job_commands.add_parser("watch", help="follow a training job until it ends")
    watch.add_argument("job_id")
    watch.add_argument("--every", type=float, default=2.0, help="seconds between looks")
    watch.set_defaults(command=cmd_jobs_watch)

    demo = commands.add_parser("demo", help="a whole day on the line, end to end")
    demo.add_argument("--images", type=int, default=240, help="images per task")
    demo.add_argument("--output", type=Path, default=Path("stek-demo-output"))
    demo.add_argument("--quick", action="store_true", help="a shorter scenario (used by the tests)")
    demo.set_defaults(command=cmd_demo)
    return parser


def _utc_time(text: str) -> datetime:
    """An ISO time from the command line; one without a zone is taken as UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_up(arguments: argparse.Namespace) -> int:
    from stek.local.runtime import LocalRuntime, RuntimeOptions

    options = RuntimeOptions(
        api_port=arguments.api_port,
        emulator_port=arguments.emulator_port,
        host=arguments.host,
        start_runner=not arguments.no_runner,
        tenant=arguments.tenant,
    )
    runtime = LocalRuntime(options)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    info = runtime.start()
    _print_endpoints(info)
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    console.print("stopping ...")
    runtime.stop()
    return 0


def _print_endpoints(info: Any) -> None:
    table = Table(title="stek is up", show_header=False)
    table.add_row("API", info.api_url)
    table.add_row("Swagger UI", f"{info.api_url}/docs")
    table.add_row("OpenAPI", f"{info.api_url}/openapi.json")
    emulator = "embedded moto" if info.embedded_emulator else "external"
    table.add_row("AWS endpoint", f"{info.aws_endpoint} ({emulator})")
    for role, key in info.api_keys.items():
        table.add_row(f"API key ({role})", key)
    table.add_row("state", str(Path(".stek/local.json").resolve()))
    console.print(table)
    console.print("Ctrl-C stops everything.")


def cmd_invoke(arguments: argparse.Namespace) -> int:
    from stek.local.invoke import invoke_once

    result = invoke_once(
        arguments.function, arguments.event, tenant=arguments.tenant, role=arguments.role
    )
    console.print_json(json.dumps(result, default=str))
    return 0


def cmd_keys_create(arguments: argparse.Namespace) -> int:
    from stek.local.invoke import attach_to_local_stack
    from stek.services import services

    with attach_to_local_stack():
        secret, principal = services().keys.create(arguments.tenant, arguments.role)
    console.print(f"tenant {principal.tenant}, role {principal.role}, key id {principal.key_id}")
    console.print(secret)
    return 0


def cmd_events(arguments: argparse.Namespace) -> int:
    if arguments.file:
        return _events_from_file(arguments)
    client = StekClient.from_environment(role="operator")
    query = {
        "type": arguments.event_type,
        "subject": arguments.subject,
        "since": arguments.since.isoformat() if arguments.since else None,
        "until": arguments.until.isoformat() if arguments.until else None,
        "limit": arguments.limit,
    }
    seen: set[str] = set()
    while True:
        cursor = None
        while True:
            page = client.get("/v1/events", **query, cursor=cursor)
            for event in page["events"]:
                if event["id"] not in seen:
                    seen.add(event["id"])
                    _print_event(event, as_json=arguments.json)
            cursor = page.get("next_cursor")
            if not cursor:
                break
        if not arguments.follow:
            return 0
        time.sleep(1)


def _events_from_file(arguments: argparse.Namespace) -> int:
    for line in arguments.file.read_text().splitlines():
        event = json.loads(line)
        stamp = datetime.fromisoformat(event["time"])
        if arguments.event_type and event["type"] != arguments.event_type:
            continue
        if arguments.subject and event["subject"] != arguments.subject:
            continue
        if (arguments.since and stamp < arguments.since) or (
            arguments.until and stamp > arguments.until
        ):
            continue
        _print_event(event, as_json=arguments.json)
    return 0


def _print_event(event: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(event), flush=True)
        return
    stamp = datetime.fromisoformat(event["time"]).astimezone(UTC).strftime("%H:%M:%S.%f")[:-3]
    data = " ".join(f"{k}={v}" for k, v in event["data"].items())
    console.print(
        f"{stamp} [bold]{event['type']:<26}[/bold] {event['subject']}  [dim]{data}[/dim]",
        soft_wrap=True,
    )


def cmd_api(arguments: argparse.Namespace) -> int:
    client = StekClient.from_environment(role=arguments.role)
    body = json.loads(arguments.data) if arguments.data else None
    answer = client.request(arguments.method, arguments.path, body=body)
    if isinstance(answer, bytes):
        sys.stdout.buffer.write(answer)
    else:
        console.print_json(json.dumps(answer, default=str))
    return 0


def cmd_jobs_watch(arguments: argparse.Namespace) -> int:
    client = StekClient.from_environment(role="scientist")
    job = watch_job(client, arguments.job_id, every_s=arguments.every)
    error = f": {job['error']}" if job.get("error") else ""
    console.print(f"{job['job_id']} {job['status']}{error}")
    return 0 if job["status"] == "SUCCEEDED" else 1


def watch_job(client: StekClient, job_id: str, *, every_s: float = 2.0) -> dict[str, Any]:
    """A progress bar over the job's epochs, with its latest metrics, until it ends."""
    path = f"/v1/training-jobs/{job_id}"
    job = client.get(path)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[metrics]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        epochs = job["request"]["hyperparameters"]["epochs"]
        bar = progress.add_task(job_id, total=epochs, metrics="")
        while True:
            latest = job["epochs"][-1] if job.get("epochs") else {}
            shown = ", ".join(
                f"{name} {value:.3f}"
                for name, value in latest.get("metrics", {}).items()
                if isinstance(value, int | float)
            )
            progress.update(
                bar,
                completed=job["epochs_done"],
                description=f"{job_id} {job['status']}",
                metrics=shown,
            )
            if job["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return dict(job)
            time.sleep(every_s)
            job = client.get(path)


def cmd_demo(arguments: argparse.Namespace) -> int:
    from stek.demo import run_demo

    return run_demo(images=arguments.images, output=arguments.output, quick=arguments.quick)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
