"""ONNX export and parity: dynamic batch for classifiers, checked detectors, honest differences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from gpu_runner import export, models
from stek.datasets.manifest import Task
from stek.training.schema import Architecture

pytestmark = pytest.mark.torch


def test_every_architecture_has_a_builder() -> None:
    assert set(models.BUILDERS) == set(Architecture)


def test_a_classifier_exports_with_a_dynamic_batch_and_passes_parity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = models.build_model(Architecture.MOBILENET_V3_SMALL, 3, 64).eval()
    path = tmp_path / "model.onnx"

    outputs = export.export_onnx(model, Task.CLASSIFICATION, 64, path)
    parity = export.check_parity(
        model, Task.CLASSIFICATION, path, [torch.rand(3, 64, 64) for _ in range(3)], 1e-3
    )

    assert list(outputs) == ["logits"]
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert parity.passed
    assert parity.images == 3
    assert parity.max_abs_diff < 1e-3


def test_a_faster_rcnn_exports_and_passes_parity(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = models.build_model(Architecture.FASTERRCNN_MOBILENET_V3_LARGE_320_FPN, 2, 64).eval()
    path = tmp_path / "model.onnx"

    outputs = export.export_onnx(model, Task.DETECTION, 64, path)
    parity = export.check_parity(model, Task.DETECTION, path, [torch.rand(3, 64, 64)], 1e-3)

    assert list(outputs) == ["boxes", "scores", "labels"]
    assert parity.passed


def test_a_confident_box_onnx_misses_counts_as_a_full_difference() -> None:
    expected = (np.array([[0.1, 0.1, 0.5, 0.5]]), np.array([0.9]), np.array([0]))
    nothing = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64))
    shifted = (np.array([[0.1, 0.1, 0.5, 0.52]]), np.array([0.9]), np.array([0]))

    assert export._detection_difference(expected, nothing) == 1.0
    assert export._detection_difference(expected, shifted) == pytest.approx(0.02)


def test_user_weights_load_where_they_fit() -> None:
    source = models.build_model(Architecture.RESNET18, 5, 64)
    target = models.build_model(Architecture.RESNET18, 2, 64)

    left_random = models.load_user_weights(target, source.state_dict())

    assert left_random == ["fc.bias", "fc.weight"]
    assert torch.equal(target.state_dict()["conv1.weight"], source.state_dict()["conv1.weight"])
    with pytest.raises(ValueError, match="none of the tensors"):
        models.load_user_weights(target, {"unrelated": torch.zeros(1)})


def test_detection_parity_forgives_ties_but_not_missing_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], dtype=np.float32)
    scores = np.array([0.9, 0.5, 0.5], dtype=np.float32)
    labels = np.array([0, 0, 0])
    # ONNX kept the other of the two tied boxes: a tie, not a difference.
    kept_other = (boxes[[0, 2]], scores[[0, 2]], labels[[0, 2]])
    lost_confident = (boxes[[1, 2]], scores[[1, 2]], labels[[1, 2]])
    nudged = (boxes + 0.001, scores - 0.0005, labels)

    assert export._detection_difference((boxes, scores, labels), kept_other) == 0.0
    assert export._detection_difference((boxes, scores, labels), lost_confident) == 1.0
    assert export._detection_difference((boxes, scores, labels), nudged) == pytest.approx(
        0.001, abs=1e-4
    )


def test_detection_parity_compares_only_scores_of_tied_twins() -> None:
    boxes = np.array([[0, 0, 0.5, 0.5], [0.002, 0, 0.502, 0.5]], dtype=np.float32)
    scores = np.array([0.4, 0.4], dtype=np.float32)
    labels = np.array([0, 0])
    # ONNX kept only the second twin: its corners are 0.002 away from the first.
    twin = (boxes[[1]], scores[[1]], labels[[1]])

    assert export._detection_difference((boxes, scores, labels), twin) == 0.0
