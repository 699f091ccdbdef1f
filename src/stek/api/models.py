"""Model routes: the registry's versions, aliases, promotion rules, validations, predictions."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import BaseModel, Field

from stek.auth import Principal, Role
from stek.datasets.manifest import Split, Task
from stek.errors import InvalidInput, NotFound, PayloadTooLarge
from stek.http import caller
from stek.metrics import ScoredBox
from stek.modelcard import Lineage, ModelCard
from stek.registry.aliases import point_alias
from stek.registry.inference import open_image
from stek.registry.objects import ModelObjects
from stek.registry.records import (
    AliasChange,
    Model,
    ModelSignature,
    ModelVersion,
    PromotionRule,
    Validation,
    ValidationStatus,
)
from stek.registry.store import ModelRegistry, validate_name
from stek.registry.validation import loaded_model, validate
from stek.services import services

router = Router()

READERS = (Role.SCIENTIST, Role.OPERATOR)
PREDICTORS = (Role.SCIENTIST, Role.MACHINE)

ModelName = Annotated[str, Path(description="the model's name", max_length=63)]
VersionRef = Annotated[str, Path(description="a version number, or an alias such as production")]


# ------------------------------------------------------------------ bodies and answers


class ModelPage(BaseModel):
    models: list[Model]
    next_cursor: str | None = None


class VersionBrief(BaseModel):
    version: int
    sha256: str
    source_id: str
    lineage: Lineage
    card_metrics: dict[str, Any]
    registered_at: datetime
    aliases: list[str]


class ModelDetail(BaseModel):
    model: Model
    aliases: dict[str, int]
    alias_history: list[AliasChange] = Field(description="newest first; a rollback is one PUT")
    versions: list[VersionBrief]
    next_cursor: str | None = None


class ValidationBrief(BaseModel):
    validation_id: str
    dataset_id: str
    dataset_version: int
    split: Split
    images: int
    headline: dict[str, float]
    created_at: datetime


class VersionDetail(BaseModel):
    name: str
    version: int
    task: Task
    card: ModelCard
    lineage: Lineage
    sha256: str
    size: int
    signature: ModelSignature
    s3_uri: str
    source_id: str
    registered_at: datetime
    aliases: list[str]
    validations: list[ValidationBrief]
    download_url: str = Field(description="expires after the presign expiry of the settings")


class AliasRequest(BaseModel):
    version: int = Field(ge=1, description="the version the alias should point at")


class AliasAnswer(BaseModel):
    alias: str
    version: int
    previous_version: int | None
    history: list[AliasChange]


class ValidationRequest(BaseModel):
    dataset_id: str = Field(min_length=1)
    version: int = Field(ge=1, description="the dataset version")
    split: Split = Split.VAL


class ValidationAnswer(BaseModel):
    validation: Validation
    urls: dict[str, str] = Field(description="artifact name -> expiring download URL")


class PredictionRequest(BaseModel):
    image_base64: str = Field(min_length=1)


class Detection(BaseModel):
    box: tuple[float, float, float, float] = Field(description="x1, y1, x2, y2 in image pixels")
    label: str
    score: float


class PredictionAnswer(BaseModel):
    name: str
    version: int
    task: Task
    detections: list[Detection] = Field(default_factory=list)
    scores: dict[str, float] = Field(default_factory=dict)
    label: str | None = None


class UploadAnswer(BaseModel):
    upload_id: str
    card_key: str
    model_key: str
    card_url: str = Field(description="PUT card.json here first")
    model_url: str = Field(description="then PUT model.onnx here; registration follows")
    expires_in: int


# ----------------------------------------------------------------------------- routes


@router.get("/v1/models", tags=["models"], summary="List the models")
def list_models(
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query()] = None,
) -> ModelPage:
    principal = _reader()
    models, next_cursor = _registry().models(principal.tenant, limit=limit, cursor=cursor)
    return ModelPage(models=models, next_cursor=next_cursor)


@router.get("/v1/models/<name>", tags=["models"], summary="A model: versions, aliases, history")
def get_model(
    name: ModelName,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query()] = None,
) -> ModelDetail:
    principal = _reader()
    registry = _registry()
    model = registry.model(principal.tenant, name)
    aliases = registry.aliases(principal.tenant, name)
    versions, next_cursor = registry.versions(principal.tenant, name, limit=limit, cursor=cursor)
    return ModelDetail(
        model=model,
        aliases=aliases,
        alias_history=registry.alias_history(principal.tenant, name),
        versions=[_brief(version, aliases) for version in versions],
        next_cursor=next_cursor,
    )


@router.get(
    "/v1/models/<name>/versions/<version>",
    tags=["models"],
    summary="A version: card, metrics, lineage, validations and a download URL",
)
def get_version(name: ModelName, version: VersionRef) -> VersionDetail:
    principal = _reader()
    registry = _registry()
    found = _version(registry, principal, name, version)
    aliases = registry.aliases(principal.tenant, name)
    settings = services().settings
    objects = ModelObjects(services().s3, found.bucket)
    return VersionDetail(
        **found.model_dump(
            exclude={"tenant", "bucket", "key", "object_version_id", "external_data"}
        ),
        aliases=sorted(alias for alias, number in aliases.items() if number == found.version),
        validations=[
            _validation_brief(v)
            for v in registry.validations(principal.tenant, name, found.version)
        ],
        download_url=objects.presign(found.key, found.object_version_id, settings.presign_expiry_s),
    )


@router.put(
    "/v1/models/<name>/aliases/<alias>",
    tags=["models"],
    summary="Point an alias at a version (a rollback is pointing it back)",
)
def put_alias(
    name: ModelName,
    alias: Annotated[str, Path(max_length=63)],
    request: Annotated[AliasRequest, Body()],
) -> AliasAnswer:
    principal = caller(router)
    principal.require(Role.SCIENTIST)
    registry = _registry()
    change = point_alias(
        registry, principal.tenant, name, alias, request.version, actor=principal.key_id
    )
    history = [c for c in registry.alias_history(principal.tenant, name) if c.alias == alias]
    return AliasAnswer(
        alias=alias,
        version=change.version,
        previous_version=change.previous_version,
        history=history,
    )


@router.put(
    "/v1/models/<name>/promotion-rule",
    tags=["models"],
    summary="Set the rule a version must meet to take an alias (aliases: [] lifts it)",
)
def put_promotion_rule(name: ModelName, rule: Annotated[PromotionRule, Body()]) -> PromotionRule:
    principal = caller(router)
    principal.require(Role.SCIENTIST)
    _registry().set_promotion_rule(principal.tenant, name, rule)
    services().events.record(
        "model.promotion_rule.changed",
        principal.tenant,
        name,
        actor=principal.key_id,
        **rule.model_dump(mode="json"),
    )
    return rule


@router.post(
    "/v1/models/<name>/uploads",
    tags=["models"],
    summary="Upload URLs for your own ONNX model and its card",
)
def create_upload(name: ModelName) -> UploadAnswer:
    principal = caller(router)
    principal.require(Role.SCIENTIST)
    validate_name(name)
    upload_id = f"upload-{uuid.uuid4().hex[:12]}"
    folder = f"{principal.tenant}/{name}/{upload_id}/"
    settings = services().settings
    urls = {
        file: services().s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": settings.models_bucket, "Key": folder + file},
            ExpiresIn=settings.presign_expiry_s,
        )
        for file in ("card.json", "model.onnx")
    }
    return UploadAnswer(
        upload_id=upload_id,
        card_key=folder + "card.json",
        model_key=folder + "model.onnx",
        card_url=urls["card.json"],
        model_url=urls["model.onnx"],
        expires_in=settings.presign_expiry_s,
    )


@router.post(
    "/v1/models/<name>/versions/<version>/validations",
    tags=["models"],
    summary="Validate a version on a dataset version's split: 201 done, or 202 queued for a runner",
)
def create_validation(
    name: ModelName, version: VersionRef, request: Annotated[ValidationRequest, Body()]
) -> tuple[ValidationAnswer, int]:
    principal = caller(router)
    principal.require(Role.SCIENTIST)
    registry = _registry()
    found = _version(registry, principal, name, version)
    validation = validate(
        registry, found, request.dataset_id, request.version, request.split, principal.key_id
    )
    # A split too large for the function is queued for a runner: accepted, not done yet.
    queued = validation.status is ValidationStatus.QUEUED
    return _validation_answer(validation), 202 if queued else 201


@router.get(
    "/v1/models/<name>/versions/<version>/validations/<validation_id>",
    tags=["models"],
    summary="A validation: metrics and expiring URLs of its pictures and detections",
)
def get_validation(
    name: ModelName, version: VersionRef, validation_id: Annotated[str, Path(max_length=64)]
) -> ValidationAnswer:
    principal = _reader()
    registry = _registry()
    found = _version(registry, principal, name, version)
    validation = registry.validation(principal.tenant, name, found.version, validation_id)
    return _validation_answer(validation)


@router.post(
    "/v1/models/<name>/versions/<version>/predictions",
    tags=["models"],
    summary="Run a version on one image: raw image body, or JSON {image_base64}",
)
def create_prediction(
    name: ModelName,
    version: VersionRef,
    min_score: Annotated[float, Query(ge=0, le=1)] = 0.5,
) -> PredictionAnswer:
    principal = caller(router)
    principal.require(*PREDICTORS)
    found = _version(_registry(), principal, name, version)
    image = open_image(_image_bytes(), services().settings.max_image_pixels)
    prediction = loaded_model(found).predict(image).above(min_score)
    return PredictionAnswer(
        name=found.name,
        version=found.version,
        task=found.task,
        detections=[_detection(box) for box in prediction.detections],
        scores=prediction.scores,
        label=prediction.label,
    )


# ------------------------------------------------------------------------------ steps


def _registry() -> ModelRegistry:
    return ModelRegistry(services().settings.catalog_table, services().dynamodb)


def _reader() -> Principal:
    principal = caller(router)
    principal.require(*READERS)
    return principal


def _version(registry: ModelRegistry, principal: Principal, name: str, ref: str) -> ModelVersion:
    """A version by number, or the one an alias points at."""
    if ref.isdigit():
        return registry.version(principal.tenant, name, int(ref))
    number = registry.aliases(principal.tenant, name).get(ref)
    if number is None:
        raise NotFound(f"model {name} has no version or alias {ref!r}")
    return registry.version(principal.tenant, name, number)


def _brief(version: ModelVersion, aliases: dict[str, int]) -> VersionBrief:
    return VersionBrief(
        version=version.version,
        sha256=version.sha256,
        source_id=version.source_id,
        lineage=version.lineage,
        card_metrics=version.card.metrics,
        registered_at=version.registered_at,
        aliases=sorted(alias for alias, number in aliases.items() if number == version.version),
    )


def _validation_brief(validation: Validation) -> ValidationBrief:
    headline = {
        name: float(value)
        for name, value in validation.metrics.items()
        if isinstance(value, int | float)
    }
    return ValidationBrief(
        validation_id=validation.validation_id,
        dataset_id=validation.dataset_id,
        dataset_version=validation.dataset_version,
        split=validation.split,
        images=validation.images,
        headline=headline,
        created_at=validation.created_at,
    )


def _validation_answer(validation: Validation) -> ValidationAnswer:
    objects = ModelObjects(services().s3, validation.artifacts_bucket)
    expiry = services().settings.presign_expiry_s
    urls = {name: objects.presign(key, None, expiry) for name, key in validation.artifacts.items()}
    return ValidationAnswer(validation=validation, urls=urls)


def _image_bytes() -> bytes:
    """The image of a prediction request: the raw body, or JSON {image_base64}."""
    event = router.current_event
    raw = event.body or ""
    content = base64.b64decode(raw) if event.is_base64_encoded else raw.encode()
    if len(content) > services().settings.max_upload_bytes:
        raise PayloadTooLarge(f"the image is over {services().settings.max_upload_bytes} bytes")
    content_type = (event.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        if not content:
            raise InvalidInput("send the image as the body, or JSON {image_base64}")
        return content
    try:
        request = PredictionRequest.model_validate(json.loads(content))
        return base64.b64decode(request.image_base64, validate=True)
    except (ValueError, binascii.Error) as error:
        raise InvalidInput(f"body must be JSON {{image_base64}}: {error}") from error


def _detection(box: ScoredBox) -> Detection:
    return Detection(box=(box.x1, box.y1, box.x2, box.y2), label=box.label, score=box.score)
