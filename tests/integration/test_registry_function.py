"""The registry function on the provisioned stack: models uploaded the way the runner does it
register themselves (or are rejected with a reason); aliases, promotion rules, validations
and predictions through the HTTP API."""

from __future__ import annotations

import base64
import io
import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from stek.auth import Role
from stek.datasets.manifest import (
    Box,
    ManifestEntry,
    Split,
    Task,
    VersionStatus,
    VersionSummary,
    encode_manifest,
    version_item_key,
)
from stek.errors import NotFound
from stek.local.functions import load_handler
from stek.local.lambda_context import LocalContext
from stek.local.stack import Stack
from stek.modelcard import Lineage, ModelCard, Normalisation
from stek.registry import validation as validation_module
from stek.registry.store import ModelRegistry
from stek.services import Services

EVENTS = Path(__file__).resolve().parents[2] / "events"
SIZE = 64  # the models' input height and width
IMAGE = 128  # the test images' side: predicted boxes scale by 2
CLASSES = ["cutting", "leaf"]
FIXED_BOXES = [[0, 0, 32, 32], [32, 32, 64, 64], [0, 32, 16, 48]]  # input pixels

# ------------------------------------------------------------------------ ONNX models


def _onnx(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _image_input() -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, SIZE, SIZE])


def detector(labels: list[int]) -> onnx.ModelProto:
    """Three fixed boxes with fixed labels; box k scores the mean of colour channel k, so an
    image's colour sets the scores and a test can work the metrics out by hand."""
    box_values = numpy_helper.from_array(np.asarray([FIXED_BOXES], dtype=np.float32), "box_values")
    label_values = numpy_helper.from_array(np.asarray([labels], dtype=np.int64), "label_values")
    shape = numpy_helper.from_array(np.asarray([-1, 3], dtype=np.int64), "score_shape")
    nodes = [
        helper.make_node("Identity", ["box_values"], ["boxes"]),
        helper.make_node("Identity", ["label_values"], ["labels"]),
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Reshape", ["pooled", "score_shape"], ["scores"]),
    ]
    outputs = [
        helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 3, 4]),
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 3]),
        helper.make_tensor_value_info("labels", TensorProto.INT64, [1, 3]),
    ]
    initializers = [box_values, label_values, shape]
    graph = helper.make_graph(nodes, "detector", [_image_input()], outputs, initializers)
    return _onnx(graph)


def classifier() -> onnx.ModelProto:
    """logits = the mean of each colour channel: a red image is class 0."""
    weights = numpy_helper.from_array(np.eye(3, dtype=np.float32), "weights")
    bias = numpy_helper.from_array(np.zeros(3, dtype=np.float32), "bias")
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "weights", "bias"], ["logits"], transB=1),
    ]
    output = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])
    graph = helper.make_graph(nodes, "classifier", [_image_input()], [output], [weights, bias])
    return _onnx(graph)


def card(tenant: str, name: str, task: Task = Task.DETECTION, **changes: Any) -> ModelCard:
    fields: dict[str, Any] = {
        "name": name,
        "tenant": tenant,
        "task": task,
        "architecture": "fixed-boxes" if task is Task.DETECTION else "channel-means",
        "classes": CLASSES if task is Task.DETECTION else ["red", "green", "blue"],
        "input_size": (SIZE, SIZE),
        "normalisation": Normalisation(mean=[0, 0, 0], std=[1, 1, 1], scale=1 / 255),
        "lineage": Lineage(training_job_id="job-7f3a", dataset_id="trays", dataset_version=1),
        "outputs": {"boxes": "boxes", "scores": "scores", "labels": "labels"}
        if task is Task.DETECTION
        else {"logits": "logits"},
        "code_version": "abc1234",
    }
    return ModelCard(**(fields | changes))


# ------------------------------------------------------------------------------ steps


def upload(
    svc: Services, tenant: str, name: str, content: bytes, model_card: ModelCard | None
) -> str:
    """What the runner does: card.json first, then model.onnx, under the job's folder."""
    folder = f"{tenant}/{name}/job-{uuid.uuid4().hex[:8]}/"
    if model_card is not None:
        svc.s3.put_object(
            Bucket=svc.settings.models_bucket,
            Key=folder + "card.json",
            Body=model_card.model_dump_json().encode(),
        )
    svc.s3.put_object(Bucket=svc.settings.models_bucket, Key=folder + "model.onnx", Body=content)
    return folder + "model.onnx"


def deliver(stack: Stack, svc: Services) -> list[dict[str, Any]]:
    """Hand what the models queue holds to the function as Lambda's SQS poller would."""
    url = stack.queue_urls["ModelsQueue"]
    messages = svc.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    records = [
        {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:models",
            "awsRegion": "us-east-1",
        }
        for message in messages
    ]
    for message in messages:
        svc.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    answer = registry_handler(stack)({"Records": records}, _context())
    assert answer == {"batchItemFailures": []}
    return records


def registry_handler(stack: Stack) -> Any:
    return load_handler(stack.model.functions["RegistryFunction"])


def _context() -> LocalContext:
    return LocalContext.for_function("RegistryFunction", 900, 3008)


def http(
    stack: Stack,
    method: str,
    path: str,
    key: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, Any]]:
    event = json.loads((EVENTS / "registry_http_list_models.json").read_text())
    event["routeKey"] = f"{method} {path}"
    event["rawPath"] = path
    event["requestContext"]["http"].update(method=method, path=path)
    event["headers"]["authorization"] = f"Bearer {key}"
    event["headers"]["content-type"] = content_type
    if body is not None:
        event["body"] = json.dumps(body)
    if raw is not None:
        event["body"] = base64.b64encode(raw).decode()
        event["isBase64Encoded"] = True
    answer = registry_handler(stack)(event, _context())
    return answer["statusCode"], json.loads(answer["body"])


def registry(svc: Services) -> ModelRegistry:
    return ModelRegistry(svc.settings.catalog_table, svc.dynamodb)


def png(colour: tuple[float, float, float]) -> bytes:
    pixels = tuple(round(channel * 255) for channel in colour)
    buffer = io.BytesIO()
    Image.new("RGB", (IMAGE, IMAGE), pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def frozen_dataset(
    svc: Services, tenant: str, task: Task, images: list[tuple[tuple[float, float, float], Any]]
) -> tuple[str, int]:
    """A READY dataset version whose val split is these (colour, truth) images."""
    dataset_id = f"ds-{uuid.uuid4().hex[:6]}"
    entries = []
    for number, (colour, truth) in enumerate(images, 1):
        key = f"{tenant}/machine-07/tray-1/img-{number}.png"
        content = png(colour)
        svc.s3.put_object(Bucket=svc.settings.raw_bucket, Key=key, Body=content)
        entries.append(
            ManifestEntry(
                image_id=f"img-{number}",
                bucket=svc.settings.raw_bucket,
                key=key,
                sha256=uuid.uuid4().hex,
                width=IMAGE,
                height=IMAGE,
                split=Split.VAL,
                label=truth if task is Task.CLASSIFICATION else None,
                boxes=truth if task is Task.DETECTION else [],
            )
        )
    body, digest = encode_manifest(entries)
    manifest_key = f"{tenant}/datasets/{dataset_id}/versions/1/manifest-{digest}.jsonl"
    svc.s3.put_object(Bucket=svc.settings.artifacts_bucket, Key=manifest_key, Body=body)
    summary = VersionSummary(
        tenant=tenant,
        dataset_id=dataset_id,
        version=1,
        task=task,
        classes=CLASSES if task is Task.DETECTION else ["red", "green", "blue"],
        status=VersionStatus.READY,
        manifest_bucket=svc.settings.artifacts_bucket,
        manifest_key=manifest_key,
        manifest_sha256=digest,
    )
    item = version_item_key(tenant, dataset_id, 1) | {"summary": {"S": summary.model_dump_json()}}
    svc.dynamodb.put_item(TableName=svc.settings.catalog_table, Item=item)
    return dataset_id, 1


def box(label: str, x1: float, y1: float, x2: float, y2: float) -> Box:
    return Box(label=label, x1=x1, y1=y1, x2=x2, y2=y2)


# In image pixels the fixed boxes are A = (0, 0, 64, 64), B = (64, 64, 128, 128) and
# C = (0, 64, 32, 96). The good detector says A cutting, B leaf, C cutting.
HAND_CHECKED = [
    # colour sets the scores of A, B, C; truth
    ((0.9, 0.8, 0.3), [box("cutting", 0, 0, 64, 64), box("leaf", 64, 64, 128, 128)]),
    ((0.7, 0.6, 0.2), [box("cutting", 0, 0, 64, 64)]),
    ((0.55, 0.1, 0.4), [box("leaf", 0, 0, 64, 64)]),
]
GOOD_LABELS = [0, 1, 0]
WEAK_LABELS = [1, 0, 1]


def scientist(svc: Services, tenant: str) -> str:
    key, _ = svc.keys.create(tenant, Role.SCIENTIST)
    return key


def events_of(svc: Services, tenant: str, kind: str) -> list[Any]:
    return svc.events.read(tenant, type=kind).events


# ------------------------------------------------------------------------------ tests


def test_runner_upload_registers_a_version_with_lineage(
    stack: Stack, svc: Services, tenant: str
) -> None:
    # Given a model and its card uploaded the way the runner does
    content = detector(GOOD_LABELS).SerializeToString()
    key = upload(svc, tenant, "cutting-detector", content, card(tenant, "cutting-detector"))

    # When the bucket event reaches the function, twice (at-least-once delivery)
    records = deliver(stack, svc)
    registry_handler(stack)({"Records": records}, _context())

    # Then one version is registered, its lineage leads to the job and the dataset version
    version = registry(svc).version(tenant, "cutting-detector", 1)
    assert version.lineage == Lineage(
        training_job_id="job-7f3a", dataset_id="trays", dataset_version=1
    )
    assert version.key == key
    assert version.s3_uri == f"s3://{svc.settings.models_bucket}/{key}"
    assert [spec.name for spec in version.signature.outputs] == ["boxes", "scores", "labels"]
    assert version.signature.inputs[0].shape == ["batch", 3, SIZE, SIZE]
    assert version.signature.opset == 17
    assert registry(svc).model(tenant, "cutting-detector").latest_version == 1
    [registered] = events_of(svc, tenant, "model.registered")
    assert registered.data["training_job_id"] == "job-7f3a"
    assert registered.data["version"] == 1

    # And the API shows it with a download URL
    key_secret = scientist(svc, tenant)
    status, answer = http(stack, "GET", "/v1/models/cutting-detector/versions/1", key_secret)
    assert status == 200
    assert answer["lineage"]["dataset_version"] == 1
    assert answer["sha256"] == version.sha256
    assert "X-Amz-Signature" in answer["download_url"] or "Signature" in answer["download_url"]
    status, listing = http(stack, "GET", "/v1/models", key_secret)
    assert [model["name"] for model in listing["models"]] == ["cutting-detector"]


def _malformed() -> bytes:
    model = detector(GOOD_LABELS)
    model.graph.node[0].input[0] = "nowhere"  # an input no node or initializer produces
    return model.SerializeToString()


def _external_outside() -> bytes:
    model = detector(GOOD_LABELS)
    tensor = model.graph.initializer[0]
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="../other-job/weights.bin")
    return model.SerializeToString()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (_malformed(), "malformed"),
        (_external_outside(), "external_data_outside_prefix"),
        (png((1, 0, 0)), "not_onnx"),
        (b"x" * 4096, "too_large"),
    ],
    ids=["malformed", "external-data-outside", "not-onnx", "oversized"],
)
def test_bad_models_are_rejected_with_a_reason(
    stack: Stack, svc: Services, tenant: str, content: bytes, reason: str
) -> None:
    # Given a bad model file with a good card (and a small size limit)
    svc.settings.max_model_bytes = 2048
    upload(svc, tenant, "cutting-detector", content, card(tenant, "cutting-detector"))

    # When its bucket event reaches the function
    deliver(stack, svc)

    # Then it is rejected with the reason, and nothing is registered
    [rejected] = events_of(svc, tenant, "model.rejected")
    assert rejected.data["reason"] == reason
    assert rejected.data["detail"]
    assert events_of(svc, tenant, "model.registered") == []
    with pytest.raises(NotFound):
        registry(svc).model(tenant, "cutting-detector")


def test_external_data_beside_the_model_is_accepted(
    stack: Stack, svc: Services, tenant: str
) -> None:
    # Given a model whose boxes live in weights.bin beside model.onnx
    model = detector(GOOD_LABELS)
    tensor = model.graph.initializer[0]
    weights = numpy_helper.to_array(tensor).tobytes()
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value="weights.bin")
    folder = f"{tenant}/split-weights/job-5e21"
    key = f"{folder}/model.onnx"
    svc.s3.put_object(Bucket=svc.settings.models_bucket, Key=f"{folder}/weights.bin", Body=weights)
    svc.s3.put_object(
        Bucket=svc.settings.models_bucket,
        Key=f"{folder}/card.json",
        Body=card(tenant, "split-weights").model_dump_json().encode(),
    )
    svc.s3.put_object(Bucket=svc.settings.models_bucket, Key=key, Body=model.SerializeToString())

    # When its bucket event arrives
    deliver(stack, svc)

    # Then the model registers, and predictions read the external data
    version = registry(svc).version(tenant, "split-weights", 1)
    assert version.external_data == ["weights.bin"]
    status, answer = http(
        stack,
        "POST",
        "/v1/models/split-weights/versions/1/predictions",
        scientist(svc, tenant),
        raw=png((0.9, 0.8, 0.3)),
        content_type="image/png",
    )
    assert status == 200, answer
    assert [d["box"] for d in answer["detections"]] == [[0, 0, 64, 64], [64, 64, 128, 128]]


def test_validation_metrics_match_the_hand_worked_values(
    stack: Stack, svc: Services, tenant: str
) -> None:
    # Given the good detector and the hand-checked set
    upload(
        svc,
        tenant,
        "cutting-detector",
        detector(GOOD_LABELS).SerializeToString(),
        card(tenant, "cutting-detector"),
    )
    deliver(stack, svc)
    dataset_id, dataset_version = frozen_dataset(svc, tenant, Task.DETECTION, HAND_CHECKED)
    key = scientist(svc, tenant)

    # When it is validated on the val split
    status, answer = http(
        stack,
        "POST",
        "/v1/models/cutting-detector/versions/1/validations",
        key,
        {"dataset_id": dataset_id, "version": dataset_version, "split": "val"},
    )

    # Then the metrics are the ones worked out by hand:
    # cutting: truth in images 1 and 2; its detections by score are 0.9 TP, 0.7 TP, then only
    #   false positives (0.55 on image 3's leaf, the C boxes): recall 1 at precision 1, AP 1.
    #   Boxes match exactly (IoU 1), so AP is 1 at every IoU threshold.
    # leaf: truth in images 1 and 3; detections 0.8 TP (image 1), 0.6 FP, 0.1 FP: recall
    #   stops at 0.5 with precision 1, so 51 of COCO's 101 recall points score 1: 51/101.
    # At score >= 0.5: kept A1 B1 A2 B2 A3; correct A1 B1 A2 -> precision 3/5, recall 3/4.
    # Confusion (truth rows, prediction columns; cutting, leaf, background):
    #   cutting->cutting 2, leaf->leaf 1, leaf->cutting 1 (A3), background->leaf 1 (B2).
    assert status == 201, answer
    metrics = answer["validation"]["metrics"]
    leaf_ap = 51 / 101
    assert metrics["per_class_ap50"] == pytest.approx({"cutting": 1.0, "leaf": leaf_ap})
    assert metrics["per_class_ap"] == pytest.approx({"cutting": 1.0, "leaf": leaf_ap})
    assert metrics["map_50"] == pytest.approx((1.0 + leaf_ap) / 2)
    assert metrics["map_50_95"] == pytest.approx((1.0 + leaf_ap) / 2)
    assert metrics["precision"] == pytest.approx(3 / 5)
    assert metrics["recall"] == pytest.approx(3 / 4)
    assert metrics["confusion"] == [[2, 0, 0], [1, 1, 0], [0, 1, 0]]

    # And the artifacts are in the bucket, the validation can be read back with URLs
    validation_id = answer["validation"]["validation_id"]
    artifacts = answer["validation"]["artifacts"]
    assert {"pr_curve.png", "confusion.png", "detections.coco.json", "metrics.json"} <= set(
        artifacts
    )
    assert any(name.startswith("best-1-") for name in artifacts)
    assert any(name.startswith("worst-1-img-3") for name in artifacts)
    bucket = svc.settings.artifacts_bucket
    chart = svc.s3.get_object(Bucket=bucket, Key=artifacts["pr_curve.png"])["Body"].read()
    assert chart.startswith(b"\x89PNG")
    results = json.loads(
        svc.s3.get_object(Bucket=bucket, Key=artifacts["detections.coco.json"])["Body"].read()
    )
    assert len(results) == 9
    assert {"image_id", "category_id", "bbox", "score"} <= set(results[0])
    path = f"/v1/models/cutting-detector/versions/1/validations/{validation_id}"
    status, read_back = http(stack, "GET", path, key)
    assert status == 200
    assert set(read_back["urls"]) == set(artifacts)
    [validated] = events_of(svc, tenant, "model.validated")
    assert validated.data["validation_id"] == validation_id


def test_classification_validation_and_cached_predictions(
    stack: Stack, svc: Services, tenant: str
) -> None:
    # Given the channel-mean classifier and three images, one of them mislabelled
    model_card = card(tenant, "colours", Task.CLASSIFICATION)
    upload(svc, tenant, "colours", classifier().SerializeToString(), model_card)
    deliver(stack, svc)
    images = [((0.9, 0.1, 0.1), "red"), ((0.1, 0.8, 0.1), "green"), ((0.1, 0.1, 0.7), "red")]
    dataset_id, dataset_version = frozen_dataset(svc, tenant, Task.CLASSIFICATION, images)
    key = scientist(svc, tenant)

    # When validated, and asked twice for a prediction (raw PNG, then JSON base64)
    status, answer = http(
        stack,
        "POST",
        "/v1/models/colours/versions/1/validations",
        key,
        {"dataset_id": dataset_id, "version": dataset_version},
    )
    loads_before = validation_module.sessions().loads
    path = "/v1/models/colours/versions/1/predictions"
    raw_status, raw = http(
        stack, "POST", path, key, raw=png((0.1, 0.9, 0.1)), content_type="image/png"
    )
    encoded = base64.b64encode(png((0.1, 0.1, 0.9))).decode()
    json_status, from_json = http(stack, "POST", path, key, {"image_base64": encoded})

    # Then the metrics follow from the one mistake (blue image labelled red)
    assert status == 201, answer
    metrics = answer["validation"]["metrics"]
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx({"red": 0.5, "green": 1.0, "blue": 0.0})
    assert metrics["precision"] == pytest.approx({"red": 1.0, "green": 1.0, "blue": 0.0})
    assert metrics["confusion"] == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    # And predictions answer from the session the validation loaded
    assert (raw_status, raw["label"]) == (200, "green")
    assert (json_status, from_json["label"]) == (200, "blue")
    assert sum(from_json["scores"].values()) == pytest.approx(1.0)
    assert validation_module.sessions().loads == loads_before


def test_promotion_rule_refuses_weak_accepts_good_and_rollback_restores(
    stack: Stack, svc: Services, tenant: str
) -> None:
    # Given a weak version 1 and a good version 2, both validated on the same dataset version
    name = "cutting-detector"
    upload(svc, tenant, name, detector(WEAK_LABELS).SerializeToString(), card(tenant, name))
    deliver(stack, svc)
    upload(svc, tenant, name, detector(GOOD_LABELS).SerializeToString(), card(tenant, name))
    deliver(stack, svc)
    dataset_id, dataset_version = frozen_dataset(svc, tenant, Task.DETECTION, HAND_CHECKED)
    key = scientist(svc, tenant)
    for version in (1, 2):
        status, _ = http(
            stack,
            "POST",
            f"/v1/models/{name}/versions/{version}/validations",
            key,
            {"dataset_id": dataset_id, "version": dataset_version},
        )
        assert status == 201
    rule = {"metric": "map_50", "min": 0.7, "dataset_id": dataset_id, "dataset_version": 1}
    status, _ = http(stack, "PUT", f"/v1/models/{name}/promotion-rule", key, rule)
    assert status == 200

    # When production is pointed at the weak one, then at the good one
    weak_status, weak = http(
        stack, "PUT", f"/v1/models/{name}/aliases/production", key, {"version": 1}
    )
    good_status, good = http(
        stack, "PUT", f"/v1/models/{name}/aliases/production", key, {"version": 2}
    )

    # Then the rule refuses the weak version with the reason and accepts the good one
    assert weak_status == 409
    assert weak["reason"] == "promotion_rule"
    assert "map_50" in weak["detail"]
    assert good_status == 200
    assert good["version"] == 2

    # Given staging (not guarded once the rule names production only) moved 1 -> 2
    rule["aliases"] = ["production"]
    http(stack, "PUT", f"/v1/models/{name}/promotion-rule", key, rule)
    http(stack, "PUT", f"/v1/models/{name}/aliases/staging", key, {"version": 1})
    http(stack, "PUT", f"/v1/models/{name}/aliases/staging", key, {"version": 2})

    # When staging is rolled back with one call
    status, rolled = http(stack, "PUT", f"/v1/models/{name}/aliases/staging", key, {"version": 1})

    # Then it points at version 1 again, and the model shows the history
    assert status == 200
    assert (rolled["version"], rolled["previous_version"]) == (1, 2)
    assert [change["version"] for change in rolled["history"]] == [1, 2, 1]
    status, model = http(stack, "GET", f"/v1/models/{name}", key)
    assert model["aliases"] == {"production": 2, "staging": 1}
    assert len(model["alias_history"]) == 4
    assert model["model"]["promotion_rule"]["min"] == 0.7
    assert registry(svc).aliases(tenant, name) == {"production": 2, "staging": 1}
    changes = events_of(svc, tenant, "model.alias.changed")
    assert [(c.data["alias"], c.data["version"]) for c in changes] == [
        ("production", 2),
        ("staging", 1),
        ("staging", 2),
        ("staging", 1),
    ]
    # And by alias the version resolves too
    status, by_alias = http(stack, "GET", f"/v1/models/{name}/versions/production", key)
    assert (status, by_alias["version"], by_alias["aliases"]) == (200, 2, ["production"])


def test_other_tenants_cannot_see_a_model(stack: Stack, svc: Services, tenant: str) -> None:
    upload(
        svc,
        tenant,
        "colours",
        classifier().SerializeToString(),
        card(tenant, "colours", Task.CLASSIFICATION),
    )
    deliver(stack, svc)
    other = scientist(svc, f"{tenant}x")

    status, answer = http(stack, "GET", "/v1/models/colours", other)

    assert status == 404
    assert answer["status"] == 404


def test_sample_event_for_a_missing_object_is_dropped(stack: Stack, svc: Services) -> None:
    # Given the sample event, pointed at this stack's models bucket, for an object not there
    event = json.loads((EVENTS / "registry_sqs_model_uploaded.json").read_text())
    sample_bucket = "stek-models-123456789012-us-east-1"
    body = event["Records"][0]["body"].replace(sample_bucket, svc.settings.models_bucket)
    event["Records"][0]["body"] = body

    # When it reaches the function
    answer = registry_handler(stack)(event, _context())

    # Then nothing is retried and nothing is registered or rejected
    assert answer == {"batchItemFailures": []}
    assert svc.events.read("greenhouse-a").events == []


def test_a_scientist_uploads_their_own_model(stack: Stack, svc: Services, tenant: str) -> None:
    # Given upload URLs asked from the API
    key = scientist(svc, tenant)
    status, upload_answer = http(stack, "POST", "/v1/models/colours/uploads", key)
    assert status == 200
    assert upload_answer["model_key"].startswith(f"{tenant}/colours/upload-")
    assert upload_answer["card_url"].startswith("https://")
    assert upload_answer["model_url"].startswith("https://")

    # When the card and the model are put there, card first
    model_card = card(tenant, "colours", Task.CLASSIFICATION, lineage=Lineage())
    bucket = svc.settings.models_bucket
    card_body = model_card.model_dump_json().encode()
    svc.s3.put_object(Bucket=bucket, Key=upload_answer["card_key"], Body=card_body)
    model_body = classifier().SerializeToString()
    svc.s3.put_object(Bucket=bucket, Key=upload_answer["model_key"], Body=model_body)
    deliver(stack, svc)

    # Then it registers like a runner's model, its source is the upload
    version = registry(svc).version(tenant, "colours", 1)
    assert version.source_id == upload_answer["upload_id"]
    assert version.lineage.training_job_id is None


@pytest.mark.torch
def test_validation_over_the_in_function_limit_is_queued_and_a_runner_runs_it(
    stack: Stack, svc: Services, tenant: str, tmp_path: Path
) -> None:
    # Given a limit of two images and a split of three
    svc.settings.validation_max_images = 2
    name = "cutting-detector"
    upload(svc, tenant, name, detector(GOOD_LABELS).SerializeToString(), card(tenant, name))
    deliver(stack, svc)
    dataset_id, dataset_version = frozen_dataset(svc, tenant, Task.DETECTION, HAND_CHECKED)

    # When a validation is asked for
    status, answer = http(
        stack,
        "POST",
        f"/v1/models/{name}/versions/1/validations",
        scientist(svc, tenant),
        {"dataset_id": dataset_id, "version": dataset_version},
    )

    # Then it is accepted and queued for a runner, not run in the function
    assert status == 202, answer
    queued = answer["validation"]
    assert (queued["status"], queued["images"], queued["metrics"]) == ("QUEUED", 3, {})
    assert events_of(svc, tenant, "model.validated") == []

    # When a runner takes it from the training queue (imported here: the runner needs torch)
    from gpu_runner.runner import Runner

    runner = Runner(
        svc.settings, svc.s3, svc.sqs, svc.dynamodb, svc.events, cache_dir=tmp_path, wait_s=0
    )
    assert runner.run_once() == "validated"

    # Then it holds the same hand-checked metrics the function computes for small sets
    done = registry(svc).validation(tenant, name, 1, queued["validation_id"])
    assert done.status == "SUCCEEDED"
    assert done.metrics["map_50"] == pytest.approx((1.0 + 51 / 101) / 2)
    assert "pr_curve.png" in done.artifacts
    assert len(events_of(svc, tenant, "model.validated")) == 1
    assert runner.run_once() is None  # the message is gone


def test_a_machine_key_cannot_move_an_alias(stack: Stack, svc: Services, tenant: str) -> None:
    name = "colours"
    upload(
        svc, tenant, name, classifier().SerializeToString(), card(tenant, name, Task.CLASSIFICATION)
    )
    deliver(stack, svc)
    machine, _ = svc.keys.create(tenant, Role.MACHINE)

    status, answer = http(
        stack, "PUT", f"/v1/models/{name}/aliases/production", machine, {"version": 1}
    )

    assert status == 403
    assert "scientist" in answer["detail"]
    assert registry(svc).aliases(tenant, name) == {}


def test_the_runners_own_export_and_upload_register(
    stack: Stack, svc: Services, tenant: str, tmp_path: Path
) -> None:
    # Given a model exported and handed over with the GPU runner's own code
    export = pytest.importorskip("gpu_runner.export")
    runner_models = pytest.importorskip("gpu_runner.models")
    runner_data = pytest.importorskip("gpu_runner.data")
    architecture = runner_models.Architecture.MOBILENET_V3_SMALL
    network = runner_models.build_model(architecture, 3, SIZE)
    onnx_path = tmp_path / "model.onnx"
    outputs = export.export_onnx(network, Task.CLASSIFICATION, SIZE, onnx_path)
    runner_card = card(
        tenant,
        "grader",
        Task.CLASSIFICATION,
        architecture=architecture.value,
        normalisation=runner_data.normalisation(Task.CLASSIFICATION),
        outputs=outputs,
    )
    prefix = f"{tenant}/grader/job-7f3a/"
    export.upload(svc.s3, svc.settings.models_bucket, prefix, runner_card, onnx_path)

    # When its bucket event reaches the function
    deliver(stack, svc)

    # Then it is version 1, with the job as its source and lineage, and it predicts
    version = registry(svc).version(tenant, "grader", 1)
    assert (version.source_id, version.lineage.training_job_id) == ("job-7f3a", "job-7f3a")
    assert version.signature.inputs[0].name == "images"
    status, answer = http(
        stack,
        "POST",
        "/v1/models/grader/versions/1/predictions",
        scientist(svc, tenant),
        raw=png((0.2, 0.7, 0.2)),
        content_type="image/png",
    )
    assert status == 200, answer
    assert set(answer["scores"]) == {"red", "green", "blue"}
