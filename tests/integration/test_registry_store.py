"""The registry's records: version numbers under concurrent registration, redeliveries."""

from __future__ import annotations

import pytest

from stek.datasets.manifest import Task
from stek.errors import Conflict
from stek.modelcard import ModelCard
from stek.registry.records import ModelSignature, ModelVersion, TensorSpec
from stek.registry.store import ModelRegistry
from stek.services import Services


def candidate(tenant: str, source: str) -> ModelVersion:
    card = ModelCard(
        name="grader",
        tenant=tenant,
        task=Task.CLASSIFICATION,
        architecture="tiny",
        classes=["good", "bad"],
        input_size=(8, 8),
    )
    return ModelVersion(
        tenant=tenant,
        name="grader",
        version=0,
        task=card.task,
        card=card,
        lineage=card.lineage,
        sha256="0" * 64,
        size=10,
        signature=ModelSignature(
            inputs=[TensorSpec(name="image", dtype="float32", shape=["n", 3, 8, 8])],
            outputs=[TensorSpec(name="logits", dtype="float32", shape=["n", 2])],
            opset=17,
            ir_version=8,
        ),
        s3_uri=f"s3://models/{tenant}/grader/{source}/model.onnx",
        bucket="models",
        key=f"{tenant}/grader/{source}/model.onnx",
        source_id=source,
    )


def test_a_stale_counter_read_retries_into_the_next_number(
    svc: Services, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given version 1, and a registration that first reads the counter before it moved
    registry = ModelRegistry(svc.settings.catalog_table, svc.dynamodb)
    registry.register(candidate(tenant, "job-1"), "models/a@1")
    real_latest = registry._latest_version
    reads: list[int] = []

    def stale_then_real(pk: str) -> int:
        reads.append(0 if not reads else real_latest(pk))
        return reads[-1]

    monkeypatch.setattr(registry, "_latest_version", stale_then_real)

    # When the second model registers
    version, new = registry.register(candidate(tenant, "job-2"), "models/b@1")

    # Then the conditional write refused the stale number and the retry took 2
    assert reads == [0, 1]
    assert (version.version, new) == (2, True)
    assert registry.model(tenant, "grader").latest_version == 2
    assert registry.version(tenant, "grader", 1).source_id == "job-1"
    assert registry.version(tenant, "grader", 2).source_id == "job-2"


def test_a_redelivered_object_gets_its_first_version_back(svc: Services, tenant: str) -> None:
    registry = ModelRegistry(svc.settings.catalog_table, svc.dynamodb)

    first, first_new = registry.register(candidate(tenant, "job-1"), "models/a@1")
    again, again_new = registry.register(candidate(tenant, "job-1"), "models/a@1")

    assert (first.version, first_new) == (1, True)
    assert (again.version, again_new) == (1, False)
    assert registry.model(tenant, "grader").latest_version == 1


def test_a_counter_that_keeps_moving_gives_up_with_a_conflict(
    svc: Services, tenant: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelRegistry(svc.settings.catalog_table, svc.dynamodb)
    registry.register(candidate(tenant, "job-1"), "models/a@1")
    monkeypatch.setattr(registry, "_latest_version", lambda pk: 0)  # always stale

    with pytest.raises(Conflict):
        registry.register(candidate(tenant, "job-2"), "models/b@1")

    versions, _ = registry.versions(tenant, "grader")
    assert [v.version for v in versions] == [1]
