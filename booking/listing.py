"""Listing a tenant's bookings without reading its history: index rows keyed for the queries.

Every booking that is `confirmed` or `cancelled` has index rows in the bookings table, in the
tenant's partition, one per way of finding it:

    !ix:all:<status>:<start>:<bookingId>              every booking
    !ix:o<organizer key>:<status>:<start>:<bookingId>  by the organizer's SMTP address
    !ix:a<attendee key>:<status>:<start>:<bookingId>   by each invited attendee's address

`<start>` is the UTC start as `YYYYMMDDTHHMMSS` (so keys sort by start, then id), an address key
is the first 16 hex digits of the SHA-256 of the lower-cased address (a person erased from the
booking has no row: booking/erasure.py). A page is one key-range query per status asked (two
without a status filter, merged by start and id), starting at the cursor or at `from` minus 24
hours (no booking lasts longer) and ending before `to`, so it reads about a page of rows whatever
the tenant's history; each hit is checked against its booking row.

Index rows are written ahead: the rows of a booking's new state before the transaction that
moves the booking row there, the rows of its old state deleted after. A reader believes an index
row only if the booking row agrees (status, start, owner), so a crash between the steps leaves
at worst a row that is skipped, never a booking that is missed.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from booking.erasure import is_erased
from shared.errors import InvalidRequest
from shared.storage import TRANSACTION_LIMIT, Booking, Repositories, TenantRecord

PREFIX = "!ix:"
LONGEST = timedelta(hours=24)
STATUSES = ("confirmed", "cancelled")
BATCH = TRANSACTION_LIMIT  # an entity-group transaction's limit


def start_key(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%S")


def address_key(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()[:16]


@dataclass
class ListingRow(TenantRecord):
    TABLE: ClassVar[str] = "bookings"
    dimension: str  # all | o<key> | a<key>
    status: str
    startKey: str
    bookingId: str
    endKey: str = ""  # filtered on by the table service, so a window's earlier meetings are not read

    @property
    def row_key(self) -> str:
        return f"{PREFIX}{self.dimension}:{self.status}:{self.startKey}:{self.bookingId}"


def rows_for(booking: Booking) -> list[ListingRow]:
    """The index rows of the booking's state; none for a person erased from it (booking/erasure.py)."""
    if booking.status not in STATUSES:
        return []
    key, end = start_key(booking.start), start_key(booking.end)
    organizer = booking.organizerAddress or booking.organizer
    dimensions = ["all", *(() if is_erased(organizer) else ("o" + address_key(organizer),)),
                  *("a" + address_key(a) for a in dict.fromkeys(booking.attendees) if not is_erased(a))]
    return [ListingRow(tenantId=booking.tenantId, dimension=d, status=booking.status, startKey=key,
                       bookingId=booking.bookingId, endKey=end) for d in dimensions]


def ahead(repos: Repositories, booking: Booking) -> None:
    """Write the index rows of the booking's new state (before the booking row gets there)."""
    rows = rows_for(booking)
    for chunk in range(0, len(rows), BATCH):
        repos.store.transact([("upsert", row) for row in rows[chunk:chunk + BATCH]])


def behind(repos: Repositories, before: Booking, after: Booking) -> None:
    """Delete the index rows of the old state that the new state does not have."""
    keep = {row.row_key for row in rows_for(after)}
    drop(repos, [row for row in rows_for(before) if row.row_key not in keep])


def drop(repos: Repositories, rows: list[ListingRow]) -> int:
    """Delete index rows (those already gone are fine); how many were there."""
    deleted = 0
    for chunk in range(0, len(rows), BATCH):
        try:
            repos.store.transact([("delete", row) for row in rows[chunk:chunk + BATCH]])
            deleted += len(rows[chunk:chunk + BATCH])
        except Exception:  # a row already gone fails the batch: delete one by one
            for row in rows[chunk:chunk + BATCH]:
                deleted += bool(repos.store.delete(row, if_unchanged=False))
    return deleted


@dataclass(frozen=True)
class Query:
    organizer: str | None
    attendee: str | None
    start: datetime | None  # `from`
    end: datetime | None  # `to`
    status: str | None

    def signature(self) -> str:
        text = json.dumps([self.organizer, self.attendee, self.start and self.start.isoformat(),
                           self.end and self.end.isoformat(), self.status])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def dimension(self) -> str:
        if self.organizer:
            return "o" + address_key(self.organizer)
        if self.attendee:
            return "a" + address_key(self.attendee)
        return "all"


def page(repos: Repositories, tenant_id: str, organization_id: str, query: Query, *, limit: int,
         cursor: str | None) -> dict[str, Any]:
    from booking.service import view

    after = decode_cursor(cursor, query) if cursor else None
    statuses = [query.status] if query.status else list(STATUSES)
    streams = [_stream(repos, tenant_id, query, status, after, limit) for status in statuses]
    candidates = heapq.merge(*streams, key=lambda row: (row.startKey, row.bookingId))
    found: list[Booking] = []
    last: ListingRow | None = None
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="list") as pool:
        while len(found) <= limit:
            chunk = [row for _, row in zip(range(limit + 1 - len(found)), candidates, strict=False)]
            if not chunk:
                break
            # Point reads, side by side: a filter OR-ing row keys makes the table service scan the
            # partition (learn.microsoft.com/azure/storage/tables/table-storage-design-for-query).
            bookings = list(pool.map(lambda row: repos.booking(tenant_id, row.bookingId), chunk))
            for row, booking in zip(chunk, bookings, strict=True):
                if booking is not None and _matches(row, booking, query, organization_id):
                    if len(found) < limit:
                        last = row
                    found.append(booking)
    more = len(found) > limit
    return {"bookings": [view(b) for b in found[:limit]],
            "next": encode_cursor(last, query) if more and last is not None else None}


def _stream(repos: Repositories, tenant_id: str, query: Query, status: str, after: tuple[str, str] | None,
            limit: int) -> Iterator[ListingRow]:
    base = f"{PREFIX}{query.dimension}:{status}:"
    if after is not None:
        low, comparison = f"{base}{after[0]}:{after[1]}", "gt"
    elif query.start is not None:
        low, comparison = base + start_key(query.start - LONGEST), "ge"
    else:
        low, comparison = base, "ge"
    high = base + start_key(query.end) if query.end is not None else base[:-1] + ";"
    filter_ = f"PartitionKey eq @tenant and RowKey {comparison} @low and RowKey lt @high"
    params = {"tenant": tenant_id, "low": low, "high": high}
    if query.start is not None:
        filter_ += " and endKey gt @ends"  # the SDK needs a space after @name
        params["ends"] = start_key(query.start)
    return repos.store.query(ListingRow, filter_, params, page_size=min(limit + 1, 1000))


def _matches(row: ListingRow, booking: Booking, query: Query, organization_id: str) -> bool:
    if booking.status != row.status or start_key(booking.start) != row.startKey:
        return False  # an index row of a state the booking has left (or not reached)
    if booking.organizationId not in (None, organization_id):
        return False  # a previous owner's
    if query.start is not None and booking.end <= query.start:
        return False
    if query.end is not None and booking.start >= query.end:
        return False
    if query.organizer and (booking.organizerAddress or booking.organizer).lower() != query.organizer:
        return False
    return not (query.attendee and query.attendee not in booking.attendees)


def encode_cursor(row: ListingRow, query: Query) -> str:
    raw = json.dumps({"s": row.startKey, "i": row.bookingId, "q": query.signature()}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, query: Query) -> tuple[str, str]:
    try:
        if len(cursor) > 512:
            raise ValueError
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if data.get("q") != query.signature() or not isinstance(data.get("s"), str) or \
                not isinstance(data.get("i"), str) or len(data["s"]) != 15:
            raise ValueError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidRequest("cursor is not a cursor of this list (with these filters).", target="cursor") from None
    return data["s"], data["i"]
