"""The Microsoft Graph client every feature uses.

- Base URL and timeout from settings; one `requests.Session` (connection pool) per process.
- The token: app-only from MSAL's cache through `TokenProvider` (a warm call makes no token
  request), or a delegated access token the caller passes.
- Each call sends a fresh `client-request-id` and logs Graph's `request-id` with the status, so
  a call can be found in Microsoft's logs; nothing of the body is logged.
- Answers are parsed with orjson (a getSchedule answer for 20 people over two weeks is ~600 KB:
  about a third of the time the standard library takes), or by the caller's own `decode`
  (availability's typed reader skips what it does not need); the session reads the process
  environment once (shared/sessions.py), not on every call.
- At most 4 calls in flight per mailbox from this process (Outlook's concurrency limit).
- Retries only where asked (`retry=True`): getSchedule and findMeetingTimes are POSTs that read,
  so repeating them is safe; creating an event is not, and must never be replayed blindly
  (graph-facts: "POST /events is not idempotent"). A retry waits what `Retry-After` says (or
  backs off exponentially), within a total budget; past it the caller gets 503
  `upstream_throttled` with `Retry-After`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from shared.settings import Settings

log = logging.getLogger(__name__)

RETRYABLE = frozenset({429, 503, 504})
MAX_ATTEMPTS = 4
RETRY_BUDGET_SECONDS = 12.0  # longest total wait before answering 503: below a web request's patience
MAILBOX_CONCURRENCY = 4


class GraphError(Exception):
    """Graph answered with an error (or not at all). `code` is Graph's error code."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after

    @property
    def outside_access_policy(self) -> bool:
        return self.status == 403 and "OData is disabled" in self.message


@dataclass
class GraphResponse:
    status: int
    body: Any
    headers: dict[str, str]


def _retry_after(headers: Any) -> int | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0, int(float(value))) if value is not None else None
    except ValueError:
        return None


class MailboxGate:
    """A semaphore per mailbox, so no more than 4 of our calls are in flight for one mailbox."""

    def __init__(self, limit: int = MAILBOX_CONCURRENCY) -> None:
        self._limit = limit
        self._gates: dict[str, threading.Semaphore] = {}
        self._lock = threading.Lock()

    def __call__(self, mailbox: str) -> threading.Semaphore:
        key = mailbox.lower()
        with self._lock:
            gate = self._gates.get(key)
            if gate is None:
                gate = self._gates[key] = threading.BoundedSemaphore(self._limit)
            return gate


class GraphClient:
    def __init__(self, settings: Settings, tokens: Any, *, session: Any = None,
                 sleep: Callable[[float], None] = time.sleep, retry_budget: float = RETRY_BUDGET_SECONDS) -> None:
        self._settings = settings
        self._tokens = tokens
        self._session = session
        self._sleep = sleep
        self._retry_budget = retry_budget
        self._gate = MailboxGate()
        self._verify_from_env = False  # set when the session stops reading the environment itself

    @property
    def session(self) -> Any:
        if self._session is None:
            import requests
            from requests.adapters import HTTPAdapter

            from shared.sessions import environment_read_once

            session = requests.Session()
            # Enough pooled connections for the concurrent getSchedule parts of one request.
            session.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=32))
            self._verify_from_env = environment_read_once(session)
            self._session = session
        return self._session

    def request(self, method: str, path: str, *, tenant_id: str, mailbox: str, json: Any = None,
                params: dict[str, str] | None = None, token: str | None = None, retry: bool = False,
                prefer: list[str] | None = None, headers: dict[str, str] | None = None,
                decode: Callable[[bytes], Any] | None = None) -> GraphResponse:
        """One Graph call on `mailbox`'s behalf (the path's mailbox, for the concurrency gate).
        `token` is a delegated access token; without it an app-only token for the tenant is used.
        `decode` reads a successful answer's body in place of orjson (a typed reader that skips
        what the caller does not need)."""
        import orjson
        import requests
        import urllib3

        from shared.sessions import ca_bundle

        session = self.session
        url = f"{self._settings.graph_base_url}{path}"
        deadline = time.monotonic() + self._retry_budget
        attempt = 0
        while True:
            attempt += 1
            bearer = token or self._tokens.app_token(tenant_id)["access_token"]
            client_request_id = str(uuid.uuid4())
            sent = {"Authorization": f"Bearer {bearer}", "client-request-id": client_request_id,
                    "Accept": "application/json", **(headers or {})}
            if prefer:
                sent["Prefer"] = ", ".join(prefer)
            started = time.monotonic()
            try:
                with self._gate(mailbox):
                    # Streamed, then read in one go: requests' own reading walks a 600 KB answer in
                    # 10 KB chunks, which cost about 2 ms of CPU more. A full read hands the
                    # connection back to the pool.
                    verify = {"verify": ca_bundle()} if self._verify_from_env else {}
                    response = session.request(method, url, json=json, params=params, headers=sent, stream=True,
                                               timeout=self._settings.http_timeout_seconds, **verify)
                    content = response.raw.read(decode_content=True) if response.status_code < 400 \
                        else response.content
            except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
                log.warning("graph %s %s failed without an answer (%s), client-request-id %s", method,
                            _path_only(path), type(error).__name__, client_request_id)
                if retry and attempt < MAX_ATTEMPTS and time.monotonic() + 1 < deadline:
                    self._sleep(min(2 ** (attempt - 1), 4))
                    continue
                raise GraphError(0, "noResponse", type(error).__name__) from None
            elapsed = (time.monotonic() - started) * 1000
            log.info("graph %s %s -> %s in %.0f ms, request-id %s, client-request-id %s", method,
                     _path_only(path), response.status_code, elapsed, response.headers.get("request-id"),
                     client_request_id)
            if response.status_code < 400:
                body = (decode or orjson.loads)(content) if content else None
                return GraphResponse(response.status_code, body, dict(response.headers))
            wait = _retry_after(response.headers)
            if response.status_code in RETRYABLE and retry and attempt < MAX_ATTEMPTS:
                pause = wait if wait is not None else min(2 ** (attempt - 1), 8)
                if time.monotonic() + pause <= deadline:
                    self._sleep(pause)
                    continue
            raise _error_of(response, wait)

    def post(self, path: str, **kwargs: Any) -> GraphResponse:
        return self.request("POST", path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> GraphResponse:
        return self.request("GET", path, **kwargs)


_MAILBOX = re.compile(r"^/users/[^/]+")


def graph_time(value: dict[str, Any] | None) -> datetime | None:
    """A dateTimeTimeZone that Graph gave in UTC (we always send `Prefer: outlook.timezone="UTC"`);
    Graph writes seven fractional digits, which fromisoformat does not take, so they are cut."""
    if not value or not value.get("dateTime"):
        return None
    text = value["dateTime"]
    parsed = datetime.fromisoformat(text[:26] if "." in text else text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# Graph's UTC dateTime texts, as whole seconds since 1970 (rounded down). A getSchedule answer
# holds thousands of them, mostly the same few hundred (meetings start on the quarter hour), so
# each distinct text is parsed once per process; at most _MAX_INSTANTS are kept.
_INSTANTS: dict[str, int] = {}
_MAX_INSTANTS = 100_000
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,7})?")
_EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()


def utc_seconds(text: str) -> int:
    """A `dateTime` of a dateTimeTimeZone in UTC ("2026-03-15T09:00:00.0000000") as whole seconds
    since 1970, rounded down; ValueError if it is not one. For an end, add one when
    `has_fraction(text)`, so the whole seconds cover the interval."""
    seconds = _INSTANTS.get(text)
    if seconds is not None:
        return seconds
    from datetime import date

    try:
        if _INSTANT.fullmatch(text) is None or int(text[11:13]) > 23 or int(text[14:16]) > 59 \
                or int(text[17:19]) > 59:
            raise ValueError
        day = date(int(text[0:4]), int(text[5:7]), int(text[8:10])).toordinal() - _EPOCH_ORDINAL
    except (TypeError, ValueError):
        raise ValueError(f"not a Graph date-time: {text!r}"[:80]) from None
    seconds = day * 86400 + int(text[11:13]) * 3600 + int(text[14:16]) * 60 + int(text[17:19])
    if len(_INSTANTS) >= _MAX_INSTANTS:
        _INSTANTS.clear()
    _INSTANTS[text] = seconds
    return seconds


def instants_cache() -> dict[str, int]:
    """The texts utc_seconds has parsed (for a hot loop's own lookups; read only)."""
    return _INSTANTS


def has_fraction(text: str) -> bool:
    return len(text) > 20 and text[20:].strip("0") != ""


def graph_seconds(value: dict[str, Any] | None, *, end: bool = False) -> int | None:
    """A dateTimeTimeZone as whole seconds since 1970: rounded down, or up for an `end`, so a
    half-open interval of whole seconds holds the exact one. None if absent. A zone other than
    UTC (Graph ignoring our Prefer header) is read through its name, not assumed UTC."""
    if not value:
        return None
    text = value.get("dateTime")
    if not text:
        return None
    zone = value.get("timeZone")
    if zone is None or zone == "UTC":
        seconds = utc_seconds(text)
        return seconds + 1 if end and has_fraction(text) else seconds
    return _zoned_seconds(text, zone, end=end)


def zone_named(name: str | None) -> tzinfo | None:
    """A Graph time zone name (Windows, or IANA, or UTC) as a tzinfo; None if unknown. Windows
    names are mapped to IANA through CLDR's table (tzlocal)."""
    if not name:
        return None
    from zoneinfo import ZoneInfo

    from tzlocal.windows_tz import win_tz

    try:
        return ZoneInfo(win_tz.get(name, name))
    except (KeyError, ValueError):
        return None


def _zoned_seconds(text: str, zone_name: str, *, end: bool) -> int:
    zone = zone_named(zone_name)
    if zone is None:
        raise ValueError(f"unknown time zone {zone_name!r}"[:80])
    local = datetime.fromisoformat(text[:26] if "." in text else text)
    instant = local.replace(tzinfo=zone) if local.tzinfo is None else local
    exact = instant.timestamp()
    whole = int(exact // 1)
    return whole + 1 if end and whole != exact else whole


def _path_only(path: str) -> str:
    """The path for a log line: no query (filters carry values), no mailbox (an e-mail address)."""
    return _MAILBOX.sub("/users/{id}", path.split("?", 1)[0])


def _error_of(response: Any, retry_after: int | None) -> GraphError:
    try:
        error = (response.json() or {}).get("error") or {}
    except ValueError:
        error = {}
    return GraphError(response.status_code, str(error.get("code") or "unknown"), str(error.get("message") or ""),
                      retry_after=retry_after)
