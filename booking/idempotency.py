"""Idempotency keys: one booking per (tenant, key), whatever the callers, hosts and Graph do.

The key's record is inserted before anything else, `in_progress`, with the request's fingerprint
and a new booking id, and a hold (`lockedUntil`) that says a request is working on it. The hold is
as long as one Graph write may take to land (`window`) and is renewed, with an ETag, before each
write, so it cannot be outlived: a request that finds it held waits (up to 10 s, then 409
`idempotency_in_progress`); one that finds it lapsed (its holder crashed, or answered
`booking_outcome_unknown` and let go) takes it over with an ETag and carries on from what the
booking row says. Every change is made with the ETag last read, so a request that lost the key
changes nothing, and its clean-up deletes only what it still owns.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.errors import AlreadyExists, ConcurrencyConflict, IdempotencyConflict, IdempotencyInProgress
from shared.storage import IdempotencyRecord, Repositories, utcnow

log = logging.getLogger(__name__)

KEEP_KEYS = timedelta(days=30)
POLL_SECONDS = 0.2


class KeyLost(Exception):
    """Another request took the key over: this one must stop before writing anything."""


@dataclass
class Claim:
    """What a request holds after asking for its key: `record` (held by this request, new or taken
    over), or `done` (the key was completed: its booking id)."""

    record: IdempotencyRecord | None = None
    done: str | None = None
    fresh: bool = False


class Keys:
    def __init__(self, repos: Repositories, *, window: timedelta, wait_for_other: float) -> None:
        self.repos = repos
        self.hold = window
        self.wait_for_other = wait_for_other

    def claim(self, tenant_id: str, key: str, fingerprint: str, *, busy_reason=None,
              booking_id: str | None = None) -> Claim:
        """Insert the key's record, or find what became of it. `busy_reason(record)` may raise a
        better answer than 409 in progress after the wait (e.g. an unknown outcome). `booking_id`:
        the booking a change is for (a reschedule); else a new booking's id."""
        now = utcnow()
        record = IdempotencyRecord(tenantId=tenant_id, key=key, requestHash=fingerprint,
                                   bookingId=booking_id or "bk_" + uuid.uuid4().hex, expiresAt=now + KEEP_KEYS,
                                   lockedUntil=now + self.hold, createdAt=now)
        try:
            return Claim(record=self.repos.store.insert(record), fresh=True)
        except AlreadyExists:
            pass
        deadline = time.monotonic() + self.wait_for_other
        while True:
            current = self.repos.idempotency_record(tenant_id, key)
            if current is None:  # freed meanwhile (its request failed before Graph acted): ours now
                try:
                    return Claim(record=self.repos.store.insert(record), fresh=True)
                except AlreadyExists:
                    continue
            if current.requestHash != fingerprint:
                raise IdempotencyConflict("This Idempotency-Key was used with another request body.",
                                          target="Idempotency-Key")
            if current.state == "completed" and current.bookingId:
                return Claim(done=current.bookingId)
            now = utcnow()
            if current.lockedUntil is None or current.lockedUntil <= now:
                current.lockedUntil = now + self.hold
                try:
                    return Claim(record=self.repos.store.update(current))
                except ConcurrencyConflict:
                    continue
            if time.monotonic() >= deadline:
                if busy_reason is not None:
                    busy_reason(current)
                raise IdempotencyInProgress("A request with this Idempotency-Key is still being processed.",
                                            retry_after=2, target="Idempotency-Key")
            time.sleep(POLL_SECONDS)

    def take_over(self, tenant_id: str, key: str) -> IdempotencyRecord | None:
        """The key's record held by the caller (the reconciler), if it exists, is not completed, and
        nobody holds it now."""
        current = self.repos.idempotency_record(tenant_id, key)
        now = utcnow()
        if current is None or current.state == "completed" or (current.lockedUntil and current.lockedUntil > now):
            return None
        current.lockedUntil = now + self.hold
        try:
            return self.repos.store.update(current)
        except ConcurrencyConflict:
            return None

    def extend(self, record: IdempotencyRecord, until: datetime) -> IdempotencyRecord:
        """Hold the key until at least `until` (before a write); KeyLost if another request has it."""
        if record.lockedUntil and record.lockedUntil >= until:
            return record
        record.lockedUntil = until
        try:
            return self.repos.store.update(record)
        except ConcurrencyConflict:
            raise KeyLost("the key was taken over") from None

    @staticmethod
    def completed(record: IdempotencyRecord) -> IdempotencyRecord:
        """The key's record as `complete` writes it (with the ETag read), for a caller that writes
        it in a transaction of its own (the booking's confirmation: the same table and partition)."""
        return dataclasses.replace(record, state="completed", lockedUntil=None)

    @staticmethod
    def took(record: IdempotencyRecord, written: IdempotencyRecord) -> None:
        """`written` (from `completed`) was stored: `record` now says what the row says."""
        record.state, record.lockedUntil, record.etag = written.state, written.lockedUntil, written.etag

    def complete(self, record: IdempotencyRecord) -> None:
        record.state, record.lockedUntil = "completed", None
        try:
            self.repos.store.update(record)
        except ConcurrencyConflict:
            # Another request took the key over after our hold lapsed; it finds the booking
            # confirmed and completes the key itself.
            log.warning("idempotency record changed while completing; the booking stands")

    def let_go(self, record: IdempotencyRecord) -> None:
        """Stop holding the key but keep it reserved (an outcome that is not known yet)."""
        record.lockedUntil = None
        try:
            self.repos.store.update(record)
        except ConcurrencyConflict:
            log.info("idempotency record was taken over before it was let go")

    def forget(self, record: IdempotencyRecord) -> bool:
        """Free the key (nothing happened in Graph), only if this request still holds it."""
        try:
            self.repos.store.delete(record)
        except ConcurrencyConflict:
            log.info("idempotency record was taken over; left to its new holder")
            return False
        return True
