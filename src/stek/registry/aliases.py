"""Aliases (production, staging, ...) point at versions; a rollback is pointing back.

A model may carry a promotion rule: a version takes a guarded alias only when it has a
validation on the rule's dataset version whose metric reaches the rule's minimum. The rule
holds for every move of a guarded alias, rollbacks included, so a rule tightened later also
stops a rollback to a version that no longer meets it.
"""

from __future__ import annotations

from stek.errors import Conflict
from stek.registry.records import AliasChange, ModelVersion, PromotionRule, ValidationStatus
from stek.registry.store import ModelRegistry, validate_name
from stek.services import services


def point_alias(
    registry: ModelRegistry, tenant: str, name: str, alias: str, version: int, actor: str
) -> AliasChange:
    """Point `alias` at `version` (refused by the promotion rule when it does not meet it)."""
    validate_name(alias, "alias")
    model = registry.model(tenant, name)
    target = registry.version(tenant, name, version)
    if model.promotion_rule and model.promotion_rule.guards(alias):
        check_promotion(registry, model.promotion_rule, target, alias)

    previous = registry.aliases(tenant, name).get(alias)
    change = AliasChange(alias=alias, version=version, previous_version=previous, actor=actor)
    if previous == version:
        return change  # already there: nothing to write, nothing to tell
    registry.point_alias(tenant, name, change)
    services().events.record(
        "model.alias.changed",
        tenant,
        name,
        actor=actor,
        alias=alias,
        version=version,
        previous_version=previous,
    )
    return change


def check_promotion(
    registry: ModelRegistry, rule: PromotionRule, version: ModelVersion, alias: str
) -> None:
    """Refuse with a 409 that says what is missing or how far the metric falls short."""
    validations = [
        validation
        for validation in registry.validations(version.tenant, version.name, version.version)
        if validation.status is ValidationStatus.SUCCEEDED
        and validation.dataset_id == rule.dataset_id
        and validation.dataset_version == rule.dataset_version
        and (rule.split is None or validation.split is rule.split)
    ]
    where = f"dataset {rule.dataset_id} version {rule.dataset_version}"
    if not validations:
        raise Conflict(
            f"alias {alias} needs a validation of version {version.version} on {where}; "
            f"POST /v1/models/{version.name}/versions/{version.version}/validations first",
            reason="promotion_rule",
        )
    latest = validations[-1]
    value = latest.metrics.get(rule.metric)
    if not isinstance(value, int | float):
        raise Conflict(
            f"validation {latest.validation_id} has no metric {rule.metric}",
            reason="promotion_rule",
        )
    if value < rule.min:
        raise Conflict(
            f"version {version.version} has {rule.metric} {value:.4f} on {where}; "
            f"alias {alias} needs at least {rule.min}",
            reason="promotion_rule",
            metric=rule.metric,
            value=value,
            min=rule.min,
        )
