"""Train one job: from a frozen dataset version to a checked ONNX model in the models bucket.

How to run it:

    # the long-running runner: takes jobs from the training queue until stopped (SIGTERM)
    STEK_TRAINING_QUEUE_URL=... STEK_CATALOG_TABLE=... python -m gpu_runner
    # one job by id, without the queue (e.g. to retry one from the dead-letter queue by hand)
    python -m gpu_runner.train --tenant greenhouse-a --job-id job-0123456789abcdef0123

Both read the same STEK_* variables as the functions, and AWS_ENDPOINT_URL for an emulator.
A job goes: read the version's manifest -> fetch images into the local cache -> build the
model (from scratch, from the user's weights, or from this job's last checkpoint) -> train
and evaluate epoch by epoch, writing a checkpoint after each -> export the best epoch's model
to ONNX -> compare ONNX with PyTorch -> card.json, then model.onnx, to the models bucket.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gpu_runner import data, engine, export, models
from stek import __version__
from stek.datasets.manifest import (
    ManifestEntry,
    Split,
    Task,
    VersionSummary,
    get_version,
    read_manifest,
)
from stek.eventlog import EventLog
from stek.modelcard import Lineage, ModelCard
from stek.observability import logger
from stek.settings import Settings
from stek.training.jobs import JobStore
from stek.training.schema import Artifacts, EpochReport, TrainingJob

PARITY_IMAGES = 8


class JobRejected(Exception):
    """A job that cannot succeed however often it is retried (bad data, parity failure)."""


class Outcome(StrEnum):
    SUCCEEDED = "SUCCEEDED"
    CANCELLED = "CANCELLED"
    INTERRUPTED = "INTERRUPTED"  # the runner is shutting down; the job goes back to the queue
    LEASE_LOST = "LEASE_LOST"


@dataclass
class StopSignals:
    """Why training should stop between two steps; set by the heartbeat and signal handlers."""

    cancel: Callable[[], bool]
    shutdown: Callable[[], bool]
    lease_lost: Callable[[], bool]

    def any(self) -> bool:
        return self.cancel() or self.shutdown() or self.lease_lost()


@dataclass
class JobContext:
    settings: Settings
    s3: Any
    dynamodb: Any
    store: JobStore
    events: EventLog
    job: TrainingJob
    owner: str
    cache: data.ImageCache
    stop: StopSignals
    show_progress: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))


@dataclass
class Checkpoint:
    """Everything needed to continue a job exactly where it was left."""

    model: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any]
    epoch: int  # epochs fully done
    step: int  # steps done in the next epoch (a runner stopped mid-epoch)
    best_metric: float | None
    history: list[dict[str, Any]]
    config: dict[str, Any]
    best_metrics: dict[str, Any] = field(default_factory=dict)  # all of the best epoch's


@dataclass
class TrainingResult:
    outcome: Outcome
    artifacts: Artifacts = field(default_factory=Artifacts)
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Session:
    """The model and its optimisation state, and how far training has come."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    config: dict[str, Any]
    epoch: int = 0
    step: int = 0
    best: float | None = None
    best_metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict(),
            epoch=self.epoch,
            step=self.step,
            best_metric=self.best,
            history=self.history,
            config=self.config,
            best_metrics=self.best_metrics,
        )

    def restore(self, checkpoint: Checkpoint) -> None:
        self.model.load_state_dict(checkpoint.model)
        self.optimizer.load_state_dict(checkpoint.optimizer)
        self.scheduler.load_state_dict(checkpoint.scheduler)
        self.scaler.load_state_dict(checkpoint.scaler)
        self.epoch, self.step = checkpoint.epoch, checkpoint.step
        self.best, self.history = checkpoint.best_metric, checkpoint.history
        self.best_metrics = checkpoint.best_metrics


def train_job(context: JobContext) -> TrainingResult:
    """Train, checkpoint, export and hand over one leased job."""
    params = context.job.request.hyperparameters
    version = _version(context)
    train_set, val_set = _datasets(context, version)
    session = _session(context, version)
    val_batches = data.loader(val_set, batch_size=params.batch_size, workers=params.workers)

    while session.epoch < params.epochs:
        started = time.monotonic()
        result = _train_epoch(context, session, train_set, version.task)
        if result.stopped:
            session.step = result.steps
            return _stopped(context, session)
        session.scheduler.step()
        evaluation = engine.evaluate(
            session.model,
            val_batches,
            task=version.task,
            classes=version.classes,
            device=context.device,
        )
        _end_epoch(context, session, result, evaluation, version.task, time.monotonic() - started)

    return _export(context, session, version, val_set)


def _datasets(
    context: JobContext, version: VersionSummary
) -> tuple[data.ManifestDataset, data.ManifestDataset]:
    """The train and validation splits, every image in the local cache."""
    params = context.job.request.hyperparameters
    entries = read_manifest(context.s3, version)
    train_entries = data.split_entries(entries, Split.TRAIN)
    val_entries = data.split_entries(entries, Split.VAL) or data.split_entries(entries, Split.TEST)
    if not train_entries or not val_entries:
        raise JobRejected(
            f"version {version.version} has {len(train_entries)} train and {len(val_entries)} "
            "validation images; training needs both splits"
        )
    downloaded = context.cache.warm(entries)
    logger.info("images cached", images=len(entries), downloaded=downloaded)

    def dataset(entries: list[ManifestEntry], train: bool) -> data.ManifestDataset:
        transform = data.transforms(
            version.task, params.image_size, train=train, augment=params.augment and train
        )
        return data.ManifestDataset(
            entries, version.classes, version.task, context.cache.locate, transform
        )

    return dataset(train_entries, True), dataset(val_entries, False)


def _session(context: JobContext, version: VersionSummary) -> Session:
    """A fresh model (from scratch or the user's weights), or the job's last checkpoint."""
    job, request = context.job, context.job.request
    params = request.hyperparameters
    seed_everything(request.seed)
    model = models.build_model(request.architecture, len(version.classes), params.image_size)
    model.to(context.device)
    if context.device.type == "cuda":
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    optimizer = _optimizer(model, params.optimizer, params.lr, params.weight_decay, params.momentum)
    session = Session(
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.epochs),
        scaler=torch.amp.GradScaler(context.device.type, enabled=context.device.type == "cuda"),
        config=_resolved_config(job, version, context.device),
    )
    checkpoint = load_checkpoint(context.s3, context.settings.artifacts_bucket, job)
    if checkpoint is not None:
        session.restore(checkpoint)
        _replay_history(context, checkpoint)
        logger.info("job resumed", epoch=checkpoint.epoch, step=checkpoint.step)
    elif params.weights_uri:
        _load_user_weights(context.s3, model, params.weights_uri)
    return session


def _train_epoch(
    context: JobContext, session: Session, train_set: data.ManifestDataset, task: Task
) -> engine.EpochResult:
    request = context.job.request
    params = request.hyperparameters
    skip = session.step * params.batch_size
    order = data.epoch_order(len(train_set), request.seed, session.epoch, skip=skip)
    batches = data.loader(
        train_set, batch_size=params.batch_size, workers=params.workers, order=order
    )
    return engine.train_one_epoch(
        session.model,
        session.optimizer,
        session.scaler,
        batches,
        task=task,
        device=context.device,
        first_step=session.step,
        total_steps=-(-len(train_set) // params.batch_size),
        should_stop=context.stop.any,
        description=f"epoch {session.epoch + 1}/{params.epochs}",
        show_progress=context.show_progress,
    )


def _end_epoch(
    context: JobContext,
    session: Session,
    result: engine.EpochResult,
    evaluation: engine.Evaluation,
    task: Task,
    seconds: float,
) -> None:
    """Keep the best weights, write the checkpoint, then tell the job record and event log.

    The checkpoint goes first: a report of an epoch that no checkpoint holds would be
    trained again after a resume, and reported twice.
    """
    session.epoch, session.step = session.epoch + 1, 0
    report = EpochReport(
        epoch=session.epoch,
        train_loss=round(result.loss, 5),
        metrics=_headline(evaluation.metrics, task),
        seconds=round(seconds, 2),
    )
    session.history.append(report.model_dump())
    bucket = context.settings.artifacts_bucket
    if session.best is None or evaluation.primary > session.best:
        session.best = evaluation.primary
        session.best_metrics = {**evaluation.metrics, "epoch": session.epoch}
        _save_state(context.s3, bucket, _best_key(context.job), session.model.state_dict())
    uri = save_checkpoint(context.s3, bucket, context.job, session.checkpoint())
    _report_epoch(context, report, session.best, uri)


def seed_everything(seed: int) -> None:
    """The same seed gives the same initial weights, data order and augmentation."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    # warn_only: a few CUDA kernels have no deterministic version; they warn and run anyway.
    torch.use_deterministic_algorithms(True, warn_only=True)


def checkpoint_key(job: TrainingJob) -> str:
    return f"{job.tenant}/training-jobs/{job.job_id}/checkpoint.pt"


def save_checkpoint(s3: Any, bucket: str, job: TrainingJob, state: Checkpoint) -> str:
    _save_state(s3, bucket, checkpoint_key(job), state.__dict__)
    return f"s3://{bucket}/{checkpoint_key(job)}"


def load_checkpoint(s3: Any, bucket: str, job: TrainingJob) -> Checkpoint | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=checkpoint_key(job))["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    return Checkpoint(**torch.load(io.BytesIO(body), weights_only=True))


def _best_key(job: TrainingJob) -> str:
    return f"{job.tenant}/training-jobs/{job.job_id}/best-model.pt"


def _save_state(s3: Any, bucket: str, key: str, state: dict[str, Any]) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())


def _stopped(context: JobContext, session: Session) -> TrainingResult:
    if context.stop.lease_lost():
        # Another runner owns the job now; anything written here would overwrite its work.
        return TrainingResult(Outcome.LEASE_LOST)
    if context.stop.cancel():
        return TrainingResult(Outcome.CANCELLED)
    bucket = context.settings.artifacts_bucket
    uri = save_checkpoint(context.s3, bucket, context.job, session.checkpoint())
    logger.info("checkpoint saved on shutdown", epoch=session.epoch, step=session.step, uri=uri)
    return TrainingResult(Outcome.INTERRUPTED)


def _export(
    context: JobContext, session: Session, version: VersionSummary, val_set: data.ManifestDataset
) -> TrainingResult:
    """The best epoch's model to ONNX, checked against PyTorch, then card and model handed over."""
    job, params, model = context.job, context.job.request.hyperparameters, session.model
    best_state = _load_state(context.s3, context.settings.artifacts_bucket, _best_key(job))
    if best_state is not None:
        model.load_state_dict(best_state)
    images = [val_set[position][0] for position in range(min(PARITY_IMAGES, len(val_set)))]

    with tempfile.TemporaryDirectory(prefix="stek-export-") as folder:
        onnx_path = Path(folder) / "model.onnx"
        outputs = export.export_onnx(model, version.task, params.image_size, onnx_path)
        parity = export.check_parity(
            model, version.task, onnx_path, images, params.parity_tolerance
        )
        if not parity.passed:
            raise JobRejected(
                f"the ONNX model differs from PyTorch by {parity.max_abs_diff:.3g} on validation "
                f"images, more than the tolerance {parity.tolerance:g}"
            )
        card = ModelCard(
            name=job.request.model_name,
            tenant=job.tenant,
            task=version.task,
            architecture=job.request.architecture.value,
            classes=version.classes,
            input_size=(params.image_size, params.image_size),
            normalisation=data.normalisation(version.task),
            metrics={**session.best_metrics, "split": "val"},
            hyperparameters={**params.model_dump(), "seed": job.request.seed},
            lineage=Lineage(
                training_job_id=job.job_id,
                dataset_id=version.dataset_id,
                dataset_version=version.version,
            ),
            code_version=__version__,
            parity=parity,
            outputs=outputs,
        )
        prefix = f"{job.tenant}/{job.request.model_name}/{job.job_id}/"
        # Last check before the registry sees anything: only the lease holder hands over.
        context.store.heartbeat(
            job.tenant, job.job_id, context.owner, context.settings.training_lease_s
        )
        card_uri, model_uri = export.upload(
            context.s3, context.settings.models_bucket, prefix, card, onnx_path
        )
    logger.info(
        "model exported", job_id=job.job_id, model_uri=model_uri, parity=parity.max_abs_diff
    )
    artifacts = Artifacts(
        checkpoint_uri=f"s3://{context.settings.artifacts_bucket}/{checkpoint_key(job)}",
        model_uri=model_uri,
        card_uri=card_uri,
    )
    return TrainingResult(
        Outcome.SUCCEEDED,
        artifacts,
        {**card.metrics, "parity": parity.model_dump(), "device": context.device.type},
    )


def _load_state(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey:
        return None
    state: dict[str, Any] = torch.load(io.BytesIO(body), weights_only=True)
    return state


def _load_user_weights(s3: Any, model: nn.Module, uri: str) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except s3.exceptions.NoSuchKey as error:
        raise JobRejected(f"the weights file {uri} does not exist") from error
    try:
        state = torch.load(io.BytesIO(body), weights_only=True)
    except Exception as error:
        raise JobRejected(
            f"{uri} is not a PyTorch state dict of plain tensors (torch.save(model.state_dict()))"
        ) from error
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a stek checkpoint
    try:
        untouched = models.load_user_weights(model, state)
    except ValueError as error:
        raise JobRejected(f"{uri}: {error}") from error
    logger.info("user weights loaded", uri=uri, left_random=len(untouched))


def _optimizer(
    model: nn.Module, kind: str, lr: float, weight_decay: float, momentum: float
) -> torch.optim.Optimizer:
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    if kind == "sgd":
        return torch.optim.SGD(parameters, lr=lr, momentum=momentum, weight_decay=weight_decay)
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)


def _version(context: JobContext) -> VersionSummary:
    request = context.job.request
    version = get_version(
        context.dynamodb,
        context.settings.catalog_table,
        context.job.tenant,
        request.dataset_id,
        request.version,
    )
    if not version.frozen:
        raise JobRejected(f"dataset version {request.version} is {version.status}, not READY")
    return version


def _resolved_config(
    job: TrainingJob, version: VersionSummary, device: torch.device
) -> dict[str, Any]:
    return {
        "request": job.request.model_dump(mode="json"),
        "classes": version.classes,
        "task": version.task.value,
        "manifest_sha256": version.manifest_sha256,
        "device": device.type,
        "amp": device.type == "cuda",
        "torch": str(torch.__version__),
        "code_version": __version__,
    }


def _headline(metrics: dict[str, Any], task: Task) -> dict[str, Any]:
    """The numbers worth a line per epoch; the confusion matrix waits for the model card."""
    if task is Task.CLASSIFICATION:
        return {"accuracy": metrics["accuracy"], "per_class_f1": metrics["per_class_f1"]}
    keep = ("map_50", "map_50_95", "per_class_ap50", "precision", "recall")
    return {name: metrics[name] for name in keep}


def _report_epoch(context: JobContext, report: EpochReport, best: float | None, uri: str) -> None:
    job = context.job
    epochs = job.request.hyperparameters.epochs
    if report.epoch == 1 or not job.artifacts.checkpoint_uri:
        context.store.set_checkpoint(job.tenant, job.job_id, context.owner, uri)
    context.store.record_epoch(
        job.tenant, job.job_id, context.owner, report, epochs=epochs, best=best
    )
    context.events.record(
        "job.progress",
        job.tenant,
        job.job_id,
        correlation_id=job.correlation_id,
        dedup=f"{job.job_id}:progress:{report.epoch}",
        epoch=report.epoch,
        epochs=epochs,
        train_loss=report.train_loss,
        metrics=report.metrics,
    )
    logger.info(
        "epoch done",
        job_id=job.job_id,
        epoch=report.epoch,
        loss=report.train_loss,
        **report.metrics,
    )


def _replay_history(context: JobContext, checkpoint: Checkpoint) -> None:
    """Epoch reports are keyed by epoch, so rewriting them is harmless; a runner that died
    between its checkpoint and its report leaves nothing missing this way."""
    job = context.job
    for entry in checkpoint.history:
        report = EpochReport.model_validate(entry)
        context.store.record_epoch(
            job.tenant,
            job.job_id,
            context.owner,
            report,
            epochs=job.request.hyperparameters.epochs,
            best=checkpoint.best_metric,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train one stek training job, without the queue.")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--job-id", required=True)
    arguments = parser.parse_args(argv)

    from gpu_runner.runner import Runner

    outcome = Runner.from_environment().train_by_id(arguments.tenant, arguments.job_id)
    print(outcome)


if __name__ == "__main__":
    main()
