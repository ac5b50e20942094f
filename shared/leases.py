"""Short leases on Table Storage rows: mutual exclusion across instances, with ETags.

A lease is a row (`Lease`) whose `holder` and `expiresAt` say who has it until when. Taking it is
an insert (first time) or an update with the ETag that was read, so two instances can never both
win; a holder that crashed loses it when it expires. Used to run one organizer's bookings one at
a time, so two overlapping requests cannot both pass the availability re-check.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

from shared.errors import AlreadyExists, ConcurrencyConflict, UpstreamThrottled
from shared.storage import Lease, Repositories, utcnow

log = logging.getLogger(__name__)


def try_take(repos: Repositories, tenant_id: str, name: str, holder: str, ttl: timedelta) -> Lease | None:
    now = utcnow()
    current = repos.lease(tenant_id, name)
    try:
        if current is None:
            return repos.store.insert(Lease(tenantId=tenant_id, name=name, holder=holder, expiresAt=now + ttl))
        if current.holder and current.expiresAt and current.expiresAt > now:
            return None
        current.holder, current.expiresAt = holder, now + ttl
        return repos.store.update(current)
    except (AlreadyExists, ConcurrencyConflict):
        return None


@contextlib.contextmanager
def hold(repos: Repositories, tenant_id: str, name: str, *, ttl: timedelta = timedelta(seconds=30),
         wait: float = 15.0, poll: float = 0.1) -> Iterator[Lease]:
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
        lease.holder, lease.expiresAt = None, None
        try:
            repos.store.update(lease)
        except ConcurrencyConflict:
            log.warning("a lease expired and was taken over before it was released")
