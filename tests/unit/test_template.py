"""template.yaml and the code agree: every route has a handler, every handler its route."""

from __future__ import annotations

from pathlib import Path

import pytest

from stek.local.gateway import compile_route
from stek.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
MODEL = load_template(ROOT / "template.yaml")


def test_every_function_has_its_handler_module() -> None:
    for function in MODEL.functions.values():
        module = function.handler.rsplit(".", 1)[0]
        assert (function.code_uri / f"{module}.py").is_file(), function.logical_id


def test_every_work_queue_has_a_dead_letter_queue() -> None:
    work_queues = [q for q in MODEL.queues.values() if not q.logical_id.endswith("DeadLetterQueue")]
    assert work_queues
    for queue in work_queues:
        assert queue.dead_letter in MODEL.queues, queue.logical_id
        assert (queue.max_receive_count or 0) >= 2


def test_sqs_sources_report_partial_batch_failures() -> None:
    sources = [s for f in MODEL.functions.values() for s in f.sqs_sources]
    assert {s.queue_logical_id for s in sources} == {"IngestQueue", "VersionsQueue", "ModelsQueue"}
    assert all(s.report_batch_item_failures for s in sources)


def test_raw_bucket_notifies_the_ingest_queue() -> None:
    raw = MODEL.buckets["RawBucket"]
    assert raw.queue_notifications[0]["Queue"].endswith(MODEL.queues["IngestQueue"].name)


def test_routes_are_unique() -> None:
    keys = [r.route_key for f in MODEL.functions.values() for r in f.routes]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize(
    ("template_path", "request_path", "parameters"),
    [
        ("/v1/images/{image_id}", "/v1/images/abc123", {"image_id": "abc123"}),
        (
            "/v1/models/{name}/versions/{version}",
            "/v1/models/cuttings/versions/3",
            {"name": "cuttings", "version": "3"},
        ),
        ("/v1/health", "/v1/health", {}),
    ],
)
def test_route_patterns_capture_path_parameters(
    template_path: str, request_path: str, parameters: dict[str, str]
) -> None:
    match = compile_route(template_path).match(request_path)
    assert match is not None
    assert match.groupdict() == parameters


def test_route_patterns_do_not_cross_segments() -> None:
    assert compile_route("/v1/images/{image_id}").match("/v1/images/a/b") is None
