"""Checks an ONNX file must pass before it becomes a model version.

Each failed check raises `ModelRejected` with a short reason code and a sentence that says
what to change. The checks read bytes only; nothing here talks to AWS.
"""

from __future__ import annotations

import posixpath
import tempfile
from pathlib import Path
from typing import Any

from stek.datasets.manifest import Task
from stek.errors import StekError
from stek.modelcard import ModelCard
from stek.registry.records import ModelSignature, TensorSpec

DEFAULT_DOMAINS = ("", "ai.onnx")
DETECTION_ROLES = ("boxes", "scores", "labels")
ROLES = frozenset({"logits", *DETECTION_ROLES})


class ModelRejected(StekError):
    """An uploaded model that cannot be registered; `reason` is a short machine-readable code."""

    status = 422
    title = "Rejected model"

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, reason=reason)
        self.reason = reason


def parse_model(content: bytes) -> Any:
    """The ModelProto in `content`, or a rejection when it is not an ONNX file at all."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model_from_string(content)
    except (DecodeError, ValueError, RuntimeError) as error:
        raise ModelRejected("not_onnx", f"the file is not an ONNX model: {error}") from error
    # Protobuf parses some foreign bytes without complaint; a model without IR version or
    # graph nodes is not one.
    if model.ir_version <= 0 or not model.graph.node:
        raise ModelRejected("not_onnx", "the file is not an ONNX model (no IR version or graph)")
    return model


def external_data_locations(model: Any) -> list[str]:
    """Where the model's external tensors live, relative to the model file, checked to stay
    inside the model's own prefix."""
    from onnx.external_data_helper import _get_all_tensors, uses_external_data

    locations: set[str] = set()
    for tensor in _get_all_tensors(model):
        if not uses_external_data(tensor):
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        locations.add(_inside_prefix(entries.get("location", ""), tensor.name))
    return sorted(locations)


def check_opset(model: Any, lowest: int, highest: int) -> int:
    """The default-domain opset, refused outside [lowest, highest]."""
    opsets = [entry.version for entry in model.opset_import if entry.domain in DEFAULT_DOMAINS]
    if not opsets:
        raise ModelRejected("unsupported_opset", "the model imports no default-domain opset")
    opset = max(opsets)
    if not lowest <= opset <= highest:
        raise ModelRejected(
            "unsupported_opset",
            f"opset {opset} is outside the supported {lowest}-{highest}; re-export with one inside",
        )
    return opset


def check_graph(content: bytes, external_files: dict[str, bytes]) -> None:
    """onnx.checker with the full check (shape inference in strict mode), on the file as it
    would be loaded, external data beside it."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="stek-model-") as folder:
        root = Path(folder)
        (root / "model.onnx").write_bytes(content)
        for location, data in external_files.items():
            path = root / location
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        try:
            onnx.checker.check_model(str(root / "model.onnx"), full_check=True)
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
            raise ModelRejected("malformed", f"onnx.checker refused the model: {error}") from error


def read_signature(model: Any, opset: int) -> ModelSignature:
    initializers = {tensor.name for tensor in model.graph.initializer}
    inputs = [_spec(value) for value in model.graph.input if value.name not in initializers]
    outputs = [_spec(value) for value in model.graph.output]
    return ModelSignature(inputs=inputs, outputs=outputs, opset=opset, ir_version=model.ir_version)


def parse_card(content: bytes) -> ModelCard:
    try:
        return ModelCard.model_validate_json(content)
    except ValueError as error:
        raise ModelRejected(
            "card_invalid", f"card.json is not a valid model card: {error}"
        ) from error


def check_card(card: ModelCard, tenant: str, name: str, signature: ModelSignature) -> None:
    """The card belongs to this tenant and name, and describes the graph it sits beside."""
    if card.tenant != tenant or card.name != name:
        raise ModelRejected(
            "card_mismatch",
            f"card.json is for {card.tenant}/{card.name} but sits under {tenant}/{name}",
        )
    if not card.classes:
        raise ModelRejected("card_invalid", "card.json lists no classes")
    _check_input(card, signature)
    _check_outputs(card, signature)


def output_names(card: ModelCard, signature: ModelSignature) -> dict[str, str]:
    """What each role (logits, boxes, scores, labels) is called in the graph.

    `card.outputs` maps ONNX output names to what they hold: a role name renames an output
    (`{"out0": "logits"}`); a description (the runner writes `{"logits": "class scores ..."}`)
    leaves the output name as its role. Without `card.outputs` the names are the roles.
    """
    roles = {spec.name: spec.name for spec in signature.outputs}
    for output, meaning in card.outputs.items():
        if meaning in ROLES:
            roles.pop(output, None)
            roles[meaning] = output
    return roles


def _inside_prefix(location: str, tensor: str) -> str:
    # The model's prefix is its folder: a location must stay under it once normalised.
    plain = location.replace("\\", "/")
    normal = posixpath.normpath(plain) if plain else ""
    leaves = normal.startswith("..") or posixpath.isabs(normal) or ":" in normal
    if not normal or normal == "." or leaves or ".." in plain.split("/"):
        raise ModelRejected(
            "external_data_outside_prefix",
            f"tensor {tensor} keeps its data at {location!r}; external data must sit beside "
            "model.onnx in the same folder",
        )
    return normal


def _spec(value: Any) -> TensorSpec:
    from onnx import helper

    tensor_type = value.type.tensor_type
    shape: list[int | str | None] = []
    for dimension in tensor_type.shape.dim:
        if dimension.HasField("dim_value"):
            shape.append(int(dimension.dim_value))
        elif dimension.HasField("dim_param"):
            shape.append(dimension.dim_param)
        else:
            shape.append(None)
    dtype = (
        helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
        if tensor_type.elem_type
        else "?"
    )
    return TensorSpec(name=value.name, dtype=dtype, shape=shape)


def _check_input(card: ModelCard, signature: ModelSignature) -> None:
    if len(signature.inputs) != 1:
        names = [spec.name for spec in signature.inputs]
        raise ModelRejected(
            "signature_mismatch", f"the model needs one image input, it has {names}"
        )
    image = signature.inputs[0]
    height, width = card.input_size
    expected: list[int | None] = [None, 3, height, width]
    if len(image.shape) != 4 or image.dtype != "float32":
        raise ModelRejected(
            "signature_mismatch",
            f"input {image.name} is {image.dtype}{image.shape}; expected float32 [N, 3, H, W]",
        )
    for position, (actual, wanted) in enumerate(zip(image.shape, expected, strict=True)):
        if wanted is not None and isinstance(actual, int) and actual != wanted:
            raise ModelRejected(
                "signature_mismatch",
                f"input {image.name} has {actual} at dimension {position}; the card says {wanted} "
                f"(input_size {card.input_size})",
            )


def _check_outputs(card: ModelCard, signature: ModelSignature) -> None:
    by_name = {spec.name: spec for spec in signature.outputs}
    roles = output_names(card, signature)
    needed = ("logits",) if card.task is Task.CLASSIFICATION else DETECTION_ROLES
    missing = [role for role in needed if roles.get(role) not in by_name]
    if missing:
        raise ModelRejected(
            "signature_mismatch",
            f"a {card.task.value} model needs outputs {list(needed)}; missing {missing} "
            f"(graph outputs {list(by_name)}, card outputs {card.outputs})",
        )
    if card.task is Task.CLASSIFICATION:
        logits = by_name[roles["logits"]]
        classes = logits.shape[-1] if logits.shape else None
        if isinstance(classes, int) and classes != len(card.classes):
            raise ModelRejected(
                "signature_mismatch",
                f"output {logits.name} has {classes} classes; the card lists {len(card.classes)}",
            )
