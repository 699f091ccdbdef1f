"""A short day on the line through the local runtime: uploads to a promoted model.

This is `stek demo --quick`: the same scenario as `make demo`, smaller, on a fresh stack with
the real runner process, emulator, queues and HTTP API.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from rich.console import Console

from stek.demo.run import Outcome, play_day
from stek.demo.scenario import Scenario

pytestmark = [pytest.mark.e2e, pytest.mark.torch]

REJECTED_BY_DESIGN = {
    "empty",
    "not_an_image",
    "truncated",
    "trailing_data",
    "too_small",
    "oversized_metadata",
}


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    pytest.importorskip("torch")
    output = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
            patch.delenv(name, raising=False)
        return play_day(Scenario.quick(), output, Console(quiet=True))


def test_every_upload_ends_ingested_duplicate_or_rejected_with_a_reason(day: Outcome) -> None:
    assert sum(day.statuses.values()) == day.uploaded
    assert day.statuses["duplicate"] >= Scenario.quick().exact_duplicates
    assert day.statuses["rejected"] == sum(day.reasons.values())
    assert set(day.reasons) <= REJECTED_BY_DESIGN | {"unsupported_format", "corrupt"}
    assert {"empty", "not_an_image", "truncated"} <= set(day.reasons) | {r for _, r in day.refused}


def _found(version: dict[str, Any], rule: str) -> int:
    [report] = [r for r in version["report"]["rules"] if r["rule"] == rule]
    return len(report["found"])


def test_both_versions_are_frozen_with_the_planted_faults_found(day: Outcome) -> None:
    assert {v["summary"]["status"] for v in day.versions.values()} == {"READY"}
    assert day.planted_label_faults
    for rule, planted in day.planted_label_faults.items():
        assert _found(day.versions["detection"], rule) >= planted, rule
    assert _found(day.versions["classification"], "exact_duplicates") == day.statuses["duplicate"]


def test_both_jobs_trained_and_registered_with_lineage(day: Outcome) -> None:
    assert {job["status"] for job in day.jobs.values()} == {"SUCCEEDED"}, day.jobs
    assert set(day.models) == {"classification", "detection"}
    for task_name, model in day.models.items():
        [version] = model["versions"]
        assert version["lineage"]["training_job_id"] == day.jobs[task_name]["job_id"]


def test_the_detection_model_was_validated_promoted_and_predicts(day: Outcome) -> None:
    validation = day.validations["detection"]["validation"]
    assert validation["images"] > 0
    assert 0.0 <= validation["metrics"]["map_50"] <= 1.0
    assert day.promotion.startswith("version 1 is production")
    assert "detections" in day.prediction


def test_pictures_and_the_event_log_are_written(day: Outcome) -> None:
    names = {path.name for path in day.files}
    assert {"training-curves.png", "prediction.png", "events.jsonl"} <= names
    for path in day.files:
        assert path.stat().st_size > 0
    events = [json.loads(line) for line in (day.output / "events.jsonl").read_text().splitlines()]
    types = Counter(event["type"] for event in events)
    for expected in (
        "image.ingested",
        "image.duplicate",
        "image.rejected",
        "dataset.created",
        "dataset.version.created",
        "job.queued",
        "job.started",
        "job.progress",
        "job.succeeded",
        "model.registered",
        "model.validated",
        "model.alias.changed",
    ):
        assert types[expected] > 0, expected
