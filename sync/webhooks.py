"""Webhooks: every change of the feed POSTed to `WEBHOOK_URL`, signed, at least once.

The feed is the outbox. A change is delivered from its row in the feed (sync/changes.py), never
from memory, so nothing recorded can be missed:

- Before a change is recorded, the tenant's `pending` row is written (table `webhooks`); after,
  a `webhook.pump` job is queued. A host that dies between the two leaves the pending row, which
  the reconciler timer's `webhooks` sweep turns into a pump job a minute later.
- The pump reads the tenant's change counter, claims the numbers after `hooksQueued` (ETag, so
  two pumps never queue the same changes), queues a `webhook.deliver` job for each, moves
  `hooksQueued` up, and deletes the pending row if no change came meanwhile (ETag). A pump that
  dies half-way leaves its claim, which lapses after a minute: those are queued again (at least
  once).
- A delivery reads the change's row (so an erased person is never sent), signs the exact bytes
  sent, and POSTs them with a 10 s timeout. Any 2xx is delivered. Anything else is tried again
  after growing waits (`WAITS`) for up to 24 hours from the first attempt, then a message naming
  the change (its id, number, type and booking id, no personal data) goes to the jobs' poison
  queue, where operators see it (README, "Operations"), and the alert fires.

Signature (shared/API.md, Changes): `X-10KC-Signature: t=<unix seconds>,v1=<hex>`, HMAC-SHA256
keyed by the UTF-8 bytes of the Key Vault secret `WEBHOOK_SECRET_NAME` over `<t>.` followed by the
body bytes; while a rotation is under way (the newest version and an older one both enabled) both
signatures, the newest first. The signing keys are read from Key Vault at most once a minute.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, ClassVar

from shared.storage import Record, utcnow

log = logging.getLogger(__name__)

PUMP = "webhook.pump"
DELIVER = "webhook.deliver"
SIGNATURE_HEADER = "X-10KC-Signature"
TIMEOUT_SECONDS = 10
RETRY_WINDOW = timedelta(hours=24)
# Waits before the 2nd, 3rd, ... attempt; the last repeats until the window ends.
WAITS = (5, 15, 60, 300, 900, 1800, 3600, 7200)
PENDING_GRACE = timedelta(minutes=1)  # a pending row older than this lost its pump job
CLAIM_HELD = timedelta(minutes=1)  # a pump's claim older than this was left by a pump that died
BUSY_RETRY_SECONDS = 2
PAGE = 200
KEYS_CACHED_FOR = 60.0


@dataclass
class Pending(Record):
    """A tenant whose changes may not all have delivery jobs yet."""

    TABLE: ClassVar[str] = "webhooks"
    tenantId: str
    since: datetime | None = None

    @property
    def partition_key(self) -> str:
        return "pending"

    @property
    def row_key(self) -> str:
        return self.tenantId


def enabled() -> bool:
    from shared.settings import get_settings

    return get_settings().webhook_url is not None


# -- around recording a change (sync/changes.py) ------------------------------------------------------


def before_change(repos: Any, tenant_id: str) -> None:
    repos.store.upsert(Pending(tenantId=tenant_id, since=utcnow()))


def after_change(tenant_id: str) -> None:
    from shared.clients import job_queue

    try:
        job_queue().send({"kind": PUMP, "tenantId": tenant_id})
    except Exception as error:  # the pending row stays: the sweep queues the pump
        log.warning("could not queue the webhook pump (%s); the sweep will", type(error).__name__)


# -- the pump -------------------------------------------------------------------------------------------


def pump_job(message: dict[str, Any]) -> str:
    from shared.clients import job_queue, repositories

    return pump(repositories(), job_queue(), message["tenantId"])


def pump(repos: Any, queue: Any, tenant_id: str, *, now: datetime | None = None) -> str:
    """Queue a delivery job for every change after `hooksQueued`. One pump at a time per tenant:
    it first claims the numbers up to the newest (`hooksClaimed`, `claimedAt`, with the counter's
    ETag), queues them, then moves `hooksQueued` up; a pump that finds a live claim tries again
    in a few seconds. A claim older than `CLAIM_HELD` was left by a pump that died: the numbers
    are queued again (at least once)."""
    from shared.errors import ConcurrencyConflict
    from shared.queues import pack
    from sync.changes import COUNTER_KEY, ChangeCounter

    pending = repos.store.get(Pending, "pending", tenant_id)
    queued = 0
    while True:
        counter = repos.store.get(ChangeCounter, tenant_id, COUNTER_KEY)
        if counter is None:
            break
        clock = now or utcnow()
        if counter.hooksQueued is None:  # a counter from before webhooks were on: from now on
            counter.hooksQueued = counter.hooksClaimed = counter.last
        elif counter.last <= counter.hooksQueued:
            break
        elif counter.hooksClaimed is not None and counter.hooksClaimed > counter.hooksQueued and \
                counter.claimedAt is not None and clock - counter.claimedAt < CLAIM_HELD:
            queue.send({"kind": PUMP, "tenantId": tenant_id}, delay=BUSY_RETRY_SECONDS)
            return f"{queued} delivery job(s) queued; another pump is at it: again in {BUSY_RETRY_SECONDS} s"
        else:
            first, last = counter.hooksQueued + 1, counter.last
            counter.hooksClaimed, counter.claimedAt = last, clock
            try:
                repos.store.update(counter)  # the claim, with the counter's ETag
            except ConcurrencyConflict:
                continue  # a change or another pump came meanwhile: read again
            jobs = [{"kind": DELIVER, "tenantId": tenant_id, "number": n, "attempt": 1, "firstAt": clock.isoformat()}
                    for n in range(first, last + 1)]
            for message in pack(jobs):
                queue.send(message)
            queued += len(jobs)

            def advance(row: ChangeCounter, last: int = last) -> ChangeCounter | None:
                if row.hooksQueued is not None and row.hooksQueued >= last:
                    return None
                row.hooksQueued = last
                return row

            repos.store.modify(ChangeCounter, tenant_id, COUNTER_KEY, advance)
            continue  # changes recorded meanwhile are taken by this pump too
        try:
            repos.store.update(counter)
        except ConcurrencyConflict:
            continue
    if pending is not None:
        repos.store.delete(pending)  # only if no change came meanwhile (its ETag); else its pump
    return f"{queued} delivery job(s) queued"


def pending_page(run: Any) -> tuple[str, Any]:
    """The reconciler timer's sweep: a pump for each tenant whose pending row is older than the
    grace (its pump job was lost)."""
    from shared.clients import job_queue, repositories

    if not enabled():
        return "webhooks off", None
    rows, token = repositories().store.page(Pending, "PartitionKey eq 'pending' and since lt @before",
                                            {"before": run.at - PENDING_GRACE}, page_size=PAGE,
                                            continuation=run.continuation)
    queue = job_queue()
    for row in rows:
        queue.send({"kind": PUMP, "tenantId": row.tenantId})
    return f"{len(rows)} pump(s) queued", token


# -- a delivery -----------------------------------------------------------------------------------------


def deliver_job(message: dict[str, Any]) -> str:
    from shared.clients import job_queue, repositories

    if not enabled():
        return "skipped: webhooks off"
    return webhooks().deliver(repositories(), job_queue(), message)


def sign(body: bytes, keys: list[bytes], at: int) -> str:
    signed = f"{at}.".encode() + body
    return ",".join([f"t={at}", *(f"v1={hmac.new(key, signed, hashlib.sha256).hexdigest()}" for key in keys)])


def next_wait(attempt: int) -> int:
    """Seconds before attempt `attempt + 1`."""
    return WAITS[min(attempt, len(WAITS)) - 1]


class Webhooks:
    def __init__(self, url: str, secrets: Any, secret_name: str, *, session: Any = None,
                 clock: Any = utcnow) -> None:
        self.url = url
        self.secrets = secrets
        self.secret_name = secret_name
        self.clock = clock
        self._session = session
        self._keys: tuple[float, list[bytes]] | None = None
        self._lock = threading.Lock()

    @property
    def session(self) -> Any:
        if self._session is None:
            import requests

            self._session = requests.Session()
        return self._session

    def keys(self) -> list[bytes]:
        """The enabled versions' values, newest first, at most two (a rotation under way)."""
        cached = self._keys
        if cached is not None and time.monotonic() - cached[0] < KEYS_CACHED_FOR:
            return cached[1]
        with self._lock:
            values = [value.encode("utf-8") for value in self.secrets.enabled_values(self.secret_name, limit=2)]
            if not values:
                raise RuntimeError("the webhook signing secret has no enabled version")
            self._keys = (time.monotonic(), values)
        return values

    def deliver(self, repos: Any, queue: Any, message: dict[str, Any]) -> str:
        from sync.changes import ChangeRecord, change_key

        try:
            tenant_id, number = str(message["tenantId"]), int(message["number"])
            attempt, first = int(message.get("attempt", 1)), datetime.fromisoformat(message["firstAt"])
        except (KeyError, ValueError, TypeError):
            raise ValueError("malformed webhook job") from None
        change = repos.store.get(ChangeRecord, tenant_id, change_key(number))
        if change is None:
            return "skipped: the change is no longer kept"
        body = change.body.encode("utf-8")
        problem = self._post(body)
        if problem is None:
            return "delivered"
        now = self.clock()
        if now - first >= RETRY_WINDOW:
            self._give_up(change, message, attempt, problem)
            return f"given up after {attempt} attempt(s): {problem}"
        wait = next_wait(attempt)
        queue.send({**message, "attempt": attempt + 1}, delay=wait)
        log.info("webhook not delivered (%s); attempt %d in %d s", problem, attempt + 1, wait)
        return f"retry in {wait} s: {problem}"

    def _post(self, body: bytes) -> str | None:
        """None when delivered, else what went wrong (no URL parts, no body)."""
        import requests

        headers = {"Content-Type": "application/json", "User-Agent": "10KC-Webhooks/1",
                   SIGNATURE_HEADER: sign(body, self.keys(), int(time.time()))}
        try:
            answer = self.session.post(self.url, data=body, headers=headers, timeout=TIMEOUT_SECONDS,
                                       allow_redirects=False)
        except requests.Timeout:
            return "no answer in 10 s"
        except requests.RequestException as error:
            return f"not reached ({type(error).__name__})"
        if 200 <= answer.status_code < 300:
            return None
        return f"answered {answer.status_code}"

    def _give_up(self, change: Any, message: dict[str, Any], attempts: int, problem: str) -> None:
        import json

        from shared.clients import poison_queue

        data = json.loads(change.body)
        poison_queue().send({**message, "attempt": attempts, "changeId": data.get("id"), "type": data.get("type"),
                             "bookingId": data.get("bookingId"), "lastProblem": problem,
                             "givenUpAt": utcnow().isoformat()})
        log.error("webhook delivery given up after 24 hours (%d attempts, %s): change kept in the poison queue",
                  attempts, problem)


@cache
def webhooks() -> Webhooks:
    from shared.clients import secret_store
    from shared.settings import get_settings

    settings = get_settings()
    if settings.webhook_url is None:
        raise RuntimeError("WEBHOOK_URL is not set")
    return Webhooks(settings.webhook_url, secret_store(), settings.webhook_secret_name)
