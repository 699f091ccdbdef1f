"""`stek invoke` runs every sample event in events/ through its function."""

from __future__ import annotations

from pathlib import Path

import pytest

from stek.local.invoke import invoke_once

EVENTS = sorted((Path(__file__).resolve().parents[2] / "events").glob("*.json"))
FUNCTIONS = ("train_dispatch", "ingest", "clean", "registry")


def _function_of(event_file: Path) -> str:
    return next(name for name in FUNCTIONS if event_file.name.startswith(f"{name}_"))


@pytest.mark.parametrize("event_file", EVENTS, ids=[e.name for e in EVENTS])
def test_every_sample_event_runs(
    event_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Away from any .stek/local.json, so a developer's running `stek up` is not touched.
    monkeypatch.chdir(tmp_path)

    result = invoke_once(
        _function_of(event_file), event_file, tenant="greenhouse-a", role="scientist"
    )

    if "statusCode" in result:
        assert result["statusCode"] < 500, result
    else:
        assert "batchItemFailures" in result
