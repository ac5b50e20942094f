"""What every Graph handler shares: answers with Graph's headers, errors, JSON bodies."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from ..web import HttpError, Request, Response, graph_error

# The Content-Type Graph sends with OData JSON (the batching page's example response headers,
# https://learn.microsoft.com/en-us/graph/json-batching).
GRAPH_CONTENT_TYPE = ("application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
                      "charset=utf-8")


def graph_json(status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
    body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return Response(status, body, [("Content-Type", GRAPH_CONTENT_TYPE), ("OData-Version", "4.0"),
                                   ("Cache-Control", "private"), *headers])


def graph_json_text(status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
    """Like ``graph_json`` for a body already serialised (the hot getSchedule path)."""
    return Response(status, text.encode("utf-8"), [("Content-Type", GRAPH_CONTENT_TYPE), ("OData-Version", "4.0"),
                                                   ("Cache-Control", "private"), *headers])


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def fail(req: Request | None, status: int, code: str, message: str,
         headers: Iterable[tuple[str, str]] = ()) -> HttpError:
    return HttpError(graph_error(req, status, code, message, headers))


def bad_request(req: Request, code: str, message: str) -> HttpError:
    return fail(req, 400, code, message)


# Graph's answer to a body that is not JSON.
_BAD_JSON = ("Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid "
             "JSON format.")


def json_body(req: Request, *, required: bool = True) -> Any:
    """The request body as JSON (an empty body is ``{}`` unless ``required``)."""
    if not req.body.strip():
        if required:
            raise bad_request(req, "BadRequest", "Empty Payload. JSON content expected.")
        return {}
    try:
        return json.loads(req.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise bad_request(req, "BadRequest", _BAD_JSON) from None


def json_object_body(req: Request, *, required: bool = True) -> dict[str, Any]:
    body = json_body(req, required=required)
    if not isinstance(body, dict):
        raise bad_request(req, "BadRequest", _BAD_JSON)
    return body


def ci_get(obj: dict[str, Any], name: str, default: Any = None) -> Any:
    """``obj[name]`` matching the key case-insensitively (Graph reads "Schedules" as "schedules")."""
    if name in obj:
        return obj[name]
    lower = name.lower()
    for key, value in obj.items():
        if key.lower() == lower:
            return value
    return default


def ci_has(obj: dict[str, Any], name: str) -> bool:
    lower = name.lower()
    return any(key.lower() == lower for key in obj)


def as_bool(value: Any) -> bool | None:
    """Edm.Boolean, also sent as "true"/"false" strings (Graph's own findMeetingTimes example does)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def metadata(req: Request, fragment: str) -> str:
    """An ``@odata.context`` URL on the sandbox's origin."""
    return f"{req.base_url}/v1.0/$metadata#{fragment}"


def control_mailbox(req: Request) -> Any:
    """The mailbox a control route's `{email}` names (any of the user's addresses, UPN or id), or
    Graph's 404 ErrorInvalidUser."""
    from urllib.parse import unquote

    assert req.match is not None  # noqa: S101 - control routes capture {email}
    email = unquote(req.match.group("email"))
    mailbox = req.sandbox.calendars.mailbox_by_mail(email)
    if mailbox is None:
        raise fail(req, 404, "ErrorInvalidUser", f"The requested user '{email}' is invalid.")
    return mailbox
