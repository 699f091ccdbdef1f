"""The `stek` command line: argument handling and the saved-log reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stek.cli import main


def _saved_log(path: Path) -> Path:
    events = [
        {
            "id": "1",
            "time": "2026-12-03T06:00:00+00:00",
            "type": "image.ingested",
            "subject": "img-1",
            "data": {},
        },
        {
            "id": "2",
            "time": "2026-12-03T07:00:00+00:00",
            "type": "image.rejected",
            "subject": "img-2",
            "data": {"reason": "truncated"},
        },
    ]
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    return path


def test_events_from_a_saved_log_are_filtered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _saved_log(tmp_path / "events.jsonl")

    assert main(["events", "--file", str(log), "--type", "image.rejected", "--json"]) == 0

    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [e["subject"] for e in printed] == ["img-2"]


def test_events_since_without_a_zone_is_utc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = _saved_log(tmp_path / "events.jsonl")

    assert main(["events", "--file", str(log), "--since", "2026-12-03T06:30:00", "--json"]) == 0

    assert [json.loads(line)["id"] for line in capsys.readouterr().out.splitlines()] == ["2"]


def test_keys_create_needs_a_known_role() -> None:
    with pytest.raises(SystemExit):
        main(["keys", "create", "--tenant", "t", "--role", "admin"])


def test_keys_create_works_without_a_running_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)

    assert main(["keys", "create", "--tenant", "greenhouse-a", "--role", "machine"]) == 0

    assert "stek_" in capsys.readouterr().out


class _JobApi:
    """Answers GET /v1/training-jobs/{id} with a job that trains one epoch per look."""

    def __init__(self, epochs: int) -> None:
        self.looks, self.epochs = 0, epochs

    def get(self, path: str, **_: object) -> dict[str, object]:
        done = min(self.looks, self.epochs)
        self.looks += 1
        return {
            "job_id": path.rsplit("/", 1)[-1],
            "status": "SUCCEEDED" if done == self.epochs else "RUNNING",
            "request": {"hyperparameters": {"epochs": self.epochs}},
            "epochs_done": done,
            "epochs": [
                {"epoch": n + 1, "metrics": {"accuracy": 0.5 + n / 10}} for n in range(done)
            ],
        }


def test_watch_job_follows_the_epochs_until_the_job_ends() -> None:
    from stek.cli import watch_job

    api = _JobApi(epochs=3)

    job = watch_job(api, "job-1", every_s=0)  # type: ignore[arg-type]

    assert (job["status"], job["epochs_done"], api.looks) == ("SUCCEEDED", 3, 4)
