"""Load a function's handler from its CodeUri, the way Lambda would import it."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import Any

from stek.local.template import Function

Handler = Callable[[dict[str, Any], Any], Any]


def load_handler(function: Function) -> Handler:
    """Import `Handler` (module.attribute) from the function's code directory."""
    module_name, _, attribute = function.handler.rpartition(".")
    path = function.code_uri / f"{module_name.replace('.', '/')}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{function.logical_id}: handler module {path} does not exist")
    # Each function's module gets its own name: every CodeUri has an `app.py`.
    qualified = f"stek_functions.{function.logical_id}.{module_name}"
    module = sys.modules.get(qualified)
    if module is None:
        spec = importlib.util.spec_from_file_location(qualified, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"{function.logical_id}: cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module
        spec.loader.exec_module(module)
    handler = getattr(module, attribute, None)
    if not callable(handler):
        raise AttributeError(f"{function.logical_id}: {path} has no callable {attribute!r}")
    return handler  # type: ignore[no-any-return]
