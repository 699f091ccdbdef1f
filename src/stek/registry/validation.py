"""Validation: run a model version over one split of a frozen dataset version and keep the
detections, the metrics and the pictures.

A split of up to `settings.validation_max_images` (200 by default, sized for the light
architectures on a 3 GB function) is validated inside the request. A larger one is stored
as QUEUED and put on the training queue, where the next free runner runs the same code and
records `model.validated`; the caller follows it with GET .../validations/{id}.

Maintenance: a heavy model on a set under the limit can still run past API Gateway's 30 s:
the caller gets a gateway timeout while the function finishes, and finds the result through
the `model.validated` event.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from PIL import Image

from stek.datasets.manifest import (
    ManifestEntry,
    Split,
    Task,
    VersionSummary,
    get_version,
    read_manifest,
)
from stek.errors import Conflict, InvalidInput
from stek.metrics import (
    MATCH_IOU,
    box_iou,
    classification_metrics,
    detection_metrics,
)
from stek.observability import logger
from stek.registry import pictures
from stek.registry.inference import LoadedModel, Prediction, SessionCache, open_image
from stek.registry.objects import ModelObjects, load_session
from stek.registry.records import (
    ModelVersion,
    Validation,
    ValidationMessage,
    ValidationStatus,
)
from stek.registry.store import ModelRegistry
from stek.services import services

SCORE_THRESHOLD = 0.5
EXAMPLES = 3  # best and worst images drawn, each

_sessions: SessionCache | None = None


def sessions() -> SessionCache:
    """The process's cache of loaded models, shared by validations and predictions."""
    global _sessions
    if _sessions is None:
        _sessions = SessionCache(services().settings.inference_cache_size)
    return _sessions


def loaded_model(version: ModelVersion) -> LoadedModel:
    return sessions().get(version, lambda wanted: load_session(services().s3, wanted))


@dataclass
class Outcome:
    """One image of the split: where it is, its truth, and what the model said."""

    entry: ManifestEntry
    prediction: Prediction
    quality: float  # 1 is perfect; picks the best and worst images to draw


def validate(
    registry: ModelRegistry,
    version: ModelVersion,
    dataset_id: str,
    dataset_version: int,
    split: Split,
    actor: str,
) -> Validation:
    """Validate now when the split is small enough for the function; else queue it."""
    entries = _entries(version, dataset_id, dataset_version, split)
    settings = services().settings
    validation = Validation(
        validation_id=uuid.uuid4().hex,
        tenant=version.tenant,
        name=version.name,
        version=version.version,
        dataset_id=dataset_id,
        dataset_version=dataset_version,
        split=split,
        task=version.task,
        images=len(entries),
        metrics={},
        artifacts_bucket=settings.artifacts_bucket,
    )
    if len(entries) <= settings.validation_max_images:
        return _run_validation(registry, version, entries, validation, actor)
    return _queue(registry, validation, actor)


def run_queued_validation(registry: ModelRegistry, message: ValidationMessage) -> Validation:
    """What a runner does with a queued validation; a redelivered one is left as it is."""
    queued = registry.validation(
        message.tenant, message.name, message.version, message.validation_id
    )
    if queued.status is not ValidationStatus.QUEUED:
        return queued
    version = registry.version(message.tenant, message.name, message.version)
    entries = _entries(version, queued.dataset_id, queued.dataset_version, queued.split)
    return _run_validation(registry, version, entries, queued, actor="runner")


def fail_queued_validation(
    registry: ModelRegistry, message: ValidationMessage, reason: str
) -> None:
    queued = registry.validation(
        message.tenant, message.name, message.version, message.validation_id
    )
    registry.save_validation(
        queued.model_copy(update={"status": ValidationStatus.FAILED, "error": reason})
    )
    services().events.record(
        "model.validation.failed",
        queued.tenant,
        queued.name,
        correlation_id=queued.validation_id,
        dedup=f"{queued.validation_id}:failed",
        version=queued.version,
        validation_id=queued.validation_id,
        reason=reason,
    )


def _queue(registry: ModelRegistry, validation: Validation, actor: str) -> Validation:
    validation.status = ValidationStatus.QUEUED
    registry.save_validation(validation)
    message = ValidationMessage(
        tenant=validation.tenant,
        name=validation.name,
        version=validation.version,
        validation_id=validation.validation_id,
    )
    services().sqs.send_message(
        QueueUrl=services().settings.training_queue_url, MessageBody=message.model_dump_json()
    )
    services().events.record(
        "model.validation.queued",
        validation.tenant,
        validation.name,
        correlation_id=validation.validation_id,
        actor=actor,
        version=validation.version,
        validation_id=validation.validation_id,
        images=validation.images,
    )
    logger.info(
        "validation queued", validation_id=validation.validation_id, images=validation.images
    )
    return validation


def _run_validation(
    registry: ModelRegistry,
    version: ModelVersion,
    entries: list[ManifestEntry],
    validation: Validation,
    actor: str,
) -> Validation:
    """Run, measure, draw, store; records `model.validated`."""
    dataset_id, dataset_version, split = (
        validation.dataset_id,
        validation.dataset_version,
        validation.split,
    )
    model = loaded_model(version)
    logger.info("validation started", images=len(entries), dataset_id=dataset_id, split=split.value)

    outcomes = [_run(model, version, entry) for entry in entries]
    metrics, curves = _metrics(version, outcomes)
    validation.metrics = metrics
    validation.status = ValidationStatus.SUCCEEDED
    validation.artifacts = _store_artifacts(validation, version, outcomes, curves)
    registry.save_validation(validation)

    services().events.record(
        "model.validated",
        version.tenant,
        version.name,
        correlation_id=validation.validation_id,
        actor=actor,
        version=version.version,
        validation_id=validation.validation_id,
        dataset_id=dataset_id,
        dataset_version=dataset_version,
        split=split.value,
        metrics=_headline(metrics),
    )
    logger.info(
        "validation finished", validation_id=validation.validation_id, metrics=_headline(metrics)
    )
    return validation


def _entries(
    version: ModelVersion, dataset_id: str, dataset_version: int, split: Split
) -> list[ManifestEntry]:
    settings = services().settings
    summary = get_version(
        services().dynamodb, settings.catalog_table, version.tenant, dataset_id, dataset_version
    )
    _check_dataset(summary, version)
    entries = [entry for entry in read_manifest(services().s3, summary) if entry.split is split]
    if not entries:
        raise InvalidInput(
            f"dataset {dataset_id} version {dataset_version} has no {split.value} images"
        )
    _check_labels(entries, version)
    return entries


def _check_dataset(summary: VersionSummary, version: ModelVersion) -> None:
    if not summary.frozen:
        raise Conflict(
            f"dataset {summary.dataset_id} version {summary.version} is {summary.status.value}; "
            "validate once it is READY"
        )
    if summary.task is not version.task:
        raise InvalidInput(
            f"dataset {summary.dataset_id} is for {summary.task.value}; "
            f"model {version.name} does {version.task.value}"
        )


def _check_labels(entries: list[ManifestEntry], version: ModelVersion) -> None:
    known = set(version.card.classes)
    labels = {box.label for entry in entries for box in entry.boxes}
    labels |= {entry.label for entry in entries if entry.label is not None}
    if unknown := sorted(labels - known):
        raise InvalidInput(
            f"the dataset has classes {unknown} that model {version.name} does not know "
            f"(it knows {version.card.classes})"
        )


def _run(model: LoadedModel, version: ModelVersion, entry: ManifestEntry) -> Outcome:
    image = _image(entry)
    prediction = model.predict(image)
    return Outcome(entry, prediction, _quality(entry, prediction))


def _image(entry: ManifestEntry) -> Image.Image:
    content = ModelObjects(services().s3, entry.bucket).read(entry.key)
    return open_image(content, services().settings.max_image_pixels)


def _quality(entry: ManifestEntry, prediction: Prediction) -> float:
    if entry.label is not None:
        return prediction.scores.get(entry.label, 0.0)
    kept = [box for box in prediction.detections if box.score >= SCORE_THRESHOLD]
    truth_left = list(entry.boxes)
    hits = 0
    for box in kept:
        match = next(
            (t for t in truth_left if t.label == box.label and box_iou(t, box) >= MATCH_IOU), None
        )
        if match is not None:
            truth_left.remove(match)
            hits += 1
    total = len(entry.boxes) + len(kept)
    return 2 * hits / total if total else 1.0


def _metrics(
    version: ModelVersion, outcomes: list[Outcome]
) -> tuple[dict[str, Any], dict[str, list[tuple[float, float]]]]:
    """The metrics to keep with the validation, and the PR curves (kept as an artifact)."""
    classes = version.card.classes
    if version.task is Task.CLASSIFICATION:
        classified = classification_metrics(
            [outcome.entry.label or "" for outcome in outcomes],
            [outcome.prediction.label or "" for outcome in outcomes],
            classes,
        )
        return classified.model_dump(), {}
    detected = detection_metrics(
        [outcome.entry.boxes for outcome in outcomes],
        [outcome.prediction.detections for outcome in outcomes],
        classes,
        score_threshold=SCORE_THRESHOLD,
    )
    return detected.model_dump(exclude={"pr_curves"}), detected.pr_curves


def _store_artifacts(
    validation: Validation,
    version: ModelVersion,
    outcomes: list[Outcome],
    curves: dict[str, list[tuple[float, float]]],
) -> dict[str, str]:
    prefix = (
        f"{validation.tenant}/validations/{validation.name}/v{validation.version}/"
        f"{validation.validation_id}/"
    )
    title = (
        f"{validation.name} v{validation.version} "
        f"on {validation.dataset_id} v{validation.dataset_version}"
    )
    classes = version.card.classes
    files: dict[str, tuple[bytes, str]] = {
        "metrics.json": (
            json.dumps(validation.metrics | {"pr_curves": curves}).encode(),
            "application/json",
        ),
        "confusion.png": (
            pictures.confusion_png(
                validation.metrics["confusion"],
                classes if version.task is Task.CLASSIFICATION else [*classes, "background"],
                title,
            ),
            "image/png",
        ),
    }
    if version.task is Task.DETECTION:
        files["pr_curve.png"] = (pictures.pr_curves_png(curves, title), "image/png")
        files["detections.coco.json"] = (_coco_results(outcomes, classes), "application/json")
        files["ground_truth.coco.json"] = (_coco_truth(outcomes, classes), "application/json")
    files |= _examples(outcomes)

    s3 = services().s3
    for name, (body, content_type) in files.items():
        s3.put_object(
            Bucket=validation.artifacts_bucket,
            Key=prefix + name,
            Body=body,
            ContentType=content_type,
        )
    return {name: prefix + name for name in files}


def _examples(outcomes: list[Outcome]) -> dict[str, tuple[bytes, str]]:
    """The best and the worst images with what the model saw drawn on them."""
    ranked = sorted(outcomes, key=lambda outcome: -outcome.quality)
    # On a small set the best take the better half, the worst come from what is left.
    best = ranked[: min(EXAMPLES, (len(ranked) + 1) // 2)]
    worst = list(reversed(ranked[len(best) :]))[:EXAMPLES]
    drawn: dict[str, tuple[bytes, str]] = {}
    for kind, chosen in (("best", best), ("worst", worst)):
        for rank, outcome in enumerate(chosen, 1):
            drawn[f"{kind}-{rank}-{outcome.entry.image_id}.jpg"] = (_drawn(outcome), "image/jpeg")
    return drawn


def _drawn(outcome: Outcome) -> bytes:
    image = _image(outcome.entry)
    prediction = outcome.prediction
    if prediction.label is not None:
        score = prediction.scores.get(prediction.label, 0.0)
        return pictures.label_drawn(image, outcome.entry.label or "", prediction.label, score)
    kept = prediction.above(SCORE_THRESHOLD).detections
    return pictures.boxes_drawn(image, outcome.entry.boxes, kept)


def _coco_results(outcomes: list[Outcome], classes: list[str]) -> bytes:
    """COCO results: image ids are positions in ground_truth.coco.json, categories 1-based."""
    category = {name: number for number, name in enumerate(classes, 1)}
    results = [
        {
            "image_id": image_id,
            "category_id": category[box.label],
            "bbox": [box.x1, box.y1, box.x2 - box.x1, box.y2 - box.y1],
            "score": box.score,
        }
        for image_id, outcome in enumerate(outcomes, 1)
        for box in outcome.prediction.detections
    ]
    return json.dumps(results).encode()


def _coco_truth(outcomes: list[Outcome], classes: list[str]) -> bytes:
    category = {name: number for number, name in enumerate(classes, 1)}
    images = [
        {
            "id": image_id,
            "file_name": outcome.entry.key,
            "width": outcome.entry.width,
            "height": outcome.entry.height,
            "stek_image_id": outcome.entry.image_id,
        }
        for image_id, outcome in enumerate(outcomes, 1)
    ]
    annotations = [
        {
            "id": index,
            "image_id": image_id,
            "category_id": category[box.label],
            "bbox": [box.x1, box.y1, box.x2 - box.x1, box.y2 - box.y1],
            "area": (box.x2 - box.x1) * (box.y2 - box.y1),
            "iscrowd": 0,
        }
        for index, (image_id, box) in enumerate(
            ((image_id, box) for image_id, o in enumerate(outcomes, 1) for box in o.entry.boxes), 1
        )
    ]
    categories = [{"id": number, "name": name} for name, number in category.items()]
    return json.dumps(
        {"images": images, "annotations": annotations, "categories": categories}
    ).encode()


def _headline(metrics: dict[str, Any]) -> dict[str, float]:
    names = ("map_50", "map_50_95", "precision", "recall", "accuracy")
    return {name: metrics[name] for name in names if isinstance(metrics.get(name), float | int)}
