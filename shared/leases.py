"""Leases on Table Storage rows that cannot be outlived: mutual exclusion across instances.

A lease is a row (`Lease`) whose `holder` and `expiresAt` say who has it until when. Taking it is
an insert (first time) or an update with the ETag that was read, so two instances never both win.

Graph takes no fencing token, so a lease alone cannot stop a late write of a holder that lost it.
Three rules make sure no holder ever writes without it:
- the holder counts its lease from *before* the write that took or renewed it (its own monotonic
  clock, less `CLOCK_SKEW` for other instances' wall clocks), never from the row;
- before each Graph write it calls `ensure(window)`: at least the whole window of that write (the
  client's timeout plus the time Graph may still take to act on a request the client gave up on)
  must be left, else the lease is renewed with an ETag, or, if that fails, `LeaseLost` is raised
  and nothing is written;
- a write whose outcome is unknown `fence`s the lease until that write's deadline: releasing it
  then keeps it held (holder kept, `expiresAt` = the deadline), so the next holder starts only
  when the write can no longer land.
A holder that crashed loses the lease when it expires, which is after any write it had sent.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta

from shared.errors import AlreadyExists, ConcurrencyConflict, UpstreamThrottled
from shared.storage import Lease, Repositories, utcnow

log = logging.getLogger(__name__)

# How far instances' wall clocks may disagree (Azure keeps hosts NTP-synchronised well within it).
CLOCK_SKEW = timedelta(seconds=2)


class LeaseLost(Exception):
    """The lease ran out or was taken over: the holder must stop before writing anything."""


class HeldLease:
    """A lease this instance holds, with its own view of how long it is still valid."""

    def __init__(self, repos: Repositories, row: Lease, ttl: timedelta, taken_at: float) -> None:
        self.repos = repos
        self.row = row
        self.ttl = ttl
        self._valid_until = taken_at + (ttl - CLOCK_SKEW).total_seconds()
        self._fence: datetime | None = None

    def remaining(self) -> float:
        """Seconds this holder may still count on the lease."""
        return self._valid_until - time.monotonic()

    def ensure(self, window: timedelta) -> None:
        """At least `window` left on the lease, renewing it if needed; LeaseLost if it cannot be."""
        if self.remaining() >= window.total_seconds():
            return
        self.renew(max(window + CLOCK_SKEW * 2, self.ttl))

    def renew(self, length: timedelta) -> None:
        began = time.monotonic()
        if self.remaining() <= 0:
            raise LeaseLost("the lease ran out before it was renewed")
        self.row.expiresAt = utcnow() + length
        try:
            self.row = self.repos.store.update(self.row)
        except ConcurrencyConflict:
            raise LeaseLost("the lease was taken over") from None
        self._valid_until = began + (length - CLOCK_SKEW).total_seconds()

    def fence(self, until: datetime) -> None:
        """Keep the lease held until `until` (a write that may still land), even once released."""
        self._fence = until if self._fence is None else max(self._fence, until)

    def release(self) -> None:
        now = utcnow()
        if self._fence is not None and self._fence > now:
            self.row.expiresAt = max(self._fence, self.row.expiresAt or now)  # holder kept
        else:
            self.row.holder, self.row.expiresAt = None, None
        try:
            self.repos.store.update(self.row)
        except ConcurrencyConflict:
            log.warning("a lease was taken over before it was released")


def try_take(repos: Repositories, tenant_id: str, name: str, holder: str, ttl: timedelta) -> HeldLease | None:
    began = time.monotonic()
    now = utcnow()
    current = repos.lease(tenant_id, name)
    try:
        if current is None:
            row = repos.store.insert(Lease(tenantId=tenant_id, name=name, holder=holder, expiresAt=now + ttl))
        else:
            if current.holder and current.expiresAt and current.expiresAt > now:
                return None
            current.holder, current.expiresAt = holder, now + ttl
            row = repos.store.update(current)
    except (AlreadyExists, ConcurrencyConflict):
        return None
    return HeldLease(repos, row, ttl, began)


@contextlib.contextmanager
def hold(repos: Repositories, tenant_id: str, name: str, *, ttl: timedelta = timedelta(seconds=30),
         wait: float = 15.0, poll: float = 0.1) -> Iterator[HeldLease]:
    """Hold the lease for the block, waiting up to `wait` seconds for it; then 503 (retry)."""
    holder = uuid.uuid4().hex
    deadline = time.monotonic() + wait
    while True:
        lease = try_take(repos, tenant_id, name, holder, ttl)
        if lease is not None:
            break
        if time.monotonic() >= deadline:
            raise UpstreamThrottled("Another booking for this organizer is still running; retry shortly.",
                                    retry_after=2)
        time.sleep(poll)
    try:
        yield lease
    finally:
        lease.release()
