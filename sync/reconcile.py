"""Reconciliation: every upcoming booking re-read at least every `RECONCILE_HOURS` (default 6),
whatever Graph's notifications did. Microsoft documents that notifications can be lost, delayed
or duplicated, and that subscriptions are removed (learn.microsoft.com/graph/
change-notifications-lifecycle-events, "missed"); this is the floor under them.

A pass starts at most every `RECONCILE_HOURS / 2` (background/jobs.py: the `reconcile` sweep on
the reconciler timer), so even a pass that starts late and takes a while leaves no booking unread
for longer than `RECONCILE_HOURS`. The pass pages through enabled tenants and queues one job per
tenant; that job reads a page of the tenant's upcoming confirmed bookings from the listing index
(booking/listing.py: key-range reads, never the tenant's history), re-reads each event exactly as
a notification would (sync/follow.py: at most one change, only when something the booking keeps
changed) and queues the tenant's next page; an organizer found without a subscription (a tenant
enabled again, a lost subscribe job) is subscribed. The cost is one index row and one Graph read
per upcoming booking, one point read per organizer, plus a page read per 200 tenants; the work is
spread over the queue.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)

RECONCILE = "sync.reconcile"
TENANT_PAGE = 200
BOOKING_PAGE = 50


def pass_gap() -> timedelta:
    from shared.settings import get_settings

    return timedelta(hours=get_settings().reconcile_hours) / 2


def tenants_page(run: Any) -> tuple[str, Any]:
    from shared.clients import job_queue, repositories

    tenants, token = repositories().tenants_page(status="enabled", page_size=TENANT_PAGE,
                                                 continuation=run.continuation)
    queue = job_queue()
    for tenant in tenants:
        queue.send({"kind": RECONCILE, "tenantId": tenant.tenantId, "at": run.at.isoformat()})
    return f"{len(tenants)} tenant(s) to reconcile", token


def reconcile_tenant_job(message: dict[str, Any]) -> str:
    """Re-read a page of the tenant's upcoming bookings (from the previous page's continuation),
    then queue the next page."""
    from booking.listing import LONGEST, PREFIX, ListingRow, start_key
    from shared.clients import job_queue, repositories
    from shared.storage import utcnow
    from sync.jobs import follower

    repos = repositories()
    tenant_id = message["tenantId"]
    tenant = repos.tenant(tenant_id)
    if tenant is None or tenant.status != "enabled":
        return "skipped: tenant not enabled"
    now = utcnow()
    # From a day back (no booking lasts longer), those not yet ended.
    rows, token = repos.store.page(
        ListingRow, "PartitionKey eq @tenant and RowKey gt @after and RowKey lt @end and endKey gt @now",
        {"tenant": tenant_id, "after": f"{PREFIX}all:confirmed:{start_key(now - LONGEST)}",
         "end": f"{PREFIX}all:confirmed;", "now": start_key(now)},
        page_size=BOOKING_PAGE, continuation=message.get("continuation"))
    outcomes: dict[str, int] = {}
    upcoming = []
    for row in rows:
        booking = repos.booking(tenant_id, row.bookingId)
        if booking is None or booking.status != "confirmed":
            continue  # an index row ahead of or behind its booking (booking/listing.py)
        upcoming.append(booking)
        try:
            outcome = follower().refresh(tenant, booking)
        except Exception as error:  # one event's failure does not stop the tenant's pass
            log.warning("reconciling a booking failed (%s); the next pass reads it again", type(error).__name__)
            outcome = "failed"
        outcome = outcome.split(":")[0]
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    _subscribe_missing(repos, tenant_id, upcoming)
    if token is not None:
        job_queue().send({**message, "continuation": token})
    summary = ", ".join(f"{n} {what}" for what, n in sorted(outcomes.items())) or "nothing upcoming"
    return f"reconciled: {summary}"



def _subscribe_missing(repos: Any, tenant_id: str, bookings: list[Any]) -> None:
    """An organizer with an upcoming booking and no subscription row (a tenant enabled again
    after its consent came back, a lost subscribe job) gets one: one point read per organizer."""
    from sync.jobs import mailbox_changed
    from sync.subscriptions import Subscription, mailbox_key

    seen: set[str] = set()
    for booking in bookings:
        address = (booking.organizerAddress or "").lower()
        if not address or address in seen:
            continue
        seen.add(address)
        if repos.store.get(Subscription, tenant_id, "sub:" + mailbox_key(address)) is None:
            mailbox_changed(booking)
