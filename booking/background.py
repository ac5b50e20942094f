"""The booking reconciler: a timer that finishes bookings left `creating` or `uncertain`.

A caller that got 503 `booking_outcome_unknown` may never retry, and a host may die between the
create and the confirmation. Each run pages the rows in those states whose last attempt can no
longer land (or that never sent one and are older than a hold), and for each one takes the key over
and does what a retry with the key would do (`BookingService.reconcile`): adopt the event found by
its tag, or create it once. A run does at most `PER_RUN` rows; the next run takes the rest.
"""

from __future__ import annotations

import logging

import azure.functions as func

from shared.logs import request_context

log = logging.getLogger(__name__)

bp = func.Blueprint()
PER_RUN = 200


def reconcile_stuck(per_run: int = PER_RUN) -> dict[str, int]:
    from booking.routes import booking_service
    from shared.clients import repositories
    from shared.storage import Tenant

    repos = repositories()
    service = booking_service()
    outcomes: dict[str, int] = {}
    tenants: dict[str, Tenant | None] = {}
    for row in repos.stuck_bookings(older_than=service.keys.hold, limit=per_run):
        if row.tenantId not in tenants:  # one read per tenant and run
            tenants[row.tenantId] = repos.tenant(row.tenantId)
        tenant = tenants[row.tenantId]
        outcome = service.reconcile(tenant, row.bookingId) if tenant is not None else "tenant gone"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if outcomes:
        log.info("reconciler: %s", ", ".join(f"{count} {what}" for what, count in sorted(outcomes.items())))
    return outcomes


def keep_subscriptions(per_run: int = PER_RUN) -> dict[str, int]:
    """Renew subscriptions due, make again those Graph lost, drop those of organizers with no
    upcoming booking or of tenants not enabled (sync/subscriptions.py)."""
    from sync.jobs import subscriptions

    outcomes = subscriptions().sweep(limit=per_run)
    if outcomes:
        log.info("subscriptions: %s", ", ".join(f"{count} {what}" for what, count in sorted(outcomes.items())))
    return outcomes


# UTC; the schedule is an app setting (default every 2 minutes); one run at a time.
@bp.function_name("booking_reconciler")
@bp.timer_trigger(schedule="%BOOKING_RECONCILE_SCHEDULE%", arg_name="timer", run_on_startup=False,
                  use_monitor=True)
def booking_reconciler(timer: func.TimerRequest) -> None:
    with request_context("reconciler"):
        reconcile_stuck()
        keep_subscriptions()
