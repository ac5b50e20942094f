"""Sync's queue jobs (on the background jobs queue, dispatched by `kind`) and the services they use.

- `sync.notification`: an item of a Graph notification: map the event id, re-read, record.
- `sync.lifecycle`: `reauthorizationRequired` reauthorizes (a renewal does that too);
  `subscriptionRemoved` makes the subscription again, and with `missed` re-reads every upcoming
  booking of that mailbox (learn.microsoft.com/graph/change-notifications-lifecycle-events).
- `sync.mailbox`: after a booking was confirmed or cancelled: subscribe the organizer's mailbox
  when it has an upcoming booking, unsubscribe it when it has none.
- `sync.tenant`: a tenant disconnected or revoked: delete its subscriptions.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

from sync.inbox import LIFECYCLE, NOTIFICATION

log = logging.getLogger(__name__)

MAILBOX = "sync.mailbox"
TENANT = "sync.tenant"
KINDS = frozenset({NOTIFICATION, LIFECYCLE, MAILBOX, TENANT})
RESYNC_LIMIT = 500
PAGE = 200
MAX_PAGES = 10


@lru_cache(maxsize=1)
def subscriptions() -> Any:
    from shared.clients import graph_client, member_tokens, repositories
    from shared.settings import get_settings
    from sync.subscriptions import Subscriptions

    return Subscriptions(repositories(), graph_client(), member_tokens(),
                         notification_url=f"{get_settings().public_base_url}/api/graph/notifications")


@lru_cache(maxsize=1)
def recogniser() -> Any:
    from shared.clients import repositories
    from sync.subscriptions import Recogniser

    return Recogniser(repositories())


@lru_cache(maxsize=1)
def follower() -> Any:
    from booking.routes import booking_service
    from shared.clients import member_tokens, repositories
    from sync.follow import Follower

    service = booking_service()
    return Follower(repositories(), service.events, member_tokens(), service.changes)


def cache_clear() -> None:
    subscriptions.cache_clear()
    recogniser.cache_clear()
    follower.cache_clear()


def mailbox_changed(booking: Any) -> None:
    """Ask for the organizer's subscription to be made or dropped, within seconds (best effort:
    the reconciler's sweep catches up with anything this misses)."""
    from shared.clients import job_queue

    try:
        job_queue().send({"kind": MAILBOX, "tenantId": booking.tenantId, "address": booking.organizerAddress or "",
                          "path": booking.organizer})
    except Exception as error:
        log.warning("could not queue the organizer's subscription (%s); the sweep will", type(error).__name__)


def tenant_closed(tenant_id: str) -> None:
    from shared.clients import job_queue

    try:
        job_queue().send({"kind": TENANT, "tenantId": tenant_id})
    except Exception as error:
        log.warning("could not queue the tenant's unsubscribe (%s); the sweep will", type(error).__name__)


def run(message: dict[str, Any]) -> str:
    from shared.clients import repositories

    kind, tenant_id = message["kind"], message["tenantId"]
    repos = repositories()
    if kind == NOTIFICATION:
        return follower().notified(tenant_id, message["eventId"])
    if kind == MAILBOX:
        return mailbox(tenant_id, str(message["address"]).lower(), message["path"])
    if kind == TENANT:
        return f"{subscriptions().remove_tenant(tenant_id)} subscription(s) deleted"
    if kind == LIFECYCLE:
        row = subscriptions().row(tenant_id, message["mailboxKey"])
        tenant = repos.tenant(tenant_id)
        if row is None or tenant is None:
            return "subscription gone"
        event = message["lifecycleEvent"]
        if event == "reauthorizationRequired":
            return subscriptions().renew(row)
        if event == "subscriptionRemoved":
            log.warning("subscription made again: Graph removed it (subscriptionRemoved)")
            repos.store.delete(row, if_unchanged=False)
            made = subscriptions().ensure(tenant, row.address, row.path)
            return f"{made}; {resync(tenant, row.address)}"
        return resync(tenant, row.address)
    raise ValueError(f"unknown sync job kind {kind!r}")


def subscriptions_page(run: Any) -> tuple[str, Any]:
    """The reconciler's sweep of subscriptions: renew those due, make again those Graph lost, drop
    those of organizers with no upcoming booking or of tenants not enabled (sync/subscriptions.py);
    a full page hands on to the next, at most MAX_PAGES per run."""
    outcomes = subscriptions().sweep(limit=PAGE)
    done = sum(outcomes.values())
    if outcomes:
        log.info("subscriptions: %s", ", ".join(f"{count} {what}" for what, count in sorted(outcomes.items())))
    return f"{done} subscription(s) checked", ({"more": True} if done == PAGE and run.page < MAX_PAGES else None)


def mailbox(tenant_id: str, address: str, path: str) -> str:
    from shared.clients import repositories
    from shared.storage import utcnow
    from sync.subscriptions import mailbox_key

    repos = repositories()
    tenant = repos.tenant(tenant_id)
    if tenant is None:
        return "tenant gone"
    if repos.upcoming_bookings(tenant_id, address, utcnow()):
        made = subscriptions().ensure(tenant, address, path)
        if made == "subscribed" or made.startswith("made again"):
            # What happened in Outlook before the subscription existed was never notified: the
            # mailbox's upcoming bookings are read once now, as after `missed`.
            return f"{made}; {resync(tenant, address)}"
        return made
    row = subscriptions().row(tenant_id, mailbox_key(address))
    return subscriptions().remove(row) if row is not None else "no upcoming booking"


def resync(tenant: Any, address: str) -> str:
    """Re-read every upcoming booking of the mailbox (notifications were lost)."""
    from shared.clients import repositories
    from shared.storage import utcnow

    outcomes: dict[str, int] = {}
    for booking in repositories().upcoming_bookings(tenant.tenantId, address, utcnow(), limit=RESYNC_LIMIT):
        outcome = follower().refresh(tenant, booking)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return "re-read: " + (", ".join(f"{n} {what}" for what, n in sorted(outcomes.items())) or "nothing")
