"""What a scientist asks for when starting training, and what a job looks like to them."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from stek.datasets.manifest import Task

MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


class Architecture(StrEnum):
    MOBILENET_V3_SMALL = "mobilenet_v3_small"
    RESNET18 = "resnet18"
    SSDLITE320_MOBILENET_V3_LARGE = "ssdlite320_mobilenet_v3_large"
    FASTERRCNN_MOBILENET_V3_LARGE_320_FPN = "fasterrcnn_mobilenet_v3_large_320_fpn"


ARCHITECTURE_TASK: dict[Architecture, Task] = {
    Architecture.MOBILENET_V3_SMALL: Task.CLASSIFICATION,
    Architecture.RESNET18: Task.CLASSIFICATION,
    Architecture.SSDLITE320_MOBILENET_V3_LARGE: Task.DETECTION,
    Architecture.FASTERRCNN_MOBILENET_V3_LARGE_320_FPN: Task.DETECTION,
}


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        return self in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED}


class Hyperparameters(BaseModel):
    """How to train. The defaults give a small model in about a minute on a laptop CPU."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(default=10, ge=1, le=1000)
    batch_size: int = Field(default=16, ge=1, le=1024)
    lr: float = Field(default=1e-3, gt=0, le=10, description="peak learning rate")
    image_size: int = Field(default=224, ge=32, le=1280, description="square input side in pixels")
    optimizer: Literal["adamw", "sgd"] = "adamw"
    weight_decay: float = Field(default=1e-4, ge=0, le=1)
    momentum: float = Field(default=0.9, ge=0, lt=1, description="SGD only")
    augment: bool = True
    workers: int = Field(default=0, ge=0, le=32, description="data loader worker processes")
    weights_uri: str | None = Field(
        default=None, description="s3://bucket/key of a PyTorch state dict to start from"
    )
    parity_tolerance: float = Field(
        default=1e-3, gt=0, le=1, description="largest ONNX vs PyTorch difference accepted"
    )

    @field_validator("image_size")
    @classmethod
    def _multiple_of_32(cls, value: int) -> int:
        # The backbones downsample by 32; other sizes leave ragged feature maps.
        if value % 32:
            raise ValueError(f"image_size must be a multiple of 32, e.g. {value // 32 * 32 or 32}")
        return value

    @field_validator("weights_uri")
    @classmethod
    def _s3_uri(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^s3://[^/]+/.+", value):
            raise ValueError("weights_uri must look like s3://bucket/key")
        return value


class TrainingRequest(BaseModel):
    """The body of POST /v1/training-jobs."""

    model_config = ConfigDict(extra="forbid")

    dataset_id: str = Field(min_length=1, max_length=128)
    version: int = Field(ge=1)
    task: Task
    architecture: Architecture
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    model_name: str = Field(description="registry name; lower case letters, digits, '.', '_', '-'")

    @field_validator("model_name")
    @classmethod
    def _model_name(cls, value: str) -> str:
        if not MODEL_NAME.match(value):
            raise ValueError("model_name must be 1-63 lower case letters, digits, '.', '_' or '-'")
        return value


class EpochReport(BaseModel):
    """What one finished epoch measured on the validation split."""

    epoch: int
    train_loss: float
    metrics: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0


class Artifacts(BaseModel):
    checkpoint_uri: str | None = None
    model_uri: str | None = None
    card_uri: str | None = None


class TrainingJob(BaseModel):
    """A training job as the API shows it."""

    job_id: str
    tenant: str
    status: JobStatus
    request: TrainingRequest
    classes: list[str] = Field(default_factory=list)
    progress: float = 0.0
    epochs_done: int = 0
    epochs: list[EpochReport] = Field(default_factory=list)
    best_metric: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    error: str | None = None
    last_error: str | None = None
    attempts: int = 0
    cancel_requested: bool = False
    correlation_id: str = ""
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: float | None = None


class TrainingJobPage(BaseModel):
    jobs: list[TrainingJob]
    next_cursor: str | None = None


class TrainingMessage(BaseModel):
    """The body of a message on the training queue: which job to train."""

    tenant: str
    job_id: str
    correlation_id: str = ""
