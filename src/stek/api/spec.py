"""The OpenAPI document of the whole API, built from every function's routers."""

from __future__ import annotations

from stek import __version__
from stek.api import datasets, events, images, models, service, training
from stek.http import build_resolver

ROUTERS = (
    service.router,
    images.router,
    datasets.router,
    training.router,
    models.router,
    events.router,
)


def openapi_json() -> str:
    # Including a router in a resolver re-points the router at it; the functions' own
    # resolvers must keep their routers, so they are handed back afterwards.
    owners = [router.api_resolver for router in ROUTERS]
    try:
        return _document()
    finally:
        for router, owner in zip(ROUTERS, owners, strict=True):
            router.api_resolver = owner


def _document() -> str:
    app = build_resolver(*ROUTERS)
    return app.get_openapi_json_schema(
        title="stek API",
        version=__version__,
        description="Datasets, training and models for vision on the production line.",
        security_schemes={"apiKey": {"type": "http", "scheme": "bearer"}},  # type: ignore[dict-item]
        security=[{"apiKey": []}],
    )
