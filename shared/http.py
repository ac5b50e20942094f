"""HTTP plumbing shared by every route: request ids, JSON answers, the error envelope.

`@endpoint` wraps a handler so that every answer carries `x-request-id`, every log line of the
request carries the same id, domain errors become the contract's envelope, and anything
unexpected becomes a plain 500 envelope (logged with its traceback, never sent to the caller).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import azure.functions as func

from shared.errors import InvalidRequest, PayloadTooLarge, ServiceError
from shared.logs import invocation_context, request_context, takes_context, tenant_context

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
MAX_BODY_BYTES = 1024 * 1024  # the contract: a body over 1 MB is 413 payload_too_large
# A caller's id is echoed only if it is short and plain, so it cannot forge log lines or headers.
_CALLER_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

Handler = Callable[[func.HttpRequest], func.HttpResponse]


def request_id_of(req: func.HttpRequest) -> str:
    candidate = (req.headers.get(REQUEST_ID_HEADER) or "").strip()
    return candidate if _CALLER_REQUEST_ID.match(candidate) else str(uuid.uuid4())


def rfc3339(value: datetime) -> str:
    """A time in an answer: RFC 3339 to the second, with the value's own offset."""
    return value.isoformat(timespec="seconds")


def utc_stamp(value: datetime | None) -> str | None:
    """A moment the service recorded (createdAt, updatedAt, …): UTC with a Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def tenant_id_of(req: func.HttpRequest) -> str:
    """The `tenantId` route parameter, checked (a GUID) before any storage call."""
    from shared.validation import guid

    return guid(req.route_params.get("tenantId", ""), "tenantId")


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
        mimetype="application/json",
        charset="utf-8",
    )


def error_response(error: ServiceError) -> func.HttpResponse:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.target is not None:
        body["target"] = error.target
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else {}
    return json_response({"error": body}, status=error.status, headers={**headers, **error.headers})


def wrap(handler: Handler, render: Callable[[ServiceError], func.HttpResponse]) -> Handler:
    """Request id, logging context and error mapping for one HTTP function; `render` turns the
    error the caller should see into the answer (the JSON envelope, or an HTML page)."""

    if inspect.iscoroutinefunction(handler):  # run on the worker's event loop (an async route)
        @functools.wraps(handler)
        async def awaiting(req: func.HttpRequest, context: func.Context | None = None) -> func.HttpResponse:
            request_id = request_id_of(req)
            with _logged(req, request_id, context):
                try:
                    response = await handler(req)
                except Exception as raised:
                    response = _answer_for(raised, render)
                response.headers[REQUEST_ID_HEADER] = request_id
                return response

        takes_context(awaiting, handler)
        return awaiting  # type: ignore[return-value]

    @functools.wraps(handler)
    def wrapper(req: func.HttpRequest, context: func.Context | None = None) -> func.HttpResponse:
        request_id = request_id_of(req)
        with _logged(req, request_id, context):
            try:
                response = handler(req)
            except Exception as raised:
                response = _answer_for(raised, render)
            response.headers[REQUEST_ID_HEADER] = request_id
            return response

    takes_context(wrapper, handler)  # so the worker passes `context` (its invocation id)
    return wrapper


@contextlib.contextmanager
def _logged(req: func.HttpRequest, request_id: str, context: func.Context | None) -> Iterator[None]:
    # Every line of the request carries its id, the route's tenant (a GUID, else none) and the
    # Functions invocation id (shared/logs.py says which of them reach Application Insights).
    with (request_context(request_id), tenant_context((req.route_params or {}).get("tenantId")),
          invocation_context(context)):
        yield


def _answer_for(raised: Exception, render: Callable[[ServiceError], func.HttpResponse]) -> func.HttpResponse:
    error = as_service_error(raised)
    if error.status >= 500:
        log.warning("request failed: %s %s", error.code, error.message)
    return render(error)


def endpoint(handler: Handler) -> Handler:
    """`wrap` with the contract's JSON error envelope."""
    return wrap(handler, error_response)


def as_service_error(raised: Exception) -> ServiceError:
    """Map any exception to what the caller sees (shared.upstream, the one seam for dependencies);
    anything unforeseen is logged with its traceback and answered as a plain 500 (never the
    traceback itself)."""
    from shared.upstream import service_error

    error = service_error(raised)
    if error is not None:
        return error
    log.error("unhandled error", exc_info=raised)
    return ServiceError("The service failed to handle the request.")



def json_body(req: func.HttpRequest) -> dict[str, Any]:
    """The request's JSON object, or 400 invalid_request."""
    raw = req.get_body() or b""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge("The request body is larger than 1 MB.")
    if not raw.strip():
        raise InvalidRequest("A JSON object body is required.")
    try:
        value = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidRequest("The body is not valid UTF-8 JSON.") from None
    except RecursionError:
        raise InvalidRequest("The body is nested too deeply.") from None
    if not isinstance(value, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return value
