"""Fault injection, under ``/_sandbox/faults`` (never used by production code).

``POST /_sandbox/faults`` adds a rule; the next ``count`` requests whose path matches ``path`` (a
regular expression, searched) and, if given, ``method``, get the fault:

- ``{"status": 429, "retryAfter": 2}``: answered with that status instead of doing the work, with
  ``Retry-After`` (429 and 503) and the error body of the service the path belongs to (Graph,
  the identity platform or Key Vault), as Graph documents for throttling and outages
  (https://learn.microsoft.com/en-us/graph/throttling, https://learn.microsoft.com/en-us/graph/errors).
- ``{"latencyMs": 1500}``: the answer is delayed; ``"when": "after"`` does the work first and then
  waits (a client that times out has still caused the work), the default waits before it.
- ``{"drop": true}``: the work is done, then the connection is closed without an answer.

Rules are taken in the order they were added; ``GET`` lists what is left, ``DELETE`` clears them.
A reset (``POST /_sandbox/reset``) clears them too.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from .web import HttpError, Request, Response, Route, graph_error

STATUSES = (400, 401, 403, 404, 409, 429, 500, 502, 503, 504)


@dataclass
class Fault:
    id: str
    path: re.Pattern[str]
    method: str | None
    remaining: int
    status: int | None = None
    retry_after: int | None = None
    latency_ms: int = 0
    latency_after_work: bool = False
    drop: bool = False

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "path": self.path.pattern, "method": self.method, "remaining": self.remaining,
                "status": self.status, "retryAfter": self.retry_after, "latencyMs": self.latency_ms,
                "when": "after" if self.latency_after_work else "before", "drop": self.drop}


@dataclass
class FaultPlan:
    """The rules waiting to fire; thread-safe, since requests run in parallel threads."""

    rules: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, fault: Fault) -> None:
        with self.lock:
            self.rules.append(fault)

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def take(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.rules:
                if (fault.method is None or fault.method == method) and fault.path.search(path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self.rules.remove(fault)
                    return fault
        return None


def fault_response(req: Request, fault: Fault) -> Response:
    """The answer a faulted request gets, in the error shape of the service its path belongs to."""
    status = fault.status or 500
    headers = [("Retry-After", str(fault.retry_after))] if fault.retry_after is not None else []
    messages = {429: "Too many requests. Please retry after the interval in Retry-After.",
                503: "The service is temporarily unavailable. Please retry later.",
                504: "The gateway timed out waiting for the service."}
    message = messages.get(status, "The sandbox injected this fault.")
    if "/oauth2/" in req.path:
        codes = {429: "temporarily_unavailable", 503: "temporarily_unavailable", 504: "temporarily_unavailable"}
        body = {"error": codes.get(status, "server_error"), "error_description": f"AADSTS90033: {message}",
                "error_codes": [90033], "trace_id": req.request_id, "correlation_id": req.client_request_id}
        return Response.json(status, body, headers)
    if req.path.startswith(("/secrets", "/deletedsecrets")):
        codes = {429: "Throttled", 503: "ServiceUnavailable", 504: "GatewayTimeout"}
        return Response.json(status, {"error": {"code": codes.get(status, "InternalError"), "message": message}},
                             headers)
    codes = {429: "TooManyRequests", 503: "serviceNotAvailable", 504: "UnknownError"}
    return graph_error(req, status, codes.get(status, "generalException"), message, headers)


def add_fault(req: Request) -> Response:
    def bad(message: str) -> HttpError:
        return HttpError(graph_error(req, 400, "BadRequest", message))

    body = req.json(lambda message: graph_error(req, 400, "BadRequest", message))
    if not isinstance(body, dict) or not isinstance(body.get("path"), str):
        raise bad("a fault needs a 'path' regular expression")
    try:
        pattern = re.compile(body["path"])
    except re.error as exc:
        raise bad(f"'path' is not a regular expression: {exc}") from None
    count = body.get("count", 1)
    status = body.get("status")
    retry_after = body.get("retryAfter")
    latency = body.get("latencyMs", 0)
    when = body.get("when", "before")
    if type(count) is not int or count < 1:
        raise bad("'count' must be a positive integer")
    if status is not None and (type(status) is not int or status not in STATUSES):
        raise bad(f"'status' must be one of {STATUSES}")
    if retry_after is not None and (type(retry_after) is not int or retry_after < 0):
        raise bad("'retryAfter' must be a whole number of seconds")
    if type(latency) is not int or not 0 <= latency <= 120_000:
        raise bad("'latencyMs' must be between 0 and 120000")
    if when not in ("before", "after"):
        raise bad("'when' is 'before' or 'after'")
    drop = body.get("drop", False) is True
    if status is None and not latency and not drop:
        raise bad("a fault needs 'status', 'latencyMs' or 'drop'")
    if status is not None and drop:
        raise bad("'status' and 'drop' exclude each other")
    if status in (429, 503) and retry_after is None:
        retry_after = 1
    method = body.get("method")
    fault = Fault(id=str(uuid.uuid4()), path=pattern, method=method.upper() if isinstance(method, str) else None,
                  remaining=count, status=status, retry_after=retry_after, latency_ms=latency,
                  latency_after_work=when == "after", drop=drop)
    req.sandbox.faults.add(fault)
    return Response.json(201, fault.describe())


def list_faults(req: Request) -> Response:
    with req.sandbox.faults.lock:
        return Response.json(200, {"value": [fault.describe() for fault in req.sandbox.faults.rules]})


def clear_faults(req: Request) -> Response:
    req.sandbox.faults.clear()
    return Response.empty(204)


ROUTES: list[Route] = [
    ("POST", r"/_sandbox/faults", add_fault),
    ("GET", r"/_sandbox/faults", list_faults),
    ("DELETE", r"/_sandbox/faults", clear_faults),
]
