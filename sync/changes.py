"""The changes feed: what happened to a tenant's bookings, members and the tenant itself, in order.

Numbering without gaps a reader could pass. Each tenant has a counter row, and every change is
written in one entity-group transaction with the counter's next value (ETag on the counter) and,
for a booking, with the booking row's new state (ETag on the booking). So a change number exists
only together with everything before it, several hosts never take the same number, and a booking
state is recorded exactly once however many times a notification is processed: a second attempt
finds the row already changed and records nothing. The counter and the changes live in the
bookings table, in the tenant's partition (row keys starting with `!`, which no booking id has),
because a transaction spans one table and one partition.

Cursors are opaque (base64url of the tenant and the last number read). Changes are kept 30 days:
the timer first raises the counter's `prunedThrough`, then deletes; a cursor is 410
`cursor_expired` only if changes after it were deleted (a quiet tenant's old cursor stays good).
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from shared.errors import AlreadyExists, ConcurrencyConflict, InvalidRequest, ServiceError
from shared.http import utc_stamp
from shared.storage import Record, Repositories, TenantRecord, backoff, utcnow

log = logging.getLogger(__name__)

COUNTER_KEY = "!changes"
CHANGE_PREFIX = "!chg:"
KEPT = timedelta(days=30)
TYPES = {
    "booking.created": {"api"},
    "booking.updated": {"rescheduled", "moved_in_outlook", "attendee_responded"},
    "booking.cancelled": {"api", "cancelled_in_outlook", "deleted_in_outlook"},
    "member.needs_reconnect": {"token_refused"},
    "tenant.status_changed": {"consent_completed", "consent_revoked", "consent_restored", "disconnected"},
}


class CursorExpired(ServiceError):
    status, code = 410, "cursor_expired"


@dataclass
class ChangeCounter(TenantRecord):
    TABLE: ClassVar[str] = "bookings"
    REMEMBER: ClassVar[bool] = True  # see COUNTER_MEMORY
    last: int = 0  # the number of the newest change
    prunedThrough: int = 0  # every change up to this number is deleted (retention)
    # Every change up to this number has webhook delivery jobs (sync/webhooks.py); None on a
    # counter made before webhooks were on.
    hooksQueued: int | None = None
    hooksClaimed: int | None = None  # a pump is queueing the changes up to this number
    claimedAt: datetime | None = None

    @property
    def row_key(self) -> str:
        return COUNTER_KEY


# The counter as this instance last read or wrote it is taken as current for this long (the table
# store's memory of REMEMBER rows): a burst of one tenant's changes (the booking service queues
# them one at a time per instance) then skips reading the counter before each transaction. If
# anything wrote it meanwhile (another instance, the webhook pump's claim, the retention mark),
# its ETag no longer matches, the whole transaction fails, the store forgets its copy, and the
# counter is read again: a number is never taken twice nor skipped.
COUNTER_MEMORY = 1.0


def change_key(number: int) -> str:
    return f"{CHANGE_PREFIX}{number:012d}"


@dataclass
class ChangeRecord(TenantRecord):
    TABLE: ClassVar[str] = "bookings"
    number: int
    body: str  # the change as the feed and webhooks give it (JSON)
    organizationId: str = ""  # the tenant's owner then: only that organization reads it
    at: datetime | None = None

    @property
    def row_key(self) -> str:
        return change_key(self.number)


@dataclass
class Decision:
    """What to record: the change's type, cause and payload (`bookingId`/`booking`, or `userId`
    and `email`, or `status`), and the rows to write with it in the same transaction (same table
    and partition: the booking row's new state)."""

    type: str
    cause: str
    organization_id: str
    payload: dict[str, Any]
    rows: list[tuple[str, Record]] = field(default_factory=list)


class ChangeLog:
    def __init__(self, repos: Repositories, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.repos = repos
        self.clock = clock

    def record(self, tenant_id: str, decide: Callable[[], Decision | None], *, attempts: int = 20) -> dict | None:
        """Ask `decide` (it reads what it needs, fresh each attempt) and record its change with its
        rows, atomically; on a lost race, ask again. None: `decide` found nothing to record.
        With webhooks on, the tenant is marked pending before and its pump queued after
        (sync/webhooks.py), so a change recorded is a change delivered."""
        from sync import webhooks

        hooked, marked = webhooks.enabled(), False
        for _ in range(attempts):
            decision = decide()
            if decision is None:
                return None
            if hooked and not marked:
                webhooks.before_change(self.repos, tenant_id)
                marked = True
            if decision.cause not in TYPES.get(decision.type, ()):
                raise ValueError(f"unknown change {decision.type}/{decision.cause}")
            counter = self.repos.store.recent(ChangeCounter, tenant_id, COUNTER_KEY, max_age=COUNTER_MEMORY)
            fresh = counter is None
            if counter is None:
                counter = ChangeCounter(tenantId=tenant_id, hooksQueued=0)
            number = counter.last + 1
            now = self.clock()
            change = {"id": "chg_" + secrets.token_hex(12), "type": decision.type, "cause": decision.cause,
                      "at": utc_stamp(now), "tenantId": tenant_id, "organizationId": decision.organization_id,
                      **decision.payload}
            counter.last = number
            operations: list[tuple[str, Record]] = [
                ("insert" if fresh else "update", counter),
                ("insert", ChangeRecord(tenantId=tenant_id, number=number, at=now,
                                        organizationId=decision.organization_id,
                                        body=json.dumps(change, separators=(",", ":")))),
                *decision.rows,
            ]
            try:
                self.repos.store.transact(operations)
            except (ConcurrencyConflict, AlreadyExists):
                backoff()
                continue
            log.info("change %d recorded: %s / %s", number, decision.type, decision.cause)
            if hooked:
                webhooks.after_change(tenant_id)
            return change
        raise ConcurrencyConflict("the tenant's changes kept racing")

    # -- reading -------------------------------------------------------------------------------------

    def page(self, tenant_id: str, organization_id: str, cursor: str | None, limit: int) -> dict[str, Any]:
        """The organization's changes of the tenant after `cursor`, oldest first (a tenant that
        moved to another organization shows each owner only its own)."""
        after = decode_cursor(cursor, tenant_id) if cursor else None
        counter = self.repos.store.get(ChangeCounter, tenant_id, COUNTER_KEY)
        pruned = counter.prunedThrough if counter else 0
        if after is None:
            after = pruned
        elif after < pruned:
            raise CursorExpired("Changes after this cursor were deleted (changes are kept 30 days); read the "
                                "feed again from the start.", target="after")
        found = self.repos.store.query(
            ChangeRecord, "PartitionKey eq @tenant and RowKey gt @after and RowKey lt @end",
            {"tenant": tenant_id, "after": change_key(after), "end": CHANGE_PREFIX[:-1] + ";"},
            page_size=min(limit, 1000))
        rows, last = [], after
        for row in found:
            last = row.number
            if row.organizationId == organization_id:
                rows.append(row)
                if len(rows) == limit:
                    break
        return {"changes": [json.loads(r.body) for r in rows], "next": encode_cursor(tenant_id, last)}

    # -- retention -----------------------------------------------------------------------------------

    def prune(self, now: datetime | None = None, *, limit: int = 1000) -> int:
        """Delete changes older than 30 days (any tenant, at most `limit` per run): the counter's
        `prunedThrough` is raised first, so a reader never skips past a deleted change unawares."""
        cutoff = (now or self.clock()) - KEPT
        old = list(self.repos.store.query(
            ChangeRecord, "RowKey gt @start and RowKey lt @end and at lt @cutoff",
            {"start": CHANGE_PREFIX, "end": CHANGE_PREFIX[:-1] + ";", "cutoff": cutoff}, page_size=min(limit, 1000)))
        old = old[:limit]
        by_tenant: dict[str, list[ChangeRecord]] = {}
        for row in old:
            by_tenant.setdefault(row.tenantId, []).append(row)
        deleted = 0
        for tenant_id, rows in by_tenant.items():
            highest = max(r.number for r in rows)

            def raise_mark(counter: ChangeCounter, highest: int = highest) -> ChangeCounter | None:
                if counter.prunedThrough >= highest:
                    return None
                counter.prunedThrough = highest
                return counter

            self.repos.store.modify(ChangeCounter, tenant_id, COUNTER_KEY, raise_mark)
            for row in rows:
                if self.repos.store.delete(row, if_unchanged=False):
                    deleted += 1
        return deleted


def encode_cursor(tenant_id: str, number: int) -> str:
    raw = json.dumps({"t": tenant_id, "n": number}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, tenant_id: str) -> int:
    try:
        if len(cursor) > 512:
            raise ValueError
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        number = data["n"]
        if data.get("t") != tenant_id or not isinstance(number, int) or isinstance(number, bool) or number < 0:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise InvalidRequest("after is not a cursor of this tenant's changes.", target="after") from None
    return number


def record_tenant_status(repos: Repositories, tenant: Any, cause: str) -> dict | None:
    """`tenant.status_changed` with the tenant's new status (after the tenant row was written)."""
    return ChangeLog(repos).record(tenant.tenantId, lambda: Decision(
        "tenant.status_changed", cause, tenant.organizationId, {"status": tenant.status}))


def record_needs_reconnect(repos: Repositories, user: Any) -> dict | None:
    """`member.needs_reconnect` for a member whose refresh token was refused."""
    tenant = repos.tenant(user.tenantId)
    if tenant is None:
        return None
    return ChangeLog(repos).record(user.tenantId, lambda: Decision(
        "member.needs_reconnect", "token_refused", tenant.organizationId,
        {"userId": user.userId, "email": user.email}))
