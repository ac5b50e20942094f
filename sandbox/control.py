"""The sandbox's own control endpoints, under ``/_sandbox/`` (never used by production code).

- ``GET /_sandbox/health`` -> ``{"status": "ok"}``.
- ``POST /_sandbox/reset`` with a seed body (see ``sandbox.state`` for what a reset replaces);
  a bad body is a 400 with a Graph-style error listing every problem, and changes nothing.
- ``GET /_sandbox/requests[?since=<index>]`` -> ``{"value": [{"index", "method", "path", "query",
  "status", "time", "durationMs"}], "nextIndex": n}``: the requests received outside
  ``/_sandbox/``; ``since`` keeps those with ``index >= since``. ``DELETE`` clears the log.

Requests to ``/_sandbox/`` are never logged.
"""

from __future__ import annotations

from .seed import SeedError
from .web import HttpError, Request, Response, Route, graph_error


def health(req: Request) -> Response:
    return Response.json(200, {"status": "ok"})


def reset(req: Request) -> Response:
    body = req.json(lambda message: graph_error(req, 400, "BadRequest", message))
    try:
        summary = req.sandbox.state.reset(body)
        req.sandbox.faults.clear()
    except SeedError as exc:
        message = "The seed is not valid: " + "; ".join(exc.problems)
        raise HttpError(graph_error(req, 400, "BadRequest", message)) from None
    return Response.json(200, {"status": "reset", **summary})


def list_requests(req: Request) -> Response:
    since_text = req.arg("since", "0") or "0"
    try:
        since = int(since_text)
    except ValueError:
        raise HttpError(graph_error(req, 400, "BadRequest", f"since must be an integer, not {since_text!r}")) from None
    entries, next_index = req.sandbox.request_log.since(since)
    return Response.json(200, {"value": entries, "nextIndex": next_index})


def clear_requests(req: Request) -> Response:
    req.sandbox.request_log.clear()
    return Response.empty(204)


ROUTES: list[Route] = [
    ("GET", r"/_sandbox/health", health),
    ("POST", r"/_sandbox/reset", reset),
    ("GET", r"/_sandbox/requests", list_requests),
    ("DELETE", r"/_sandbox/requests", clear_requests),
]
