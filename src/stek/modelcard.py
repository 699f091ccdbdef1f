"""The model card: what a model is, how it was made and how well it does.

The runner (or a person uploading their own model) writes `card.json` next to `model.onnx`
in the models bucket, card first: the registry is triggered by the `.onnx` object and reads
the card beside it. Layout: `{tenant}/{model_name}/{source_id}/model.onnx` and `card.json`,
where `source_id` is the training job id or an upload id.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from stek.datasets.manifest import Task


class Normalisation(BaseModel):
    mean: list[float] = Field(default_factory=lambda: [0.485, 0.456, 0.406])
    std: list[float] = Field(default_factory=lambda: [0.229, 0.224, 0.225])
    scale: float = 1 / 255  # pixel values are multiplied by this before mean/std


class Parity(BaseModel):
    """How closely onnxruntime reproduces PyTorch on validation images."""

    max_abs_diff: float
    tolerance: float
    images: int
    passed: bool


class Lineage(BaseModel):
    training_job_id: str | None = None
    dataset_id: str | None = None
    dataset_version: int | None = None


class ModelCard(BaseModel):
    name: str
    tenant: str
    task: Task
    architecture: str
    classes: list[str]
    input_size: tuple[int, int]  # height, width
    normalisation: Normalisation = Field(default_factory=Normalisation)
    metrics: dict[str, Any] = Field(default_factory=dict)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    lineage: Lineage = Field(default_factory=Lineage)
    code_version: str = ""
    parity: Parity | None = None
    outputs: dict[str, str] = Field(
        default_factory=dict,
        description="ONNX output names and what they hold, e.g. boxes, scores, labels, logits",
    )
