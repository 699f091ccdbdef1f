"""The demo's steps, in the order a day on the line has them."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stek import aws
from stek.client import ApiError, StekClient
from stek.demo import report
from stek.demo.machines import post_presigned, put_to_bucket
from stek.demo.scenario import Day, Scenario, plan_day
from stek.local.runtime import LocalRuntime, RuntimeOptions
from stek.services import services

TENANT = "greenhouse-a"
CLASSIFICATION_MODEL = "cutting-viability"
DETECTION_MODEL = "tray-cuttings"
TERMINAL_JOB_STATES = {"SUCCEEDED", "FAILED", "CANCELLED"}


@dataclass
class Outcome:
    """What the day produced; the summary prints it."""

    output: Path
    uploaded: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    planted_label_faults: dict[str, int] = field(default_factory=dict)
    versions: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    validations: dict[str, dict[str, Any]] = field(default_factory=dict)
    promotion: str = ""
    prediction: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            all(job.get("status") == "SUCCEEDED" for job in self.jobs.values())
            and len(self.models) == 2
        )


def run_demo(
    *, images: int = 240, output: Path = Path("stek-demo-output"), quick: bool = False
) -> int:
    """Play the day, print what happened; exit status 0 when both models made it."""
    console = Console()
    outcome = play_day(Scenario.quick() if quick else Scenario.full(images), output, console)
    report.print_summary(console, outcome)
    return 0 if outcome.ok else 1


def play_day(scenario: Scenario, output: Path, console: Console) -> Outcome:
    """The whole day on a fresh local stack, which is stopped at the end."""
    output.mkdir(parents=True, exist_ok=True)
    options = RuntimeOptions(
        api_port=_free_port(3000),
        emulator_port=_free_port(4566),
        tenant=TENANT,
        retry_delay_s=2,
        state_dir=output / ".stek",
        runner_log=output / "runner.log",
    )
    started = time.monotonic()
    columns = (
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with LocalRuntime(options) as runtime, Progress(*columns, console=console) as progress:
        assert runtime.info is not None
        session = DemoSession(
            runtime.info.api_url, runtime.info.api_keys, progress, scenario, output
        )
        outcome = session.run()
    outcome.seconds = time.monotonic() - started
    return outcome


class DemoSession:
    """One run of the day against a running stack."""

    def __init__(
        self,
        api_url: str,
        api_keys: dict[str, str],
        progress: Progress,
        scenario: Scenario,
        output: Path,
    ) -> None:
        self.machine = StekClient(api_url, api_keys["machine"])
        self.scientist = StekClient(api_url, api_keys["scientist"], timeout_s=300)
        self.operator = StekClient(api_url, api_keys["operator"])
        self.progress = progress
        self.scenario = scenario
        self.outcome = Outcome(output=output)

    def run(self) -> Outcome:
        day = plan_day(self.scenario)
        self.outcome.planted_label_faults = day.planted_label_faults
        self.upload_day(day)
        self.wait_for_ingest()
        classification = self.classification_version()
        detection = self.detection_version(day)
        self.train(classification, detection)
        self.wait_for_models()
        self.validate(classification, detection)
        self.promote(detection)
        self.predict(day)
        self.save_pictures()
        self.save_event_log()
        return self.outcome

    # ----------------------------------------------------------------- the machines
    def upload_day(self, day: Day) -> None:
        raw_bucket = services().settings.raw_bucket
        s3 = aws.client("s3")
        task = self.progress.add_task("machines upload", total=len(day.uploads))
        for upload in day.uploads:
            try:
                if upload.machine_id == "machine-02":
                    post_presigned(self.machine, upload)
                else:
                    put_to_bucket(s3, raw_bucket, TENANT, upload)
                self.outcome.uploaded += 1
            except ApiError as refusal:
                self.outcome.refused.append(
                    (upload.filename, str(refusal.problem.get("detail", refusal)))
                )
            self.progress.advance(task)

    def wait_for_ingest(self) -> None:
        task = self.progress.add_task("ingest", total=self.outcome.uploaded)

        def images() -> list[dict[str, Any]] | None:
            records = _all_pages(self.scientist, "/v1/images", "images", limit=1000)
            self.progress.update(task, completed=len(records))
            return records if len(records) >= self.outcome.uploaded else None

        records = _wait(images, timeout_s=180, what="ingest")
        self.outcome.statuses = Counter(record["status"] for record in records)
        self.outcome.reasons = Counter(
            record["reason"] for record in records if record.get("reason")
        )

    # ------------------------------------------------------------------- datasets
    def classification_version(self) -> dict[str, Any]:
        dataset = self.scientist.post(
            "/v1/datasets",
            {
                "name": "cutting viability",
                "task": "classification",
                "classes": ["viable", "non_viable"],
            },
        )
        self.scientist.post(
            f"/v1/datasets/{dataset['dataset_id']}/images", {"query": {"machine_id": "machine-01"}}
        )
        return self._freeze("classification", dataset["dataset_id"])

    def detection_version(self, day: Day) -> dict[str, Any]:
        dataset = self.scientist.post(
            "/v1/datasets",
            {"name": "tray cuttings", "task": "detection", "classes": ["viable", "non_viable"]},
        )
        self.scientist.post(
            f"/v1/datasets/{dataset['dataset_id']}/imports",
            {"format": "coco", "archive_base64": base64.b64encode(day.coco_archive).decode()},
        )
        return self._freeze("detection", dataset["dataset_id"])

    def _freeze(self, task_name: str, dataset_id: str) -> dict[str, Any]:
        requested = self.scientist.post(f"/v1/datasets/{dataset_id}/versions", {})
        version = requested["version"]
        bar = self.progress.add_task(f"clean + freeze {task_name} dataset", total=100)

        def ready() -> dict[str, Any] | None:
            detail = self.scientist.get(f"/v1/datasets/{dataset_id}/versions/{version}")
            summary = detail["summary"]
            self.progress.update(bar, completed=int(100 * summary.get("progress", 0)))
            if summary["status"] == "FAILED":
                raise RuntimeError(
                    f"version {version} of {dataset_id} failed: {summary.get('error')}"
                )
            return detail if summary["status"] == "READY" else None

        detail = _wait(ready, timeout_s=180, what=f"{task_name} dataset version")
        self.progress.update(bar, completed=100)
        self.outcome.versions[task_name] = detail
        return detail

    # ------------------------------------------------------------------- training
    def train(self, classification: dict[str, Any], detection: dict[str, Any]) -> None:
        requests = {
            "classification": self._training_request(
                classification,
                CLASSIFICATION_MODEL,
                "mobilenet_v3_small",
                self.scenario.classification_epochs,
                96,
            ),
            "detection": self._training_request(
                detection,
                DETECTION_MODEL,
                "ssdlite320_mobilenet_v3_large",
                self.scenario.detection_epochs,
                128,
            ),
        }
        jobs = {
            name: self.scientist.post("/v1/training-jobs", body) for name, body in requests.items()
        }
        bars = {
            name: self.progress.add_task(f"train {name}", total=body["hyperparameters"]["epochs"])
            for name, body in requests.items()
        }

        def finished() -> dict[str, dict[str, Any]] | None:
            current = {
                name: self.scientist.get(f"/v1/training-jobs/{job['job_id']}")
                for name, job in jobs.items()
            }
            for name, job in current.items():
                self.progress.update(bars[name], completed=job["epochs_done"])
            done = all(job["status"] in TERMINAL_JOB_STATES for job in current.values())
            return current if done else None

        self.outcome.jobs = _wait(finished, timeout_s=900, what="training", every_s=2)

    def _training_request(
        self,
        version: dict[str, Any],
        model_name: str,
        architecture: str,
        epochs: int,
        image_size: int,
    ) -> dict[str, Any]:
        summary = version["summary"]
        return {
            "dataset_id": summary["dataset_id"],
            "version": summary["version"],
            "task": summary["task"],
            "architecture": architecture,
            "model_name": model_name,
            "seed": self.scenario.seed,
            "hyperparameters": {
                "epochs": epochs,
                "image_size": image_size,
                "batch_size": 16,
                "lr": 3e-3,
            },
        }

    # ------------------------------------------------------------------- registry
    def wait_for_models(self) -> None:
        task = self.progress.add_task("registry", total=2)
        succeeded = [
            name for name, job in self.outcome.jobs.items() if job["status"] == "SUCCEEDED"
        ]
        names = {"classification": CLASSIFICATION_MODEL, "detection": DETECTION_MODEL}

        def registered() -> dict[str, dict[str, Any]] | None:
            models = {}
            for task_name in succeeded:
                try:
                    model = self.scientist.get(f"/v1/models/{names[task_name]}")
                except ApiError:
                    continue
                if model.get("versions"):
                    models[task_name] = model
            self.progress.update(task, completed=len(models))
            return models if len(models) == len(succeeded) else None

        self.outcome.models = _wait(registered, timeout_s=120, what="model registration")

    def validate(self, classification: dict[str, Any], detection: dict[str, Any]) -> None:
        targets = {
            "classification": (CLASSIFICATION_MODEL, classification),
            "detection": (DETECTION_MODEL, detection),
        }
        task = self.progress.add_task("validate on held-out images", total=len(self.outcome.models))
        for task_name in self.outcome.models:
            name, version = targets[task_name]
            summary = version["summary"]
            split = "test" if sum(summary["counts"].get("test", {}).values()) else "val"
            self.outcome.validations[task_name] = self.scientist.post(
                f"/v1/models/{name}/versions/1/validations",
                {
                    "dataset_id": summary["dataset_id"],
                    "version": summary["version"],
                    "split": split,
                },
            )
            self.progress.advance(task)

    def promote(self, detection: dict[str, Any]) -> None:
        if "detection" not in self.outcome.validations:
            return
        summary = detection["summary"]
        minimum = self.scenario.promotion_map_50
        self.scientist.put(
            f"/v1/models/{DETECTION_MODEL}/promotion-rule",
            {
                "metric": "map_50",
                "min": minimum,
                "dataset_id": summary["dataset_id"],
                "dataset_version": summary["version"],
            },
        )
        try:
            self.scientist.put(f"/v1/models/{DETECTION_MODEL}/aliases/production", {"version": 1})
            self.outcome.promotion = f"version 1 is production (rule: map_50 >= {minimum})"
        except ApiError as refusal:
            self.outcome.promotion = f"refused: {refusal.problem.get('detail')}"
        self.outcome.models["detection"] = self.scientist.get(f"/v1/models/{DETECTION_MODEL}")

    def predict(self, day: Day) -> None:
        if "detection" not in self.outcome.models or not day.line_trays:
            return
        tray = day.line_trays[0]
        version = "production" if self.outcome.promotion.startswith("version") else "1"
        answer = self.scientist.request(
            "POST",
            f"/v1/models/{DETECTION_MODEL}/versions/{version}/predictions",
            raw=tray.body,
            headers={"Content-Type": tray.content_type},
            query={"min_score": 0.3},
        )
        self.outcome.prediction = answer
        picture = self.outcome.output / "prediction.png"
        report.draw_detections(tray.body, answer["detections"], picture)
        self.outcome.files.append(picture)

    # -------------------------------------------------------------------- outputs
    def save_pictures(self) -> None:
        output = self.outcome.output
        curves = output / "training-curves.png"
        if self.outcome.jobs:
            report.plot_training_curves(self.outcome.jobs, curves)
            self.outcome.files.append(curves)
        for task_name, answer in self.outcome.validations.items():
            for artifact, url in answer.get("urls", {}).items():
                if artifact.endswith(".png"):
                    target = output / f"{task_name}-{artifact.replace('/', '-')}"
                    with urllib.request.urlopen(url) as download:  # noqa: S310 - the stack's own S3
                        target.write_bytes(download.read())
                    self.outcome.files.append(target)

    def save_event_log(self) -> None:
        events = _all_pages(self.operator, "/v1/events", "events", limit=1000)
        log = self.outcome.output / "events.jsonl"
        log.write_text("".join(json.dumps(event) + "\n" for event in events))
        self.outcome.files.append(log)


def _all_pages(client: StekClient, path: str, items: str, **query: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = client.get(path, **query, cursor=cursor)
        found.extend(page[items])
        cursor = page.get("next_cursor")
        if not cursor:
            return found


def _wait(probe: Callable[[], Any], *, timeout_s: float, what: str, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (result := probe()) is not None:
            return result
        time.sleep(every_s)
    raise TimeoutError(f"{what} did not finish within {timeout_s:.0f} s")


def _free_port(preferred: int) -> int:
    """The usual port when it is free, so a running `stek up` and the demo can coexist."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise OSError("no free port")
