"""HTTP functions: route parameters, methods, precedence, a catch-all, errors, async, context."""

from __future__ import annotations

import json

import azure.functions as func

bp = func.Blueprint()


def _describe(name: str, req: func.HttpRequest, status: int = 200) -> func.HttpResponse:
    document = {
        "function": name,
        "method": req.method,
        "url": req.url,
        "route": dict(req.route_params),
        "params": dict(req.params),
        "x_test": req.headers.get("x-test"),
        "body": req.get_body().decode("utf-8", "replace"),
    }
    return func.HttpResponse(json.dumps(document), status_code=status, mimetype="application/json")


# Registered before the literal route below: precedence, not order, must pick the literal one.
@bp.route(route="items/{item_id}", methods=["GET"])
def get_item(req: func.HttpRequest) -> func.HttpResponse:
    return _describe("get_item", req)


@bp.route(route="items/special", methods=["GET"])
def special_item(req: func.HttpRequest) -> func.HttpResponse:
    return _describe("special_item", req)


@bp.route(route="echo", methods=["POST", "PUT"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse(req.get_body(), status_code=201,
                                 mimetype=req.headers.get("content-type", "application/octet-stream"))
    response.headers.add("Set-Cookie", "a=1; Path=/")
    response.headers.add("Set-Cookie", "b=2; Path=/")
    response.headers["X-Echo-Method"] = req.method
    return response


@bp.route(route="text", methods=["GET"])
def text(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("héllo")


@bp.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("boom on purpose")


@bp.route(route="async/{name}", methods=["GET"])
async def async_hello(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"hello {req.route_params['name']}")


_arrived: list[tuple[object, object]] = []


@bp.route(route="rendezvous/{count}", methods=["GET"])
async def rendezvous(req: func.HttpRequest) -> func.HttpResponse:
    """Answers once `count` requests are in it at the same time, with how many event loops they
    ran on (504 after 5 s alone): async functions that share the worker's loop meet on one."""
    import asyncio

    count = int(req.route_params["count"])
    me = (object(), asyncio.get_running_loop())
    _arrived.append(me)
    try:
        for _ in range(500):
            if len(_arrived) >= count:
                loops = {id(loop) for _, loop in _arrived}
                return func.HttpResponse(f"met on {len(loops)} loop(s)")
            await asyncio.sleep(0.01)
        return func.HttpResponse("alone", status_code=504)
    finally:
        await asyncio.sleep(0.05)  # the others see this one before it leaves
        _arrived.remove(me)


@bp.route(route="context", methods=["GET"])
def context_probe(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"function_name": context.function_name,
                                         "invocation_id": context.invocation_id}), mimetype="application/json")


@bp.route(route="{*path}")
def catch_all(req: func.HttpRequest) -> func.HttpResponse:
    return _describe("catch_all", req, status=404)
