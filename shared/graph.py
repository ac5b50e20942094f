"""The Microsoft Graph client every feature uses.

- Base URL and timeout from settings; one `requests.Session` (connection pool) per process.
- The token: app-only from MSAL's cache through `TokenProvider` (a warm call makes no token
  request), or a delegated access token the caller passes.
- Each call sends a fresh `client-request-id` and logs Graph's `request-id` with the status, so
  a call can be found in Microsoft's logs; nothing of the body is logged.
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
from datetime import UTC, datetime
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

    @property
    def session(self) -> Any:
        if self._session is None:
            import requests
            from requests.adapters import HTTPAdapter

            session = requests.Session()
            # Enough pooled connections for the concurrent getSchedule parts of one request.
            session.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=32))
            self._session = session
        return self._session

    def request(self, method: str, path: str, *, tenant_id: str, mailbox: str, json: Any = None,
                params: dict[str, str] | None = None, token: str | None = None, retry: bool = False,
                prefer: list[str] | None = None, headers: dict[str, str] | None = None) -> GraphResponse:
        """One Graph call on `mailbox`'s behalf (the path's mailbox, for the concurrency gate).
        `token` is a delegated access token; without it an app-only token for the tenant is used."""
        import requests

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
                    response = self.session.request(method, url, json=json, params=params, headers=sent,
                                                    timeout=self._settings.http_timeout_seconds)
            except requests.RequestException as error:
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
                body = response.json() if response.content else None
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
