"""One epoch of training and one evaluation on the validation split.

Both are plain loops over a DataLoader. Training checks `should_stop` between steps, so a
cancellation or a SIGTERM is honoured within one batch; the caller decides what stopping
means (cancel, or checkpoint and hand the job back).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.utils.data import DataLoader

from stek.datasets.manifest import Box, Task
from stek.metrics import ScoredBox, classification_metrics, detection_metrics


@dataclass
class EpochResult:
    steps: int  # steps done in this epoch, including those of a previous runner
    loss: float  # mean training loss over the steps this runner did
    stopped: bool  # should_stop() interrupted the epoch


@dataclass
class Evaluation:
    metrics: dict[str, Any]
    primary: float  # accuracy or mAP@0.5: what "best" means


def progress_bar(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    )


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    batches: DataLoader[Any],
    *,
    task: Task,
    device: torch.device,
    first_step: int,
    total_steps: int,
    should_stop: Callable[[], bool],
    description: str,
    show_progress: bool,
) -> EpochResult:
    model.train()
    amp = device.type == "cuda"
    step, losses = first_step, list[float]()
    with progress_bar(show_progress) as bar:
        bar_task = bar.add_task(description, total=total_steps, completed=first_step, loss=0.0)
        for images, targets in batches:
            if should_stop():
                return EpochResult(step, _mean(losses), stopped=True)
            with torch.autocast(device.type, enabled=amp):
                loss = _loss(model, images, targets, task, device)
            if not math.isfinite(loss.item()):
                raise FloatingPointError(
                    f"training loss became {loss.item()} at step {step}; lower the learning rate"
                )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
            step += 1
            bar.update(bar_task, advance=1, loss=losses[-1])
    return EpochResult(step, _mean(losses), stopped=False)


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: DataLoader[Any],
    *,
    task: Task,
    classes: list[str],
    device: torch.device,
) -> Evaluation:
    model.eval()
    if task is Task.CLASSIFICATION:
        truth: list[str] = []
        predicted: list[str] = []
        for images, labels in batches:
            logits = model(_to_device(images, device))
            truth += [classes[int(label)] for label in labels]
            predicted += [classes[int(index)] for index in logits.argmax(dim=1).cpu()]
        found = classification_metrics(truth, predicted, classes)
        return Evaluation(found.model_dump(), found.accuracy)

    true_boxes: list[list[Box]] = []
    scored_boxes: list[list[ScoredBox]] = []
    for images, targets in batches:
        outputs = model([image.to(device) for image in images])
        for target, output in zip(targets, outputs, strict=True):
            true_boxes.append(_boxes(target["boxes"], target["labels"], classes))
            scored_boxes.append(
                _boxes(output["boxes"], output["labels"], classes, output["scores"])  # type: ignore[misc]
            )
    detections = detection_metrics(true_boxes, scored_boxes, classes)
    found_metrics = detections.model_dump(exclude={"pr_curves"})
    return Evaluation(found_metrics, detections.map_50)


def _loss(
    model: nn.Module, images: Any, targets: Any, task: Task, device: torch.device
) -> torch.Tensor:
    if task is Task.CLASSIFICATION:
        logits = model(_to_device(images, device))
        return nn.functional.cross_entropy(logits, targets.to(device))
    images = [image.to(device) for image in images]
    targets = [{name: value.to(device) for name, value in target.items()} for target in targets]
    losses: dict[str, torch.Tensor] = model(images, targets)
    return sum(losses.values(), torch.zeros((), device=device))


def _to_device(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    images = images.to(device, non_blocking=True)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return images


def _boxes(
    boxes: torch.Tensor,
    labels: torch.Tensor,
    classes: list[str],
    scores: torch.Tensor | None = None,
) -> list[Any]:
    found: list[Any] = []
    for number, (corners, label) in enumerate(zip(boxes.tolist(), labels.tolist(), strict=True)):
        x1, y1, x2, y2 = corners
        name = classes[int(label) - 1]
        if scores is None:
            found.append(Box(label=name, x1=x1, y1=y1, x2=x2, y2=y2))
        else:
            score = float(scores[number])
            found.append(ScoredBox(label=name, x1=x1, y1=y1, x2=x2, y2=y2, score=score))
    return found


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
