"""The booking reconciler's sweep: finish bookings left `creating` or `uncertain`.

A caller that got 503 `booking_outcome_unknown` may never retry, and a host may die between the
create and the confirmation. Each page takes the rows in those states whose last attempt can no
longer land (or that never sent one and are older than a hold), and for each one takes the key over
and does what a retry with the key would do (`BookingService.reconcile`): adopt the event found by
its tag, or create it once. A page does at most `PER_RUN` rows; a full page hands on to the next
(background/jobs.py runs it on the reconciler timer).

The rows are found through their attempt markers (one partition, written before each booking row;
`Repositories.stuck_bookings`), so a run reads the bookings being made, not the whole table. Once a
day `stuck-scan` looks across every partition instead, for any row without a marker.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

PER_RUN = 200
MAX_PAGES = 10


def reconcile_stuck(per_run: int = PER_RUN, *, scan: bool = False) -> dict[str, int]:
    """Each stuck booking finished, found through the attempt markers (`scan`: by a filter across
    every tenant's rows, the daily safety net for rows without a marker)."""
    from booking.routes import booking_service
    from shared.clients import repositories
    from shared.storage import Tenant

    repos = repositories()
    service = booking_service()
    outcomes: dict[str, int] = {}
    tenants: dict[str, Tenant | None] = {}
    find = repos.stuck_bookings_scanned if scan else repos.stuck_bookings
    for row in find(older_than=service.keys.hold, limit=per_run):
        if row.tenantId not in tenants:  # one read per tenant and run
            tenants[row.tenantId] = repos.tenant(row.tenantId)
        tenant = tenants[row.tenantId]
        outcome = service.reconcile(tenant, row.bookingId) if tenant is not None else "tenant gone"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    if outcomes:
        log.info("reconciler: %s", ", ".join(f"{count} {what}" for what, count in sorted(outcomes.items())))
    return outcomes


def stuck_page(run: Any, *, scan: bool = False) -> tuple[str, Any]:
    outcomes = reconcile_stuck(scan=scan)
    done = sum(outcomes.values())
    # Rows finished leave the query; rows still stuck (Graph failing) stay in it, so a run hands
    # on at most MAX_PAGES times and the next timer run takes the rest.
    more = done == PER_RUN and run.page < MAX_PAGES
    return f"{done} stuck booking(s)", ({"more": True} if more else None)


def stuck_scan_page(run: Any) -> tuple[str, Any]:
    """The daily safety net: the same work, finding rows by a filter across every partition (a
    table scan), for any row without an attempt marker (one written before markers existed)."""
    return stuck_page(run, scan=True)
