"""Run a registered ONNX model on images: preprocessing from the card, onnxruntime, and the
outputs turned back into detections or class scores in the image's own pixels.

Shared by validation and predictions (and the demo), so both see a model the same way.
Output conventions (the runner's export): classification gives `logits` [N, C]; detection
gives `boxes` [N, K, 4] (x1, y1, x2, y2 in input pixels), `scores` [N, K] and `labels` [N, K]
(class index into `card.classes`); `card.outputs` may rename them. A detector exported
without the batch dimension ([K, 4], [K], [K]) is read the same way.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field

from stek.datasets.manifest import Task
from stek.errors import InvalidInput
from stek.metrics import ScoredBox
from stek.modelcard import ModelCard
from stek.registry.checks import output_names
from stek.registry.records import ModelVersion


class Prediction(BaseModel):
    """What a model saw in one image."""

    task: Task
    detections: list[ScoredBox] = Field(default_factory=list)  # detection, best first
    scores: dict[str, float] = Field(default_factory=dict)  # classification, softmax
    label: str | None = None  # classification: the best class

    def above(self, min_score: float) -> Prediction:
        kept = [box for box in self.detections if box.score >= min_score]
        return self.model_copy(update={"detections": kept})


def open_image(content: bytes, max_pixels: int) -> Image.Image:
    """An RGB image from encoded bytes; refused when unreadable or too large."""
    try:
        image = Image.open(io.BytesIO(content))
        if image.width * image.height > max_pixels:
            raise InvalidInput(f"image has {image.width}x{image.height} pixels, over {max_pixels}")
        return image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise InvalidInput(f"the body is not an image Pillow can read: {error}") from error


def preprocess(image: Image.Image, card: ModelCard) -> np.ndarray:
    """[1, 3, H, W] float32: resized to the card's input size, scaled, then mean/std."""
    height, width = card.input_size
    resized = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32) * np.float32(card.normalisation.scale)
    mean = np.asarray(card.normalisation.mean, dtype=np.float32)
    std = np.asarray(card.normalisation.std, dtype=np.float32)
    return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1)[np.newaxis])


class LoadedModel:
    """An onnxruntime session with the card that says how to feed it and read it."""

    def __init__(self, session: Any, version: ModelVersion) -> None:
        self.session = session
        self.card = version.card
        self._input = version.signature.inputs[0].name
        self._roles = output_names(version.card, version.signature)

    def predict(self, image: Image.Image) -> Prediction:
        outputs = self.session.run(None, {self._input: preprocess(image, self.card)})
        named = dict(zip([o.name for o in self.session.get_outputs()], outputs, strict=True))
        if self.card.task is Task.CLASSIFICATION:
            return self._class_scores(np.asarray(named[self._roles["logits"]]))
        return self._detections(named, image.width, image.height)

    def _class_scores(self, logits: np.ndarray) -> Prediction:
        row = logits.reshape(-1, logits.shape[-1])[0].astype(np.float64)
        exponent = np.exp(row - row.max())
        probabilities = exponent / exponent.sum()
        scores = {name: float(p) for name, p in zip(self.card.classes, probabilities, strict=True)}
        best = self.card.classes[int(np.argmax(probabilities))]
        return Prediction(task=Task.CLASSIFICATION, scores=scores, label=best)

    def _detections(self, named: dict[str, Any], width: int, height: int) -> Prediction:
        boxes = np.asarray(named[self._roles["boxes"]], dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(named[self._roles["scores"]], dtype=np.float64).reshape(-1)
        labels = np.asarray(named[self._roles["labels"]]).reshape(-1).astype(np.int64)
        # Boxes come in input pixels; the truth and the caller think in the image's pixels.
        input_height, input_width = self.card.input_size
        scale = np.array([width / input_width, height / input_height] * 2)
        detections = [
            ScoredBox(
                label=self.card.classes[label],
                x1=float(corners[0]),
                y1=float(corners[1]),
                x2=float(corners[2]),
                y2=float(corners[3]),
                score=float(score),
            )
            for corners, score, label in zip(boxes * scale, scores, labels, strict=True)
            if 0 <= label < len(self.card.classes)  # padding rows carry label -1
        ]
        detections.sort(key=lambda box: -box.score)
        return Prediction(task=Task.DETECTION, detections=detections)


def new_session(model: bytes | str, threads: int = 0) -> Any:
    """An onnxruntime session on the CPU from the model's bytes or its path; `threads` 0
    lets onnxruntime use every core the function has."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # warnings about unused initializers are noise here
    options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class SessionCache:
    """The most recently used loaded models of this process, keyed by the model's sha256, so
    a warm function answers predictions without reading and compiling the model again."""

    def __init__(self, capacity: int) -> None:
        self._capacity = max(capacity, 1)
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, version: ModelVersion, load: Callable[[ModelVersion], Any]) -> LoadedModel:
        with self._lock:
            if version.sha256 in self._models:
                self._models.move_to_end(version.sha256)
                return self._models[version.sha256]
        loaded = LoadedModel(load(version), version)
        with self._lock:
            self.loads += 1
            self._models[version.sha256] = loaded
            while len(self._models) > self._capacity:
                self._models.popitem(last=False)
        return loaded


def verify_sha256(content: bytes, version: ModelVersion) -> None:
    if hashlib.sha256(content).hexdigest() != version.sha256:
        raise InvalidInput(
            f"model {version.name} version {version.version} no longer matches its sha256; "
            "the object was replaced outside the registry"
        )
