"""The OpenAPI document of the whole API, built from every function's routers."""

from __future__ import annotations

from stek import __version__
from stek.api import datasets, events, images, models, service, training
from stek.http import build_resolver

ROUTERS = (service.router, images.router, datasets.router, training.router, models.router, events.router)


def openapi_json() -> str:
    app = build_resolver(*ROUTERS)
    return app.get_openapi_json_schema(
        title="stek API",
        version=__version__,
        description="Datasets, training and models for vision on the production line.",
        security_schemes={"apiKey": {"type": "http", "scheme": "bearer"}},  # type: ignore[dict-item]
        security=[{"apiKey": []}],
    )
