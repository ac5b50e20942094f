"""``POST /v1.0/$batch`` (https://learn.microsoft.com/en-us/graph/json-batching).

- ``requests``: 1-20 items, each with ``id`` (unique, case-insensitive), ``method``, a relative
  ``url``, optional ``headers`` (``Content-Type`` required when there is a ``body``), ``body`` and
  ``dependsOn``. A batch that breaks these rules is 400 as a whole (the messages are the
  sandbox's: Microsoft documents the status, not the text).
- Each inner request runs through the same routes with the outer ``Authorization`` (so the same
  token, mailbox, policy and concurrency checks; a throttled one is its own 429 with its own
  ``Retry-After`` in ``headers``). Requests run one at a time in ``dependsOn`` order (Graph may
  run up to four in parallel; the sandbox need not). A request whose dependency did not succeed
  (non-2xx) is 424 without running.
- The answer is 200 with ``responses`` (``id``, ``status``, ``headers``, ``body`` when there is
  one), in request order (clients must match by ``id`` anyway).
"""

from __future__ import annotations

import base64
import binascii
import json
import sys
import traceback
import uuid
from typing import Any

from ..web import HttpError, Request, Response, graph_error
from .auth import authenticate
from .common import bad_request, ci_get, graph_json, json_object_body

MAX_REQUESTS = 20
METHODS = {"GET", "POST", "PATCH", "PUT", "DELETE"}


def _invalid(req: Request, message: str) -> HttpError:
    return bad_request(req, "BadRequest", message)


def _check(req: Request, items: Any) -> list[dict[str, Any]]:
    if not isinstance(items, list) or not items:
        raise _invalid(req, "Invalid batch payload format: 'requests' must be a non-empty array.")
    if len(items) > MAX_REQUESTS:
        raise _invalid(req, f"The batch contains {len(items)} requests; at most {MAX_REQUESTS} are allowed.")
    checked, seen = [], set()
    for item in items:
        if not isinstance(item, dict):
            raise _invalid(req, "Invalid batch payload format: each request must be an object.")
        request_id = ci_get(item, "id")
        method = ci_get(item, "method")
        url = ci_get(item, "url")
        if not isinstance(request_id, str) or not request_id:
            raise _invalid(req, "Invalid batch payload format: each request needs a string 'id'.")
        if request_id.lower() in seen:
            raise _invalid(req, f"Batch request ids must be unique: '{request_id}' is used more than once.")
        seen.add(request_id.lower())
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise _invalid(req, f"Request '{request_id}': 'method' must be one of {', '.join(sorted(METHODS))}.")
        if not isinstance(url, str) or not url or "://" in url.split("?", 1)[0]:
            raise _invalid(req, f"Request '{request_id}': 'url' must be a relative URL such as /users/{{id}}/events.")
        headers = ci_get(item, "headers") or {}
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise _invalid(req, f"Request '{request_id}': 'headers' must be an object of strings.")
        has_body = any(k.lower() == "body" for k in item) and ci_get(item, "body") is not None
        if has_body and not any(k.lower() == "content-type" for k in headers):
            raise _invalid(req, f"Request '{request_id}': a request with a body needs a Content-Type header.")
        depends = ci_get(item, "dependsOn") or []
        if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
            raise _invalid(req, f"Request '{request_id}': 'dependsOn' must be an array of request ids.")
        checked.append({"id": request_id, "method": method.upper(), "url": url, "headers": headers,
                        "body": ci_get(item, "body") if has_body else None, "dependsOn": depends})
    ids = {c["id"].lower() for c in checked}
    for c in checked:
        for dep in c["dependsOn"]:
            if dep.lower() not in ids or dep.lower() == c["id"].lower():
                raise _invalid(req, f"Request '{c['id']}' depends on '{dep}', which is not another request of "
                               "this batch.")
    return checked


def _order(req: Request, checked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Requests in an order where each comes after its dependencies (request order otherwise)."""
    done: set[str] = set()
    ordered: list[dict[str, Any]] = []
    pending = list(checked)
    while pending:
        ready = [c for c in pending if all(d.lower() in done for d in c["dependsOn"])]
        if not ready:
            raise _invalid(req, "The dependsOn references of the batch form a cycle.")
        first = ready[0]
        ordered.append(first)
        done.add(first["id"].lower())
        pending.remove(first)
    return ordered


def _body_bytes(item: dict[str, Any]) -> bytes:
    body = item["body"]
    if body is None:
        return b""
    if isinstance(body, dict | list):
        return json.dumps(body).encode("utf-8")
    if isinstance(body, str):
        content_type = next((v for k, v in item["headers"].items() if k.lower() == "content-type"), "")
        if "json" in content_type.lower():
            return body.encode("utf-8")
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


def _run(outer: Request, item: dict[str, Any]) -> Response:
    url = item["url"] if item["url"].startswith("/") else "/" + item["url"]
    path, _, query = url.partition("?")
    full_path = "/v1.0" + path
    headers = {k.lower(): v for k, v in item["headers"].items()}
    if outer.header("authorization"):
        headers["authorization"] = outer.headers["authorization"]
    inner = Request(method=item["method"], path=full_path, query_string=query, headers=headers,
                    body=_body_bytes(item), sandbox=outer.sandbox, request_id=str(uuid.uuid4()),
                    client_request_id=outer.client_request_id)
    handler, match, path_known = outer.sandbox.router.resolve(inner.method, full_path)
    if handler is None or handler is batch:
        if path_known:
            return graph_error(inner, 405, "MethodNotAllowed", f"The method {inner.method} is not allowed for {path}.")
        return graph_error(inner, 400, "BadRequest", f"Resource not found for the segment '{path.strip('/')}'.")
    inner.match = match
    try:
        return handler(inner)
    except HttpError as exc:
        return exc.response
    except Exception:
        traceback.print_exc(file=sys.stderr)
        return graph_error(inner, 500, "InternalServerError", "The sandbox failed to handle the request.")


def _entry(request_id: str, response: Response) -> dict[str, Any]:
    headers = {name: value for name, value in response.headers if name.lower() != "content-length"}
    entry: dict[str, Any] = {"id": request_id, "status": response.status, "headers": headers}
    if response.body:
        content_type = (response.header("content-type") or "").lower()
        if "json" in content_type:
            entry["body"] = json.loads(response.body.decode("utf-8"))
        else:
            entry["body"] = base64.b64encode(response.body).decode("ascii")
    return entry


def batch(req: Request) -> Response:
    authenticate(req)
    body = json_object_body(req)
    checked = _check(req, ci_get(body, "requests"))
    statuses: dict[str, int] = {}
    entries: dict[str, dict[str, Any]] = {}
    for item in _order(req, checked):
        failed = [d for d in item["dependsOn"] if not 200 <= statuses[d.lower()] < 300]
        if failed:
            response = graph_error(req, 424, "FailedDependency",
                                   f"The request depends on request '{failed[0]}', which failed.")
        else:
            response = _run(req, item)
        statuses[item["id"].lower()] = response.status
        entries[item["id"].lower()] = _entry(item["id"], response)
    return graph_json(200, {"responses": [entries[c["id"].lower()] for c in checked]})
