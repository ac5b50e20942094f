"""Delivering change and lifecycle notifications to webhooks, and the validation request, as
Microsoft documents them (https://learn.microsoft.com/en-us/graph/change-notifications-delivery-webhooks):

- Validation (``validate``): ``POST <url>?validationToken=<token>`` (appended with ``&`` when the
  URL has a query already, kept as given), ``Content-Type: text/plain; charset=utf-8``, no body.
  The endpoint must answer within ``subscriptionValidationTimeoutSeconds`` (10 s, Microsoft's
  figure, which "cannot be configured": github.com/microsoftgraph/microsoft-graph-docs/issues/5554;
  a sandbox setting may only shorten it) with 200, a ``text/plain`` content type and exactly the
  URL-decoded token as its body. The token is opaque text with spaces and colons, as Graph's
  ("Validation: Testing client application reachability for subscription Request-Id: <guid>"),
  so an endpoint that echoes it still URL-encoded fails.
- Change notifications are POSTed as a ``changeNotificationCollection`` (``{"value": [...]}``,
  ``Content-Type: application/json; charset=utf-8``). Items for one URL are gathered for
  ``BATCH_WINDOW_SECONDS`` (200 ms) from the first, across subscriptions, then sent in one POST.
  Lifecycle notifications are gathered the same way, apart from change notifications.
- A delivery counts when the endpoint answers 2xx within ``notificationTimeoutSeconds`` (3 s:
  "receives a 2xx HTTP response from your endpoint within 3 seconds"). Otherwise (another
  status, no answer in time, no connection) it is tried again ``notificationRetries`` times (4)
  after growing waits, ``notificationRetryBaseSeconds`` (1 s) doubled each time, then dropped.
  Microsoft retries "at exponential backoff intervals" for up to 4 hours and extends a retry's
  timeout to 10 s: the sandbox gives up far sooner and keeps 3 s on every try (the harsher
  reading; an endpoint must answer fast and a lost notification must not matter).
  Microsoft's slow/drop throttling of endpoints is not modelled beyond this.
- Change notifications for a subscription that no longer exists (deleted, expired, reset) are
  not sent, also on a retry (the harsher reading; Microsoft documents nothing).
- Faults (``POST /_sandbox/notifications/faults``): the next ``drop`` change notifications are
  lost, the next ``duplicate`` ones are also sent again in a POST of their own just after, and
  the next ``delayed`` ones (1 when only ``delayMs`` is given) are held ``delayMs`` and sent on
  their own, as Microsoft's are reported to be (facts-notifications-callers.md §1.10). Faults are
  taken in that order, one per notification; they never touch lifecycle notifications.
- Everything runs on background threads (one scheduler, one thread per POST): the Graph request
  that caused a change never waits for a delivery. A reset (``reset``) forgets what is pending,
  the faults and the log; a POST already in flight then neither counts nor retries.
- The log (``GET /_sandbox/notifications``): one entry per POST tried, per notification dropped
  by a fault, and per validation request: ``{"index", "kind": "change" | "lifecycle" |
  "validation", "url", "body" (the JSON sent; null for a validation), "validationToken" (a
  validation's), "status" (the answer's, or null), "attempt" (1 for the first try; 0 for a
  dropped one), "outcome": "delivered" | "rejected" | "timeout" | "unreachable" | "dropped" |
  "validated" | "invalid", "at", "durationMs"}``.

Everything here is HTTP/1.1 with the standard library (no client library at start-up).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import ssl
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from typing import Any
from urllib.parse import quote, urlsplit

from ..web import utc_now_rfc3339

BATCH_WINDOW_SECONDS = 0.2
DUPLICATE_GAP_SECONDS = 0.1  # a duplicate goes in its own POST, this long after its batch
DEFAULT_VALIDATION_TIMEOUT_SECONDS = 10
DEFAULT_NOTIFICATION_TIMEOUT_SECONDS = 3
DEFAULT_NOTIFICATION_RETRIES = 4
DEFAULT_NOTIFICATION_RETRY_BASE_SECONDS = 1
MAX_ANSWER_BYTES = 64 * 1024
LOG_LIMIT = 20_000
TICK_SECONDS = 0.5  # the scheduler's longest sleep: how often ``on_tick`` (the expiry sweep) runs


def validation_token() -> str:
    return f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"


def with_query(url: str, name: str, value: str) -> str:
    scheme, netloc, path, query, _ = urlsplit(url)
    pair = f"{name}={quote(value, safe='')}"
    query = f"{query}&{pair}" if query else pair
    return f"{scheme}://{netloc}{path or '/'}?{query}"


@dataclass
class Answer:
    status: int | None
    content_type: str
    body: bytes
    outcome: str  # answered | timeout | unreachable
    duration_ms: float


def post(url: str, body: bytes, content_type: str, timeout: float) -> Answer:
    """POST ``body`` to ``url``; an answer that takes longer than ``timeout`` counts as none."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    start = time.monotonic()
    conn: HTTPConnection
    if parts.scheme == "https":
        conn = HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout,
                               context=ssl.create_default_context())
    else:
        conn = HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("POST", target, body=body, headers={"Content-Type": content_type, "User-Agent": "sandbox-graph"})
        response = conn.getresponse()
        answer_body = response.read(MAX_ANSWER_BYTES)
        elapsed = time.monotonic() - start
        if elapsed > timeout:
            return Answer(response.status, "", b"", "timeout", round(elapsed * 1000, 1))
        return Answer(response.status, response.getheader("Content-Type") or "", answer_body, "answered",
                      round(elapsed * 1000, 1))
    except TimeoutError:
        return Answer(None, "", b"", "timeout", round((time.monotonic() - start) * 1000, 1))
    except (OSError, HTTPException):
        return Answer(None, "", b"", "unreachable", round((time.monotonic() - start) * 1000, 1))
    finally:
        with contextlib.suppress(Exception):
            conn.close()


@dataclass
class Faults:
    drop: int = 0
    duplicate: int = 0
    delayed: int = 0
    delay_ms: int = 0

    def describe(self) -> dict[str, int]:
        return {"drop": self.drop, "duplicate": self.duplicate, "delayed": self.delayed, "delayMs": self.delay_ms}

    def take(self) -> str | None:
        for name in ("drop", "duplicate", "delayed"):
            if getattr(self, name) > 0:
                setattr(self, name, getattr(self, name) - 1)
                return name
        return None


@dataclass
class _Batch:
    url: str
    kind: str  # change | lifecycle
    generation: int
    attempt: int = 1
    items: list[dict[str, Any]] = field(default_factory=list)
    subscription_ids: list[str] = field(default_factory=list)


class Deliveries:
    """Batches, sends, retries and logs notifications; runs the validation request."""

    def __init__(self, settings: Callable[[], Mapping[str, Any]]):
        self._settings = settings
        self._cond = threading.Condition()
        self._open: dict[tuple[str, str], _Batch] = {}
        self._due: list[tuple[float, int, _Batch]] = []
        self._seq = itertools.count()
        self._generation = 0
        self._thread: threading.Thread | None = None
        self._log: deque[dict[str, Any]] = deque(maxlen=LOG_LIMIT)
        self._next_index = 0
        self.faults = Faults()
        # Set by the subscriptions: whether a subscription still exists, and a periodic chore.
        self.alive: Callable[[str], bool] = lambda subscription_id: True
        self.on_tick: Callable[[], None] = lambda: None

    # -- settings ----------------------------------------------------------------------------

    def setting(self, name: str, default: float) -> float:
        return float((self._settings() or {}).get(name, default))

    # -- the log -----------------------------------------------------------------------------

    def _record(self, entry: dict[str, Any]) -> None:
        with self._cond:
            self._log.append({"index": self._next_index, **entry})
            self._next_index += 1

    def log(self, since: int = 0) -> tuple[list[dict[str, Any]], int]:
        with self._cond:
            return [dict(e) for e in self._log if e["index"] >= since], self._next_index

    def clear_log(self) -> None:
        with self._cond:
            self._log.clear()

    # -- faults ------------------------------------------------------------------------------

    def add_faults(self, *, drop: int = 0, duplicate: int = 0, delayed: int = 0,
                   delay_ms: int | None = None) -> dict[str, int]:
        """Add to the faults left (``delay_ms`` replaces the delay); answers what is left now."""
        with self._cond:
            self.faults.drop += drop
            self.faults.duplicate += duplicate
            self.faults.delayed += delayed
            if delay_ms is not None:
                self.faults.delay_ms = delay_ms
            return self.faults.describe()

    def describe_faults(self) -> dict[str, int]:
        with self._cond:
            return self.faults.describe()

    def clear_faults(self) -> None:
        with self._cond:
            self.faults = Faults()

    # -- validation ----------------------------------------------------------------------------

    def validate(self, url: str) -> str:
        """Send the validation request to ``url``: "validated", "invalid" or "timeout"."""
        token = validation_token()
        timeout = self.setting("subscriptionValidationTimeoutSeconds", DEFAULT_VALIDATION_TIMEOUT_SECONDS)
        answer = post(with_query(url, "validationToken", token), b"", "text/plain; charset=utf-8", timeout)
        ok = (answer.outcome == "answered" and answer.status == 200
              and answer.content_type.split(";")[0].strip().lower() == "text/plain"
              and answer.body.decode("utf-8", "replace") == token)
        outcome = "validated" if ok else ("timeout" if answer.outcome == "timeout" else "invalid")
        self._record({"kind": "validation", "url": url, "body": None, "validationToken": token,
                      "status": answer.status, "attempt": 1, "outcome": outcome, "at": utc_now_rfc3339(),
                      "durationMs": answer.duration_ms})
        return outcome

    # -- queueing ------------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="sandbox-notifications", daemon=True)
            self._thread.start()

    def start(self) -> None:
        with self._cond:
            self._ensure_thread()

    def _schedule(self, batch: _Batch, delay: float) -> None:
        heapq.heappush(self._due, (time.monotonic() + delay, next(self._seq), batch))
        self._cond.notify()

    def enqueue(self, url: str, item: dict[str, Any], *, kind: str, subscription_id: str) -> None:
        """Queue one notification (never blocks on the network)."""
        with self._cond:
            self._ensure_thread()
            fault = self.faults.take() if kind == "change" else None
            if fault == "drop":
                self._log.append({"index": self._next_index, "kind": kind, "url": url, "body": {"value": [item]},
                                  "status": None, "attempt": 0, "outcome": "dropped", "at": utc_now_rfc3339(),
                                  "durationMs": 0})
                self._next_index += 1
                return
            if fault == "delayed":
                alone = _Batch(url, kind, self._generation, items=[item], subscription_ids=[subscription_id])
                self._schedule(alone, self.faults.delay_ms / 1000)
                return
            key = (kind, url)
            batch = self._open.get(key)
            if batch is None:
                batch = _Batch(url, kind, self._generation)
                self._open[key] = batch
                self._schedule(batch, BATCH_WINDOW_SECONDS)
            batch.items.append(item)
            batch.subscription_ids.append(subscription_id)
            if fault == "duplicate":
                again = _Batch(url, kind, self._generation, items=[dict(item)], subscription_ids=[subscription_id])
                self._schedule(again, BATCH_WINDOW_SECONDS + DUPLICATE_GAP_SECONDS)

    def reset(self) -> None:
        """Forget what is pending, the faults and the log (a sandbox reset)."""
        with self._cond:
            self._generation += 1
            self._open.clear()
            self._due.clear()
            self._log.clear()
            self.faults = Faults()

    # -- sending -------------------------------------------------------------------------------

    def _run(self) -> None:
        last_tick = time.monotonic()
        while True:
            ready: list[_Batch] = []
            with self._cond:
                now = time.monotonic()
                wait = TICK_SECONDS if not self._due else min(TICK_SECONDS, max(0.0, self._due[0][0] - now))
            if wait > 0:  # a sleep, not self._cond.wait(): libfaketime hangs timed waits (tools/waits.py)
                time.sleep(min(wait, 0.02))
            with self._cond:
                now = time.monotonic()
                while self._due and self._due[0][0] <= now:
                    _, _, batch = heapq.heappop(self._due)
                    if self._open.get((batch.kind, batch.url)) is batch:
                        del self._open[(batch.kind, batch.url)]
                    ready.append(batch)
            for batch in ready:
                threading.Thread(target=self._send, args=(batch,), name="sandbox-notify", daemon=True).start()
            if time.monotonic() - last_tick >= TICK_SECONDS:
                last_tick = time.monotonic()
                with contextlib.suppress(Exception):
                    self.on_tick()

    def _send(self, batch: _Batch) -> None:
        if batch.generation != self._generation:
            return
        pairs = [(item, sid) for item, sid in zip(batch.items, batch.subscription_ids, strict=True)
                 if batch.kind != "change" or self.alive(sid)]
        if not pairs:
            return
        body = {"value": [item for item, _ in pairs]}
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        timeout = self.setting("notificationTimeoutSeconds", DEFAULT_NOTIFICATION_TIMEOUT_SECONDS)
        at = utc_now_rfc3339()
        answer = post(batch.url, data, "application/json; charset=utf-8", timeout)
        delivered = answer.outcome == "answered" and answer.status is not None and 200 <= answer.status < 300
        outcome = "delivered" if delivered else ("rejected" if answer.outcome == "answered" else answer.outcome)
        with self._cond:
            if batch.generation != self._generation:
                return
            self._log.append({"index": self._next_index, "kind": batch.kind, "url": batch.url, "body": body,
                              "status": answer.status, "attempt": batch.attempt, "outcome": outcome, "at": at,
                              "durationMs": answer.duration_ms})
            self._next_index += 1
            retries = int(self.setting("notificationRetries", DEFAULT_NOTIFICATION_RETRIES))
            if not delivered and batch.attempt <= retries:
                base = self.setting("notificationRetryBaseSeconds", DEFAULT_NOTIFICATION_RETRY_BASE_SECONDS)
                again = _Batch(batch.url, batch.kind, batch.generation, attempt=batch.attempt + 1,
                               items=[item for item, _ in pairs], subscription_ids=[sid for _, sid in pairs])
                self._schedule(again, base * 2 ** (batch.attempt - 1))
