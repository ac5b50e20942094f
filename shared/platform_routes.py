"""Routes of the service itself: health, and the catch-all that answers 404 / 405 in the envelope.

The catch-all learns the other routes from the FunctionApp it is bound to, so the app's own
registrations stay the only routing table.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import azure.functions as func

from shared.errors import MethodNotAllowed, NotFound
from shared.http import endpoint, json_response
from shared.routing import RouteTemplate, allowed_methods
from shared.settings import get_settings

log = logging.getLogger(__name__)

bp = func.Blueprint()
_routes: list[tuple[RouteTemplate, frozenset[str]]] = []
ALL_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"})


def app_functions(app: func.FunctionApp) -> list[func.Function]:
    """`app.get_functions()`, repeatable: it records the names it has seen to refuse duplicates,
    so a second call (the worker's own, when it indexes the app) would fail without the reset."""
    functions = app.get_functions()
    app.functions_bindings = None
    return functions


def bind_routes(app: func.FunctionApp) -> None:
    """Record the app's HTTP routes (after every blueprint is registered) for 405 answers."""
    _routes.clear()
    for function in app_functions(app):
        for binding in json.loads(function.get_function_json())["bindings"]:
            if binding.get("type") == "httpTrigger":
                route = binding.get("route") or function.get_function_name()
                methods = frozenset(m.upper() for m in binding.get("methods") or ALL_METHODS)
                _routes.append((RouteTemplate.parse(route), methods))


@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
def health(req: func.HttpRequest) -> func.HttpResponse:
    return json_response({"status": "ok", "version": get_settings().version})


OPENAPI_PATH = Path(__file__).resolve().parent.parent / "openapi.yaml"


@bp.function_name("openapi")
@bp.route(route="openapi.yaml", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    """The API document, as deployed beside the code."""
    return func.HttpResponse(OPENAPI_PATH.read_bytes(), status_code=200, mimetype="application/yaml",
                             charset="utf-8", headers={"Cache-Control": "public, max-age=300"})


@bp.function_name("not_found")
@bp.route(route="{*path}", auth_level=func.AuthLevel.ANONYMOUS)
@endpoint
def catch_all(req: func.HttpRequest) -> func.HttpResponse:
    path = req.route_params.get("path", "")
    methods = allowed_methods(_routes, path)
    if methods:
        error = MethodNotAllowed(f"{req.method} is not allowed here; use {', '.join(sorted(methods))}.")
        response = json_response({"error": {"code": error.code, "message": error.message}}, error.status)
        response.headers["Allow"] = ", ".join(sorted(methods))
        return response
    raise NotFound("No such route.")
