"""Registration: an ONNX file that lands in the models bucket becomes the next version of its
model, or is rejected with a reason and leaves nothing registered.

The runner (or a scientist) puts `card.json` first, then `model.onnx`, under
`{tenant}/{model_name}/{source_id}/`; the `.onnx` object's bucket event starts this.
"""

from __future__ import annotations

import hashlib
import posixpath

from stek.auth import validate_tenant
from stek.bucket_events import ObjectCreated
from stek.errors import InvalidInput, NotFound
from stek.modelcard import ModelCard
from stek.observability import logger
from stek.registry import checks
from stek.registry.checks import ModelRejected
from stek.registry.objects import ModelObjects, ObjectMissing
from stek.registry.records import ModelVersion
from stek.registry.store import ModelRegistry, validate_name
from stek.services import services


class ModelKey:
    """`{tenant}/{model_name}/{source_id}/{file}.onnx`, taken apart."""

    def __init__(self, key: str) -> None:
        parts = key.split("/")
        self.tenant = parts[0]
        self.name = parts[1] if len(parts) > 1 else ""
        self.source_id = parts[2] if len(parts) > 2 else ""
        self.folder = posixpath.dirname(key)
        self.well_formed = len(parts) == 4 and all(parts)
        self.known_tenant = _is_tenant(self.tenant)

    def check(self) -> None:
        if not self.well_formed:
            raise ModelRejected(
                "bad_key", "models go to {tenant}/{model_name}/{source_id}/model.onnx"
            )
        try:
            validate_name(self.name)
        except InvalidInput as error:
            raise ModelRejected("bad_key", error.detail) from error


def _is_tenant(tenant: str) -> bool:
    try:
        validate_tenant(tenant)
    except InvalidInput:
        return False
    return True


def registry() -> ModelRegistry:
    return ModelRegistry(services().settings.catalog_table, services().dynamodb)


def register_model_object(created: ObjectCreated) -> ModelVersion | None:
    """Register the object, or record why not. Transient AWS errors propagate (retry)."""
    if not created.key.endswith(".onnx"):
        logger.info("object is not a model file", key=created.key)
        return None
    where = ModelKey(created.key)
    logger.append_keys(tenant=where.tenant, model=where.name, key=created.key)
    try:
        candidate = _checked_candidate(created, where)
    except ObjectMissing:
        logger.warning("model object gone before registration", key=created.key)
        return None
    except ModelRejected as rejection:
        _record_rejection(created, where, rejection)
        return None

    version, new = registry().register(candidate, created.dedup_key)
    services().events.record(
        "model.registered",
        version.tenant,
        version.name,
        correlation_id=version.lineage.training_job_id or version.source_id,
        dedup=created.dedup_key,
        version=version.version,
        sha256=version.sha256,
        s3_uri=version.s3_uri,
        training_job_id=version.lineage.training_job_id,
        dataset_id=version.lineage.dataset_id,
        dataset_version=version.lineage.dataset_version,
    )
    logger.info("model registered", version=version.version, new=new, sha256=version.sha256)
    return version


def _checked_candidate(created: ObjectCreated, where: ModelKey) -> ModelVersion:
    """Every check, cheapest first; the version number is filled in by the registry."""
    settings = services().settings
    objects = ModelObjects(services().s3, created.bucket)
    where.check()

    size = objects.size(created.key, created.version_id)
    _check_size(size, settings.max_model_bytes)
    content = objects.read(created.key, created.version_id)
    model = checks.parse_model(content)

    locations = checks.external_data_locations(model)
    external = {location: _read_external(objects, where, location) for location in locations}
    _check_size(size + sum(len(data) for data in external.values()), settings.max_model_bytes)

    opset = checks.check_opset(model, settings.model_opset_min, settings.model_opset_max)
    checks.check_graph(content, external)
    signature = checks.read_signature(model, opset)

    card = _read_card(objects, where)
    checks.check_card(card, where.tenant, where.name, signature)
    _check_same_task(card, where)

    return ModelVersion(
        tenant=where.tenant,
        name=where.name,
        version=0,
        task=card.task,
        card=card,
        lineage=card.lineage,
        sha256=hashlib.sha256(content).hexdigest(),
        size=size,
        signature=signature,
        s3_uri=f"s3://{created.bucket}/{created.key}",
        bucket=created.bucket,
        key=created.key,
        object_version_id=created.version_id,
        external_data=locations,
        source_id=where.source_id,
    )


def _check_size(size: int, limit: int) -> None:
    if size > limit:
        raise ModelRejected("too_large", f"the model is {size} bytes, over the limit of {limit}")


def _read_external(objects: ModelObjects, where: ModelKey, location: str) -> bytes:
    try:
        return objects.read(posixpath.join(where.folder, location))
    except ObjectMissing as error:
        raise ModelRejected(
            "external_data_missing", f"external data {location} is not beside model.onnx"
        ) from error


def _read_card(objects: ModelObjects, where: ModelKey) -> ModelCard:
    try:
        content = objects.read(posixpath.join(where.folder, "card.json"))
    except ObjectMissing as error:
        raise ModelRejected(
            "card_missing", "put card.json beside model.onnx before the model itself"
        ) from error
    return checks.parse_card(content)


def _check_same_task(card: ModelCard, where: ModelKey) -> None:
    try:
        model = registry().model(where.tenant, where.name)
    except NotFound:
        return  # the first version sets the model's task
    if model.task is not card.task:
        raise ModelRejected(
            "task_mismatch",
            f"model {where.name} holds {model.task.value} versions; this card says "
            f"{card.task.value}: register it under another name",
        )


def _record_rejection(created: ObjectCreated, where: ModelKey, rejection: ModelRejected) -> None:
    logger.info("model rejected", reason=rejection.reason, detail=rejection.detail)
    if not where.known_tenant:
        return  # no tenant to tell: the log line above is all there is
    services().events.record(
        "model.rejected",
        where.tenant,
        where.name or created.key,
        correlation_id=where.source_id or created.dedup_key,
        dedup=created.dedup_key,
        key=created.key,
        reason=rejection.reason,
        detail=rejection.detail,
    )
