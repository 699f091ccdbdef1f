"""Every HTTP route template.yaml gives a function is one its resolver actually serves."""

from __future__ import annotations

import re
import sys

import pytest

from stek.local.functions import load_handler
from stek.local.stack import Stack

FUNCTIONS = ["IngestFunction", "CleanFunction", "TrainDispatchFunction", "RegistryFunction"]


@pytest.mark.parametrize("function_id", FUNCTIONS)
def test_template_routes_have_handlers(stack: Stack, function_id: str) -> None:
    function = stack.model.functions[function_id]
    app = sys.modules[load_handler(function).__module__].app
    # Powertools keeps its compiled routes in these two lists; there is no public accessor.
    routes = app._static_routes + app._dynamic_routes
    for route in function.routes:
        path = re.sub(r"\{[^}]+\}", "x", route.path)
        served = [r for r in routes if route.method == r.method.upper() and r.rule.match(path)]
        assert served, f"{function_id} does not serve {route.route_key}"
