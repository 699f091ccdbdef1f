"""The training request schema refuses what cannot work, with messages that say what to do."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stek.training.schema import ARCHITECTURE_TASK, Architecture, Hyperparameters, TrainingRequest


def test_every_architecture_has_a_task() -> None:
    assert set(ARCHITECTURE_TASK) == set(Architecture)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"image_size": 100}, "multiple of 32, e.g. 96"),
        ({"epochs": 0}, "greater than or equal to 1"),
        ({"lr": 0}, "greater than 0"),
        ({"weights_uri": "https://example.com/w.pt"}, "s3://bucket/key"),
        ({"warmup": 3}, "Extra inputs are not permitted"),
    ],
)
def test_hyperparameters_out_of_range_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Hyperparameters.model_validate(values)


def test_defaults_make_a_valid_request() -> None:
    request = TrainingRequest.model_validate(
        {
            "dataset_id": "ds",
            "version": 1,
            "task": "detection",
            "architecture": "ssdlite320_mobilenet_v3_large",
            "model_name": "trays.v2",
        }
    )
    assert request.hyperparameters.image_size % 32 == 0
    assert request.seed == 0


def test_model_names_are_safe_key_segments() -> None:
    with pytest.raises(ValidationError, match="lower case"):
        TrainingRequest.model_validate(
            {
                "dataset_id": "ds",
                "version": 1,
                "task": "classification",
                "architecture": "resnet18",
                "model_name": "../x",
            }
        )


def test_training_package_imports_no_torch() -> None:
    import subprocess
    import sys

    probe = "import sys, stek.training.dispatch, stek.api.training; print('torch' in sys.modules)"
    answer = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert answer.stdout.strip() == "False"
