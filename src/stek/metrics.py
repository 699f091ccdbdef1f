"""How well a model does: detection metrics (COCO style) and classification metrics.

Shared by the runner (metrics in the model card) and the registry (validation of a model
version on a dataset version). No PyTorch: detection AP comes from pycocotools' COCOeval.

Conventions that a reader of the numbers needs:
- A class without any truth box (or truth label) has no AP: it is omitted from
  `per_class_ap50`, `per_class_ap` and `pr_curves`, and left out of the means. When no class
  has truth at all, `map_50` and `map_50_95` are 0.0 (never NaN, never COCO's -1).
- `precision` and `recall` (detection) are micro-averaged at IoU 0.5 over the predictions with
  `score >= score_threshold`, matched greedily by score to a truth box of the same class.
- The detection confusion matrix has one row and one column per class plus a last one for
  background: rows are the truth, columns the prediction. Same-class matches fill the
  diagonal; what is left is then matched regardless of class (a wrong class at IoU >= 0.5);
  a prediction still unmatched counts as (background, class), a truth still unmatched as
  (class, background).
- Classification precision, recall and F1 of a class are 0.0 when undefined (no prediction
  of that class, or no truth of it).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
from pydantic import BaseModel

from stek.datasets.manifest import Box

MATCH_IOU = 0.5


class ScoredBox(Box):
    """A predicted box with its confidence."""

    score: float


class DetectionMetrics(BaseModel):
    map_50: float
    map_50_95: float
    per_class_ap50: dict[str, float]
    per_class_ap: dict[str, float]
    precision: float
    recall: float
    # (classes + background) x (classes + background) at IoU 0.5, score >= threshold
    confusion: list[list[int]]
    pr_curves: dict[str, list[tuple[float, float]]]  # class -> (recall, precision) at IoU 0.5


class ClassificationMetrics(BaseModel):
    accuracy: float
    per_class_f1: dict[str, float]
    precision: dict[str, float]
    recall: dict[str, float]
    confusion: list[list[int]]  # classes x classes, rows truth, columns prediction


def detection_metrics(
    truth: list[list[Box]],
    predicted: list[list[ScoredBox]],
    classes: list[str],
    *,
    score_threshold: float = 0.5,
) -> DetectionMetrics:
    """COCO mAP and per-class AP over all predictions; precision, recall and confusion above
    the score threshold. `truth[i]` and `predicted[i]` belong to the same image."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} images of truth but {len(predicted)} of predictions")
    index = {name: position for position, name in enumerate(classes)}
    _check_labels(truth, index)
    _check_labels(predicted, index)

    precision_table = _coco_precision(truth, predicted, classes)
    recall_points = np.linspace(0.0, 1.0, 101)
    per_class_ap50: dict[str, float] = {}
    per_class_ap: dict[str, float] = {}
    pr_curves: dict[str, list[tuple[float, float]]] = {}
    for position, name in enumerate(classes):
        class_table = precision_table[:, :, position]  # IoU thresholds x recall points
        if (class_table < 0).all():
            continue  # no truth of this class: AP undefined, omitted
        per_class_ap50[name] = float(class_table[0].mean())
        per_class_ap[name] = float(class_table.mean())
        pr_curves[name] = [
            (float(r), float(p)) for r, p in zip(recall_points, class_table[0], strict=True)
        ]

    confusion, correct, kept, truths = _confusion(truth, predicted, index, score_threshold)
    return DetectionMetrics(
        map_50=_mean(per_class_ap50.values()),
        map_50_95=_mean(per_class_ap.values()),
        per_class_ap50=per_class_ap50,
        per_class_ap=per_class_ap,
        precision=correct / kept if kept else 0.0,
        recall=correct / truths if truths else 0.0,
        confusion=confusion,
        pr_curves=pr_curves,
    )


def classification_metrics(
    truth: list[str], predicted: list[str], classes: list[str]
) -> ClassificationMetrics:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix of labels."""
    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} truth labels but {len(predicted)} predictions")
    index = {name: position for position, name in enumerate(classes)}
    unknown = sorted({label for label in [*truth, *predicted] if label not in index})
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {classes}")

    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for true_label, predicted_label in zip(truth, predicted, strict=True):
        confusion[index[true_label], index[predicted_label]] += 1

    precision: dict[str, float] = {}
    recall: dict[str, float] = {}
    per_class_f1: dict[str, float] = {}
    for position, name in enumerate(classes):
        hits = int(confusion[position, position])
        predicted_as = int(confusion[:, position].sum())
        actually = int(confusion[position, :].sum())
        precision[name] = hits / predicted_as if predicted_as else 0.0
        recall[name] = hits / actually if actually else 0.0
        both = precision[name] + recall[name]
        per_class_f1[name] = 2 * precision[name] * recall[name] / both if both else 0.0

    return ClassificationMetrics(
        accuracy=float(np.trace(confusion)) / len(truth) if truth else 0.0,
        per_class_f1=per_class_f1,
        precision=precision,
        recall=recall,
        confusion=confusion.tolist(),
    )


def box_iou(first: Box, second: Box) -> float:
    """Intersection over union of two boxes in pixel corners."""
    width = min(first.x2, second.x2) - max(first.x1, second.x1)
    height = min(first.y2, second.y2) - max(first.y1, second.y1)
    overlap = max(width, 0.0) * max(height, 0.0)
    union = _area(first) + _area(second) - overlap
    return overlap / union if union > 0 else 0.0


def _check_labels(images: list[list[Box]] | list[list[ScoredBox]], index: dict[str, int]) -> None:
    unknown = sorted({box.label for boxes in images for box in boxes if box.label not in index})
    if unknown:
        raise ValueError(f"labels {unknown} are not among the classes {list(index)}")


def _area(box: Box) -> float:
    return max(box.x2 - box.x1, 0.0) * max(box.y2 - box.y1, 0.0)


def _mean(values: Any) -> float:
    values = list(values)
    return float(sum(values) / len(values)) if values else 0.0


def _coco_precision(
    truth: list[list[Box]], predicted: list[list[ScoredBox]], classes: list[str]
) -> np.ndarray:
    """COCOeval's interpolated precision, [IoU threshold, recall point, class], at area 'all'
    and the largest number of detections; -1 where a class has no truth."""
    from pycocotools.cocoeval import COCOeval  # imported here: handlers that never score stay light

    images = [{"id": number} for number in range(1, len(truth) + 1)]
    categories = [{"id": number, "name": name} for number, name in enumerate(classes, 1)]
    category = {name: number for number, name in enumerate(classes, 1)}

    def annotation(image_id: int, box: Box, number: int) -> dict[str, Any]:
        width, height = max(box.x2 - box.x1, 0.0), max(box.y2 - box.y1, 0.0)
        return {
            "id": number,
            "image_id": image_id,
            "category_id": category[box.label],
            "bbox": [box.x1, box.y1, width, height],
            "area": width * height,
            "iscrowd": 0,
        }

    truth_annotations: list[dict[str, Any]] = []
    detections: list[dict[str, Any]] = []
    for image_id, (true_boxes, scored_boxes) in enumerate(zip(truth, predicted, strict=True), 1):
        for box in true_boxes:
            truth_annotations.append(annotation(image_id, box, len(truth_annotations) + 1))
        for scored in scored_boxes:
            detection = annotation(image_id, scored, len(detections) + 1)
            detections.append(detection | {"score": scored.score})

    # loadRes refuses an empty list, so both sides are built the same way by hand.
    coco_truth = _coco(images, categories, truth_annotations)
    coco_detections = _coco(images, categories, detections)
    evaluation = COCOeval(coco_truth, coco_detections, iouType="bbox")
    most_per_image = max((len(boxes) for boxes in predicted), default=0)
    evaluation.params.maxDets = [1, 10, max(100, most_per_image)]
    evaluation.params.imgIds = [image["id"] for image in images]
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints progress
        evaluation.evaluate()
        evaluation.accumulate()
    precision = evaluation.eval["precision"]  # [T, R, K, A, M]
    return np.asarray(precision[:, :, :, 0, -1])


def _coco(
    images: list[dict[str, Any]],
    categories: list[dict[str, Any]],
    annotations: list[dict[str, Any]],
) -> Any:
    from pycocotools.coco import COCO

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "categories": categories, "annotations": annotations}
        coco.createIndex()
    return coco


def _confusion(
    truth: list[list[Box]],
    predicted: list[list[ScoredBox]],
    index: dict[str, int],
    score_threshold: float,
) -> tuple[list[list[int]], int, int, int]:
    """The confusion matrix, and the correct, kept-prediction and truth counts behind
    precision and recall."""
    background = len(index)
    confusion = np.zeros((background + 1, background + 1), dtype=np.int64)
    kept_total = 0
    for true_boxes, scored_boxes in zip(truth, predicted, strict=True):
        kept = sorted(
            (box for box in scored_boxes if box.score >= score_threshold),
            key=lambda box: -box.score,
        )
        kept_total += len(kept)
        truth_left = list(range(len(true_boxes)))
        predictions_left: list[int] = []

        for number, box in enumerate(kept):
            match = _best_match(box, true_boxes, truth_left, same_class=True)
            if match is None:
                predictions_left.append(number)
                continue
            truth_left.remove(match)
            confusion[index[box.label], index[box.label]] += 1

        for number in predictions_left:
            box = kept[number]
            match = _best_match(box, true_boxes, truth_left, same_class=False)
            if match is None:
                confusion[background, index[box.label]] += 1
                continue
            truth_left.remove(match)
            confusion[index[true_boxes[match].label], index[box.label]] += 1

        for match in truth_left:
            confusion[index[true_boxes[match].label], background] += 1

    correct = int(np.trace(confusion[:background, :background]))
    truths = sum(len(boxes) for boxes in truth)
    return confusion.tolist(), correct, kept_total, truths


def _best_match(
    box: Box, true_boxes: list[Box], candidates: list[int], *, same_class: bool
) -> int | None:
    best, best_iou = None, MATCH_IOU
    for number in candidates:
        if same_class and true_boxes[number].label != box.label:
            continue
        overlap = box_iou(box, true_boxes[number])
        if overlap >= best_iou:
            best, best_iou = number, overlap
    return best
