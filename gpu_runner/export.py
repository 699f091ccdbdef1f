"""ONNX export, the parity check against PyTorch, and the hand-over to the models bucket.

What is dynamic in the exported graphs:
- classification: input `images` [batch, 3, H, W] -> `logits` [batch, classes]; the batch
  dimension is dynamic, H and W are the card's `input_size`.
- detection: input `images` [1, 3, H, W] (float pixels in [0, 1]) -> `boxes` [n, 4]
  (x1, y1, x2, y2 in input pixels), `scores` [n], `labels` [n] (class index into the card's
  classes). The number of detections n is dynamic; the batch is 1, because torchvision's
  detectors post-process image by image and the traced graph keeps one image's path.
  Callers run images one at a time.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime
import torch
from torch import nn
from torchvision.ops import box_iou

from stek.datasets.manifest import Task
from stek.modelcard import ModelCard, Parity

OPSET = 17
CLASSIFICATION_OUTPUTS = {"logits": "class scores before softmax, [batch, classes]"}
DETECTION_OUTPUTS = {
    "boxes": "x1, y1, x2, y2 in input pixels, [n, 4]",
    "scores": "confidence of each box, [n]",
    "labels": "index into classes of each box, [n]",
}


class ParityFailed(Exception):
    """onnxruntime's answers differ from PyTorch's by more than the tolerance."""


class _Detector(nn.Module):
    """A batch-of-one tensor interface around a torchvision detector, labels from 0."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        found = self.detector([images[0]])[0]
        return found["boxes"], found["scores"], found["labels"] - 1


@dataclass
class ExportedModel:
    path: Path
    outputs: dict[str, str]
    parity: Parity


def export_onnx(model: nn.Module, task: Task, image_size: int, path: Path) -> dict[str, str]:
    """Write the model as ONNX and check it; returns its outputs and what they hold."""
    model = model.cpu().eval()
    example = torch.rand(1, 3, image_size, image_size)
    if task is Task.CLASSIFICATION:
        module, outputs = model, CLASSIFICATION_OUTPUTS
        dynamic = {"images": {0: "batch"}, "logits": {0: "batch"}}
    else:
        module, outputs = _Detector(model).eval(), DETECTION_OUTPUTS
        dynamic = {name: {0: "detections"} for name in DETECTION_OUTPUTS}
    with warnings.catch_warnings():
        # The tracer warns about every data-dependent branch in torchvision's detectors.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["images"],
            output_names=list(outputs),
            dynamic_axes=dynamic,
        )
    onnx.checker.check_model(onnx.load(str(path)))
    return dict(outputs)


def check_parity(
    model: nn.Module, task: Task, path: Path, images: list[torch.Tensor], tolerance: float
) -> Parity:
    """Run the same images through PyTorch and onnxruntime and record the largest difference.

    Detection compares each confident PyTorch box with the ONNX box of the same class that
    overlaps it most. Scores are always compared; corners (as fractions of the input side)
    only when the two are the same box (IoU >= 0.9). Boxes with equal scores can be ordered
    either way by the two runtimes' sorts, so NMS may keep a different one of them and the
    nearest ONNX box is then a neighbour with other corners and score: that is a tie, not a
    broken export, so a box whose score another box shares is left out. (An undertrained
    detector gives hundreds of boxes the same score; a trained one gives few.) Any other
    confident box with no same-class ONNX box overlapping it by half counts as 1.
    """
    model = model.cpu().eval()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    largest = 0.0
    with torch.inference_mode():
        if task is Task.CLASSIFICATION:
            batch = torch.stack(images)
            expected = model(batch).numpy()
            (answer,) = session.run(None, {"images": batch.numpy()})
            largest = float(np.abs(expected - answer).max()) if len(images) else 0.0
        else:
            detector = _Detector(model).eval()
            for image in images:
                boxes, scores, labels = (t.numpy() for t in detector(image[None]))
                onnx_boxes, onnx_scores, onnx_labels = session.run(
                    None, {"images": image[None].numpy()}
                )
                side = float(image.shape[-1])
                largest = max(
                    largest,
                    _detection_difference(
                        (boxes / side, scores, labels),
                        (onnx_boxes / side, onnx_scores, onnx_labels),
                    ),
                )
    return Parity(
        max_abs_diff=largest, tolerance=tolerance, images=len(images), passed=largest <= tolerance
    )


def upload(s3: Any, bucket: str, prefix: str, card: ModelCard, onnx_path: Path) -> tuple[str, str]:
    """Card first, then the model: the registry is triggered by the .onnx and reads the card.

    A runner that resumes a job whose model was already handed over uploads nothing again,
    so the registry never sees the same job's model twice.
    """
    card_key, model_key = f"{prefix}card.json", f"{prefix}model.onnx"
    if not _exists(s3, bucket, model_key):
        s3.put_object(
            Bucket=bucket,
            Key=card_key,
            Body=card.model_dump_json(indent=2).encode(),
            ContentType="application/json",
        )
        s3.upload_file(str(onnx_path), bucket, model_key)
    return f"s3://{bucket}/{card_key}", f"s3://{bucket}/{model_key}"


def _detection_difference(
    expected: tuple[np.ndarray, np.ndarray, np.ndarray],
    answer: tuple[np.ndarray, np.ndarray, np.ndarray],
    confident: float = 0.3,
    tie: float = 1e-4,
) -> float:
    boxes, scores, labels = expected
    onnx_boxes, onnx_scores, onnx_labels = answer
    order = np.sort(scores)
    gaps = np.diff(order)
    largest = 0.0
    for box, score, label in zip(boxes, scores, labels, strict=True):
        if score < confident:
            continue
        position = int(np.searchsorted(order, score))
        if any(0 <= i < len(gaps) and gaps[i] < tie for i in (position - 1, position)):
            continue
        same_class = np.flatnonzero(onnx_labels == label)
        if not len(same_class):
            return 1.0
        overlaps = box_iou(torch.from_numpy(box[None]), torch.from_numpy(onnx_boxes[same_class]))[0]
        best = int(overlaps.argmax())
        if float(overlaps[best]) < 0.5:
            return 1.0
        match = same_class[best]
        largest = max(largest, abs(float(onnx_scores[match]) - float(score)))
        if float(overlaps[best]) >= 0.9:
            largest = max(largest, float(np.abs(onnx_boxes[match] - box).max()))
    return largest


def _exists(s3: Any, bucket: str, key: str) -> bool:
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as error:
        if error.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return True
