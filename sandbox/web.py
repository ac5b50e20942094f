"""Request/response objects, the route table and the error bodies shared by every area.

Handlers are plain functions ``handler(req: Request) -> Response``. An area module (identity,
keyvault, control, later graph) exposes ``ROUTES``: a list of ``(method, path_regex, handler)``;
``Router`` tries them in order and hands the handler the regex match as ``req.match``.
A handler may also raise ``HttpError`` with a ready response.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from .server import Sandbox

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def utc_now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with milliseconds, like YYYY-MM-DDT10:00:00.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, obj: Any, headers: Iterable[tuple[str, str]] = ()) -> Response:
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return cls(status, body, [("Content-Type", JSON_CONTENT_TYPE), *headers])

    @classmethod
    def empty(cls, status: int, headers: Iterable[tuple[str, str]] = ()) -> Response:
        return cls(status, b"", list(headers))

    @classmethod
    def html(cls, status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
        return cls(status, text.encode("utf-8"), [("Content-Type", "text/html; charset=utf-8"), *headers])

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> Response:
        return cls(status, b"", [("Location", location)])

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class HttpError(Exception):
    """Raised by a handler to answer with ``response`` at once."""

    def __init__(self, response: Response):
        super().__init__(response.status)
        self.response = response


@dataclass
class Request:
    method: str
    path: str
    query_string: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    sandbox: Sandbox
    request_id: str
    client_request_id: str
    match: re.Match[str] | None = None

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string, keep_blank_values=True)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of query parameter ``name`` (exact, case-sensitive name)."""
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def cookie(self, name: str) -> str | None:
        """The value of cookie ``name`` in the ``Cookie`` header (the first one sent, as browsers send
        the most specific first), else None. Pairs that are not ``name=value`` are skipped."""
        for pair in (self.header("cookie") or "").split(";"):
            key, sep, value = pair.strip().partition("=")
            if sep and key == name:
                return value.strip().strip('"')
        return None

    def form(self) -> dict[str, str]:
        """The body as application/x-www-form-urlencoded (first value of each field)."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        return {k: v[0] for k, v in parse_qs(text, keep_blank_values=True).items()}

    def json(self, error: Callable[[str], Response]) -> Any:
        """The body as JSON; on a malformed body raise ``HttpError(error(message))``."""
        if not self.body:
            raise HttpError(error("The request body is empty; a JSON body is required."))
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HttpError(error(f"The request body is not valid JSON: {exc}")) from None

    @property
    def base_url(self) -> str:
        return self.sandbox.base_url


def graph_error(req: Request | None, status: int, code: str, message: str,
                headers: Iterable[tuple[str, str]] = ()) -> Response:
    """An error in Microsoft Graph's shape (also the sandbox's default error shape)."""
    inner: dict[str, str] = {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")}
    if req is not None:
        inner["request-id"] = req.request_id
        inner["client-request-id"] = req.client_request_id
    return Response.json(status, {"error": {"code": code, "message": message, "innerError": inner}}, headers)


Handler = Callable[[Request], Response]
Route = tuple[str, str, Handler]


class Router:
    """A small ordered route table: (method, full-path regex) -> handler."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method.upper(), re.compile(pattern), handler))

    def extend(self, routes: Iterable[Route]) -> None:
        for method, pattern, handler in routes:
            self.add(method, pattern, handler)

    def resolve(self, method: str, path: str) -> tuple[Handler | None, re.Match[str] | None, bool]:
        """(handler, match, path_known): path_known tells a 405 from a 404 when handler is None."""
        path_known = False
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            if route_method == method:
                return handler, match, True
            path_known = True
        return None, None, path_known


def new_id() -> str:
    return str(uuid.uuid4())
