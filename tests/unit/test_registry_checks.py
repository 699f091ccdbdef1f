"""The checks an ONNX file and its card pass before registration, and the shared inference."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from stek.datasets.manifest import Task
from stek.modelcard import ModelCard, Normalisation
from stek.registry import checks
from stek.registry.checks import ModelRejected
from stek.registry.inference import LoadedModel, SessionCache, new_session, preprocess
from stek.registry.records import ModelVersion


def classifier(
    opset: int = 17, classes: int = 2, height: int = 8, width: int = 8
) -> onnx.ModelProto:
    weights = numpy_helper.from_array(np.ones((classes, 3), dtype=np.float32), "weights")
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "weights"], ["logits"], transB=1),
    ]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, height, width])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", classes])
    graph = helper.make_graph(nodes, "classifier", [image], [logits], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def card(**changes: object) -> ModelCard:
    fields: dict[str, object] = {
        "name": "grader",
        "tenant": "greenhouse-a",
        "task": Task.CLASSIFICATION,
        "architecture": "tiny",
        "classes": ["good", "bad"],
        "input_size": (8, 8),
    }
    return ModelCard.model_validate(fields | changes)


def signature_of(model: onnx.ModelProto) -> checks.ModelSignature:
    return checks.read_signature(model, 17)


def test_a_good_model_passes_and_its_signature_is_read() -> None:
    model = classifier()
    parsed = checks.parse_model(model.SerializeToString())

    checks.check_graph(model.SerializeToString(), {})
    signature = signature_of(parsed)
    checks.check_card(card(), "greenhouse-a", "grader", signature)

    assert [(s.name, s.dtype, s.shape) for s in signature.inputs] == [
        ("image", "float32", ["n", 3, 8, 8])
    ]
    assert [(s.name, s.shape) for s in signature.outputs] == [("logits", ["n", 2])]


@pytest.mark.parametrize("opset", [9, 99])
def test_opset_outside_the_range_is_refused(opset: int) -> None:
    with pytest.raises(ModelRejected) as refused:
        checks.check_opset(classifier(opset=opset), 11, 23)
    assert refused.value.reason == "unsupported_opset"


def test_bytes_that_are_not_onnx_are_refused() -> None:
    with pytest.raises(ModelRejected) as refused:
        checks.parse_model(b"\xff\xd8\xff\xe0 not a model at all")
    assert refused.value.reason == "not_onnx"


@pytest.mark.parametrize(
    "location",
    ["../other/weights.bin", "/etc/weights.bin", "a/../../weights.bin", "s3://bucket/w.bin", ""],
)
def test_external_data_outside_the_prefix_is_refused(location: str) -> None:
    model = classifier()
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)

    with pytest.raises(ModelRejected) as refused:
        checks.external_data_locations(model)

    assert refused.value.reason == "external_data_outside_prefix"


def test_external_data_in_a_subfolder_is_fine() -> None:
    model = classifier()
    tensor = model.graph.initializer[0]
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="./data/weights.bin")

    assert checks.external_data_locations(model) == ["data/weights.bin"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"tenant": "someone-else"}, "card_mismatch"),
        ({"classes": ["good", "bad", "ugly"]}, "signature_mismatch"),
        ({"input_size": (16, 16)}, "signature_mismatch"),
        ({"task": Task.DETECTION}, "signature_mismatch"),
        ({"outputs": {"scores": "logits"}}, "signature_mismatch"),
    ],
    ids=["other-tenant", "class-count", "input-size", "task", "renamed-output"],
)
def test_a_card_that_does_not_fit_the_graph_is_refused(
    changes: dict[str, object], reason: str
) -> None:
    signature = signature_of(classifier())

    with pytest.raises(ModelRejected) as refused:
        checks.check_card(card(**changes), "greenhouse-a", "grader", signature)

    assert refused.value.reason == reason


def test_a_card_that_is_not_a_card_is_refused() -> None:
    with pytest.raises(ModelRejected) as refused:
        checks.parse_card(b'{"name": "grader"}')
    assert refused.value.reason == "card_invalid"


def test_preprocessing_follows_the_card() -> None:
    normalisation = Normalisation(mean=[0.5, 0.5, 0.5], std=[0.25, 0.5, 1.0], scale=1 / 255)
    image = Image.new("RGB", (20, 10), (255, 0, 51))

    tensor = preprocess(image, card(normalisation=normalisation))

    assert tensor.shape == (1, 3, 8, 8)
    assert tensor.dtype == np.float32
    assert tensor[0, :, 0, 0] == pytest.approx([2.0, -1.0, -0.3])


def test_session_cache_loads_once_per_sha256_and_evicts_the_oldest() -> None:
    model = classifier()
    content = model.SerializeToString()
    versions = [
        ModelVersion(
            tenant="greenhouse-a",
            name="grader",
            version=number,
            task=Task.CLASSIFICATION,
            card=card(),
            lineage=card().lineage,
            sha256=f"{number:064x}",
            size=len(content),
            signature=signature_of(model),
            s3_uri="s3://b/k",
            bucket="b",
            key="k",
            source_id="job-1",
        )
        for number in (1, 2)
    ]
    cache = SessionCache(capacity=1)

    first = cache.get(versions[0], lambda _: new_session(content))
    again = cache.get(versions[0], lambda _: new_session(content))
    cache.get(versions[1], lambda _: new_session(content))
    cache.get(versions[0], lambda _: new_session(content))

    assert first is again
    assert isinstance(first, LoadedModel)
    assert cache.loads == 3
    scores = first.predict(Image.new("RGB", (8, 8), (255, 255, 255))).scores
    assert scores == pytest.approx({"good": 0.5, "bad": 0.5})
