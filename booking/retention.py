"""Retention: a booking row is deleted `BOOKING_RETENTION_DAYS` (default 90, at least 30) after its
meeting ended, with everything keyed to it (shared/API.md, "Data kept").

The `retention` sweep (background/jobs.py, on the token-refresh timer, at most once a day) runs
in three phases, each a filtered query over the whole table read a page at a time from its
continuation (the table service filters; nothing loads a table); a page job deletes at most about
`MOST_ROWS` rows (a finished phase hands on to the next within the same job while it has deleted
fewer):

1. `bookings`: booking rows whose `end` is before the cutoff (any status, any tenant). For each:
   its `!event:` index row, then the row itself (with the ETag read: a booking changed meanwhile
   is left for the next run), then its listing rows (booking/listing.py).
2. `index`: listing rows whose meeting ended before the cutoff, whatever state they describe:
   rows of an older state that a crash left behind, or of a booking whose deletion stopped
   half-way.
3. `leases`: lease rows (the organizer's, named by the mailbox address) untouched for as long.

Changes are deleted after 30 days and idempotency records 30 days after they were made, by the
`cleanup` sweep (consent/jobs.py). A key's record therefore always goes before its booking row
(a booking ends after its key was made, and is kept at least 30 days after that), so an
idempotent replay finds its booking for as long as the key is kept.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

log = logging.getLogger(__name__)

PAGE = 50  # booking rows read per page
MOST_ROWS = 300  # rows a page deletes at most (then it hands on; a booking has up to 103)
INDEX_PAGE = 300
WRITERS = 8  # bookings deleted side by side
PHASES = ("bookings", "index", "leases")


def retention_gap() -> timedelta:
    """The least time between two runs (the timer fires every few hours)."""
    return timedelta(hours=20)


def cutoff_of(run: Any) -> Any:
    from shared.settings import get_settings

    return run.at - timedelta(days=get_settings().booking_retention_days)


def retention_page(run: Any) -> tuple[str, Any]:
    """One page of the current phase (and of the next ones while this page has deleted fewer than
    `MOST_ROWS` rows); the continuation names the phase and where it stopped."""
    from shared.clients import repositories

    repos = repositories()
    state = run.continuation or {"phase": PHASES[0]}
    phase, token = state["phase"], state.get("token")
    cutoff = cutoff_of(run)
    done: list[str] = []
    deleted = 0
    while True:
        outcome, next_token, more, count = {"bookings": _bookings, "index": _index, "leases": _leases}[phase](
            repos, cutoff, token)
        done.append(f"{phase}: {outcome}")
        deleted += count
        if more:  # stopped inside the page: read it again (what was deleted is not there any more)
            return "; ".join(done), {"phase": phase, "token": token}
        if next_token is not None:
            return "; ".join(done), {"phase": phase, "token": next_token}
        following = PHASES.index(phase) + 1
        if following == len(PHASES):
            return "; ".join(done), None
        phase, token = PHASES[following], None
        if deleted >= MOST_ROWS:
            return "; ".join(done), {"phase": phase}


def _bookings(repos: Any, cutoff: Any, token: Any) -> tuple[str, Any, bool, int]:
    from concurrent.futures import ThreadPoolExecutor

    from shared.storage import Booking

    rows, next_token = repos.store.page(Booking, "end lt @cutoff", {"cutoff": cutoff}, page_size=PAGE,
                                        continuation=token)
    deleted = bookings = 0
    with ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="retention") as pool:
        for first in range(0, len(rows), WRITERS):
            if deleted >= MOST_ROWS:
                return f"{bookings} booking(s), {deleted} row(s) deleted; more in this page", next_token, True, deleted
            for count in pool.map(lambda booking: delete_booking(repos, booking), rows[first:first + WRITERS]):
                bookings += bool(count)
                deleted += count
    return f"{bookings} booking(s), {deleted} row(s) deleted", next_token, False, deleted


def delete_booking(repos: Any, booking: Any) -> int:
    """Delete the booking row and the rows keyed to it; how many rows went (0: it changed since
    it was read, and is left for the next run). One transaction (the same table and partition)
    when every row is there, else row by row."""
    from booking import listing
    from shared.errors import ConcurrencyConflict
    from shared.storage import EventIndex

    index = listing.rows_for(booking)
    event = [EventIndex(tenantId=booking.tenantId, eventId=booking.eventId, bookingId=booking.bookingId)] \
        if booking.eventId else []
    if len(index) + len(event) < listing.BATCH:
        try:
            repos.store.transact([("delete", booking), *(("delete", row) for row in [*event, *index])])
            return 1 + len(event) + len(index)
        except ConcurrencyConflict:
            pass  # changed since read, or a row of it already gone: one by one
    deleted = sum(bool(repos.store.delete(row, if_unchanged=False)) for row in event)
    try:
        if not repos.store.delete(booking):  # with its ETag
            return deleted
    except ConcurrencyConflict:
        log.info("a booking due for deletion changed meanwhile; the next run deletes it")
        return deleted
    return deleted + 1 + listing.drop(repos, index)


def _index(repos: Any, cutoff: Any, token: Any) -> tuple[str, Any, bool, int]:
    from booking.listing import PREFIX, ListingRow, start_key

    rows, next_token = repos.store.page(
        ListingRow, "RowKey ge @low and RowKey lt @high and endKey gt '0' and endKey lt @cutoff",
        {"low": PREFIX, "high": PREFIX[:-1] + ";", "cutoff": start_key(cutoff)}, page_size=INDEX_PAGE,
        continuation=token)
    deleted = sum(bool(repos.store.delete(row, if_unchanged=False)) for row in rows)
    return f"{deleted} index row(s) deleted", next_token, False, deleted


def _leases(repos: Any, cutoff: Any, token: Any) -> tuple[str, Any, bool, int]:
    from shared.errors import ConcurrencyConflict
    from shared.storage import Lease

    rows, next_token = repos.store.page(Lease, "Timestamp lt @cutoff", {"cutoff": cutoff}, page_size=INDEX_PAGE,
                                        continuation=token)
    deleted = 0
    for row in rows:
        try:
            deleted += bool(repos.store.delete(row))  # only if untouched since read (its ETag)
        except ConcurrencyConflict:
            continue
    return f"{deleted} lease row(s) deleted", next_token, False, deleted
