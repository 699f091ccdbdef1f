"""What the registry keeps: models, their versions, aliases, promotion rules and validations."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from stek.datasets.manifest import Split, Task
from stek.modelcard import Lineage, ModelCard


def now() -> datetime:
    return datetime.now(UTC)


class TensorSpec(BaseModel):
    """One input or output of the ONNX graph; a dimension is a size, a name, or None."""

    name: str
    dtype: str
    shape: list[int | str | None]


class ModelSignature(BaseModel):
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    opset: int
    ir_version: int


class ModelVersion(BaseModel):
    """One registered ONNX file of a model, immutable once written."""

    tenant: str
    name: str
    version: int
    task: Task
    card: ModelCard
    lineage: Lineage
    sha256: str
    size: int
    signature: ModelSignature
    s3_uri: str
    bucket: str
    key: str
    object_version_id: str | None = None
    external_data: list[str] = Field(default_factory=list)  # locations beside the model
    source_id: str
    registered_at: datetime = Field(default_factory=now)


class AliasChange(BaseModel):
    alias: str
    version: int
    previous_version: int | None = None
    actor: str = "system"
    changed_at: datetime = Field(default_factory=now)


class PromotionRule(BaseModel):
    """A version may take an alias only with a validation on this dataset version whose
    `metric` is at least `min`."""

    metric: str = Field(description="a validation metric, e.g. map_50, map_50_95, accuracy")
    min: float
    dataset_id: str
    dataset_version: int = Field(ge=1)
    split: Split | None = Field(default=None, description="any split when absent")
    aliases: list[str] | None = Field(
        default=None, description="the aliases the rule guards; every alias when absent"
    )

    def guards(self, alias: str) -> bool:
        return self.aliases is None or alias in self.aliases


class Model(BaseModel):
    """A named model of a tenant: the counter of its versions and its promotion rule."""

    tenant: str
    name: str
    task: Task
    latest_version: int
    promotion_rule: PromotionRule | None = None
    created_at: datetime = Field(default_factory=now)


class ValidationStatus(StrEnum):
    QUEUED = "QUEUED"  # too large for the function: waiting for a runner
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class ValidationMessage(BaseModel):
    """A queued validation on the training queue, for the next free runner."""

    kind: Literal["validation"] = "validation"
    tenant: str
    name: str
    version: int
    validation_id: str


class Validation(BaseModel):
    """A model version run over a dataset version's split, with what came out of it."""

    validation_id: str
    tenant: str
    name: str
    version: int
    dataset_id: str
    dataset_version: int
    split: Split
    task: Task
    images: int
    metrics: dict[str, Any]
    artifacts: dict[str, str] = Field(default_factory=dict)  # artifact name -> key
    artifacts_bucket: str = ""
    status: ValidationStatus = ValidationStatus.SUCCEEDED
    error: str | None = None
    created_at: datetime = Field(default_factory=now)
