"""Detection and classification metrics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from stek.datasets.manifest import Box
from stek.metrics import ScoredBox, box_iou, classification_metrics, detection_metrics


def truth(label: str, x1: float, y1: float, x2: float, y2: float) -> Box:
    return Box(label=label, x1=x1, y1=y1, x2=x2, y2=y2)


def guess(label: str, x1: float, y1: float, x2: float, y2: float, score: float) -> ScoredBox:
    return ScoredBox(label=label, x1=x1, y1=y1, x2=x2, y2=y2, score=score)


def test_perfect_detections_score_one_everywhere() -> None:
    images = [[truth("leaf", 0, 0, 10, 10)], [truth("stem", 5, 5, 20, 20)]]
    predicted = [[guess("leaf", 0, 0, 10, 10, 0.9)], [guess("stem", 5, 5, 20, 20, 0.8)]]

    metrics = detection_metrics(images, predicted, ["leaf", "stem"])

    assert metrics.map_50 == pytest.approx(1.0)
    assert metrics.map_50_95 == pytest.approx(1.0)
    assert (metrics.precision, metrics.recall) == (1.0, 1.0)
    assert metrics.confusion == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert metrics.pr_curves["leaf"][0] == pytest.approx((0.0, 1.0))
    assert len(metrics.pr_curves["leaf"]) == 101


def test_iou_between_the_thresholds_counts_only_for_some_of_them() -> None:
    # IoU of (0,0,10,10) with (0,0,10,8) is 0.8: a hit at 0.50..0.80 (7 of 10 thresholds).
    assert box_iou(truth("a", 0, 0, 10, 10), truth("a", 0, 0, 10, 8)) == pytest.approx(0.8)

    metrics = detection_metrics(
        [[truth("a", 0, 0, 10, 10)]], [[guess("a", 0, 0, 10, 8, 0.9)]], ["a"]
    )

    assert metrics.map_50 == pytest.approx(1.0)
    assert metrics.map_50_95 == pytest.approx(0.7)


def test_a_class_without_truth_is_left_out_not_nan() -> None:
    images = [[truth("leaf", 0, 0, 10, 10)]]
    predicted = [[guess("leaf", 0, 0, 10, 10, 0.9), guess("root", 30, 30, 40, 40, 0.9)]]

    metrics = detection_metrics(images, predicted, ["leaf", "root"])

    assert set(metrics.per_class_ap50) == {"leaf"}
    assert metrics.map_50 == pytest.approx(1.0)
    assert metrics.precision == pytest.approx(0.5)
    assert metrics.confusion[2] == [0, 1, 0]  # background predicted as root
    assert not any(math.isnan(value) for value in metrics.per_class_ap.values())


def test_no_truth_and_no_predictions_give_zeros() -> None:
    metrics = detection_metrics([[], []], [[], []], ["leaf"])

    assert (metrics.map_50, metrics.map_50_95, metrics.precision, metrics.recall) == (0, 0, 0, 0)
    assert metrics.per_class_ap50 == {}
    assert metrics.confusion == [[0, 0], [0, 0]]


def test_missed_truth_and_low_scores() -> None:
    # One leaf found at 0.3 (below the threshold), one missed entirely.
    images = [[truth("leaf", 0, 0, 10, 10)], [truth("leaf", 0, 0, 10, 10)]]
    predicted = [[guess("leaf", 0, 0, 10, 10, 0.3)], []]

    metrics = detection_metrics(images, predicted, ["leaf"], score_threshold=0.5)

    # AP: recall reaches 0.5 at precision 1 -> 51 of 101 recall points.
    assert metrics.map_50 == pytest.approx(51 / 101)
    assert (metrics.precision, metrics.recall) == (0.0, 0.0)
    assert metrics.confusion == [[0, 2], [0, 0]]


def test_labels_outside_the_classes_are_refused() -> None:
    with pytest.raises(ValueError, match="root"):
        detection_metrics([[truth("root", 0, 0, 1, 1)]], [[]], ["leaf"])


def test_classification_metrics_by_hand() -> None:
    labels = ["good", "good", "bad", "bad", "bad"]
    predicted = ["good", "bad", "bad", "bad", "good"]

    metrics = classification_metrics(labels, predicted, ["good", "bad", "unused"])

    assert metrics.accuracy == pytest.approx(3 / 5)
    assert metrics.precision == pytest.approx({"good": 1 / 2, "bad": 2 / 3, "unused": 0.0})
    assert metrics.recall == pytest.approx({"good": 1 / 2, "bad": 2 / 3, "unused": 0.0})
    assert metrics.per_class_f1 == pytest.approx({"good": 1 / 2, "bad": 2 / 3, "unused": 0.0})
    assert metrics.confusion == [[1, 1, 0], [1, 2, 0], [0, 0, 0]]


def test_classification_of_nothing_is_zero() -> None:
    metrics = classification_metrics([], [], ["good"])
    assert metrics.accuracy == 0.0
    assert metrics.confusion == [[0]]
