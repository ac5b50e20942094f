"""Erasing a person from a tenant's data: `DELETE /api/tenants/{t}/users/{u}?erase=true`
(shared/API.md, "Data kept"), in both modes, for anyone named in the tenant's bookings.

What goes, in the tenant's partition (whichever organization's bookings they are):
- every booking row: the organizer (as the caller named it, and the SMTP address Graph gave) and
  each attendee address of the person become a marker, `erased:<32 hex>`, and the person's
  response is dropped; the API shows a marker as `{"email": null, "erased": true}`;
- the listing's index rows that name the person (`!ix:a<hash>:…`, `!ix:o<hash>:…`);
- every change row: the booking snapshot's organizer and attendees, and `userId` and `email` of
  member changes; deliveries read the change row when they send (sync/webhooks.py), so a queued
  webhook sends the erased body;
- a member's tokens (deleted in Key Vault, as a disconnect does), member row and secret index rows;
- the person's Graph subscription (an organizer) and organizer lease row.

The marker is HMAC-SHA256 over "<tenant id>\\n<value lower-cased>", keyed by the Key Vault secret
`erasure-hash-key` (made by the service, 32 random bytes, on the first erasure of an environment;
the oldest enabled version is the key, so two instances making it at once agree). Keyed, because
a plain SHA-256 of an address lets anyone holding a copy of the table test guesses; with the key
(only in the vault), an operator can still confirm that a given address was erased. Nothing
re-reads an address from Graph into a row: the follower (sync/follow.py) keeps only the invited
attendees' responses and skips markers, and nothing acts on an erased organizer's calendar
(reads answer the row, cancel and move are 409 `user_not_connected`).

How it runs: the request records the erasure (table `erasures`, keyed by the keyed hash of the
person named; the person's identifiers are kept there only while it runs), then works page by
page (`BOOKING_PAGE` booking rows, `CHANGE_PAGE` change rows, the index ranges, then the
subscription and lease) for up to `INLINE_SECONDS`; what is left is handed to `erase.person`
jobs, each carrying only the tenant and the erasure's key and continuing from the progress the
record keeps. Every write carries the ETag it read, and every step is idempotent, so a duplicate
job or a second request for the same person costs reads, not harm. A record left untouched for
`STALLED` (its job lost) is queued again by the `erasures` sweep. The record is deleted when done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

from shared.storage import Booking, Repositories, TenantRecord, utcnow

log = logging.getLogger(__name__)

MARKER = "erased:"
ERASE = "erase.person"
KEY_SECRET_NAME = "erasure-hash-key"  # noqa: S105 (a secret's name)
BOOKING_PAGE = 100
CHANGE_PAGE = 200
INDEX_PAGE = 200
WRITERS = 8  # rows rewritten side by side
INLINE_SECONDS = 5.0  # the request's own share; the rest goes to jobs
JOB_SECONDS = 30.0
STALLED = timedelta(minutes=10)
PHASES = ("bookings", "changes", "index", "finish")


def is_erased(value: Any) -> bool:
    """A marker left by an erasure (no address has a ':' before its '@', no object id has one)."""
    return isinstance(value, str) and value.startswith(MARKER)


def erased_person() -> dict[str, Any]:
    """How the API shows an erased organizer or attendee."""
    return {"email": None, "erased": True}


def marker(key: bytes, tenant_id: str, value: str) -> str:
    digest = hmac.new(key, f"{tenant_id.lower()}\n{value.strip().lower()}".encode(), hashlib.sha256)
    return MARKER + digest.hexdigest()[:32]


# -- the key -------------------------------------------------------------------------------------

_keys: dict[str, bytes] = {}
_keys_lock = threading.Lock()


def hash_key(store: Any, vault: str) -> bytes:
    """The erasure key from Key Vault (made on first use), once per process and vault."""
    with _keys_lock:
        key = _keys.get(vault)
        if key is None:
            key = _keys[vault] = _load_key(store)
        return key


def _load_key(store: Any) -> bytes:
    from shared.errors import SecretNotFound

    def values() -> list[str]:
        try:
            return store.enabled_values(KEY_SECRET_NAME, limit=100)
        except SecretNotFound:
            return []

    found = values()
    if not found:
        store.set(KEY_SECRET_NAME, secrets.token_urlsafe(32), content_type="application/vnd.tenkc.hash-key",
                  tags={"kind": "erasure_hash_key"})
        found = values()
        log.info("erasure key made in Key Vault")
    if not found:
        raise RuntimeError("the erasure key has no enabled version")
    return found[-1].encode("utf-8")  # the oldest enabled version


# -- the record ----------------------------------------------------------------------------------


@dataclass
class Erasure(TenantRecord):
    """One person's erasure while it runs (deleted when done)."""

    TABLE: ClassVar[str] = "erasures"
    erasureKey: str  # the keyed hash of the person as named (no address)
    people: list[str]  # the person's identifiers, lower-cased: only while the erasure runs
    phase: str = "bookings"  # bookings | changes | index | finish
    cursor: str | None = None  # JSON: where the phase stopped
    grew: bool = False  # identifiers were learnt during this pass over the bookings: pass again
    bookings: int = 0  # rows changed so far
    changes: int = 0
    startedAt: datetime | None = None
    updatedAt: datetime | None = None

    @property
    def row_key(self) -> str:
        return "erase:" + self.erasureKey


# -- the work ------------------------------------------------------------------------------------


class Eraser:
    def __init__(self, repos: Repositories, key: Callable[[], bytes], send: Callable[[dict[str, Any]], None], *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.repos = repos
        self.key = key
        self.send = send
        self.clock = clock

    def mark(self, tenant_id: str, value: str) -> str:
        return marker(self.key(), tenant_id, value)

    # the request

    def begin(self, tenant_id: str, named: str, aliases: set[str]) -> Erasure:
        """Record the erasure of the person `named` (and `aliases`: a member's other identifiers),
        or join the one under way for the same name."""
        from shared.errors import AlreadyExists, ConcurrencyConflict

        key = self.mark(tenant_id, named)[len(MARKER):]
        people = {p.strip().lower() for p in {named, *aliases} if p and p.strip()}
        for _ in range(10):
            current = self.repos.store.get(Erasure, tenant_id, "erase:" + key)
            now = self.clock()
            if current is None:
                try:
                    return self.repos.store.insert(Erasure(tenantId=tenant_id, erasureKey=key, people=sorted(people),
                                                           startedAt=now, updatedAt=now))
                except AlreadyExists:
                    continue
            if people <= set(current.people):
                return current
            current.people = sorted(people | set(current.people))
            current.phase, current.cursor, current.grew, current.updatedAt = "bookings", None, False, now
            try:
                return self.repos.store.update(current)
            except ConcurrencyConflict:
                continue
        raise ConcurrencyConflict("the erasure's record kept changing")

    def forget_member(self, user: Any) -> None:
        """After a disconnect (tokens deleted): the member row and its secret index rows."""
        from shared.storage import SecretRef

        for ref in list(self.repos.store.query(SecretRef, "PartitionKey eq @tenant and subjectId eq @subject",
                                               {"tenant": user.tenantId, "subject": user.userId.lower()})):
            self.repos.store.delete(ref, if_unchanged=False)
        self.repos.store.delete(user, if_unchanged=False)

    def run(self, erasure: Erasure, *, seconds: float, inline: bool = False) -> str:
        """Pages until done or `seconds` have passed, then hand on to a job. What happened.
        `inline` (the request): a page that fails is handed to a job too (the queue retries it);
        a job's failure raises, for the queue's retries and poison queue."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                outcome = self.step(erasure)
            except Exception as error:
                if not inline:
                    raise
                log.warning("an erasure page failed in the request (%s); a job carries on", type(error).__name__)
                self.send({"kind": ERASE, "tenantId": erasure.tenantId, "erasure": erasure.erasureKey})
                return "continued by a job after a failure"
            if outcome is None:
                return "another run is at it"
            if outcome:
                log.info("erasure done: %d booking row(s), %d change row(s)", erasure.bookings, erasure.changes)
                return "done"
            if time.monotonic() >= deadline:
                self.send({"kind": ERASE, "tenantId": erasure.tenantId, "erasure": erasure.erasureKey})
                return f"continued by a job ({erasure.phase})"

    def step(self, erasure: Erasure) -> bool | None:
        """One page of the current phase, progress saved with the record's ETag. True: done;
        None: another run saved first (it carries on)."""
        from shared.errors import ConcurrencyConflict

        if erasure.phase == "finish":
            self._finish(erasure)
            try:
                self.repos.store.delete(erasure)
            except ConcurrencyConflict:
                return None
            return True
        {"bookings": self._bookings, "changes": self._changes, "index": self._index}[erasure.phase](erasure)
        erasure.updatedAt = self.clock()
        try:
            self.repos.store.update(erasure)
        except ConcurrencyConflict:
            return None
        return False

    def _advance(self, erasure: Erasure, token: Any, extra: dict[str, Any] | None = None) -> None:
        if token is not None:
            erasure.cursor = json.dumps({**(extra or {}), "token": token})
            return
        if erasure.phase == "bookings" and erasure.grew:  # learnt another address of the person
            erasure.grew, erasure.cursor = False, None
            return
        erasure.phase, erasure.cursor = PHASES[PHASES.index(erasure.phase) + 1], None

    def _cursor(self, erasure: Erasure) -> dict[str, Any]:
        return json.loads(erasure.cursor) if erasure.cursor else {}

    # bookings

    def _bookings(self, erasure: Erasure) -> None:
        rows, token = self.repos.store.page(
            Booking, "PartitionKey eq @tenant and RowKey ge @low",  # booking rows: every other row key starts with '!'
            {"tenant": erasure.tenantId, "low": '"'}, page_size=BOOKING_PAGE,
            continuation=self._cursor(erasure).get("token"))
        people = set(erasure.people)
        erasure.bookings += sum(_side_by_side(lambda booking: self._erase_booking(booking, people),
                                              [b for b in rows if named_in(b) & people]))
        if not people <= set(erasure.people):
            erasure.people, erasure.grew = sorted(people | set(erasure.people)), True
        self._advance(erasure, token)

    def _erase_booking(self, booking: Booking, people: set[str]) -> bool:
        """The row and its index rows that name the person, in one transaction (the same table and
        partition); with the ETag read, so a change recorded meanwhile is read again and kept."""
        from booking import listing
        from shared.errors import ConcurrencyConflict

        current: Booking | None = booking
        for _ in range(10):
            if current is None:
                return False
            after = self._scrubbed(dataclasses.replace(current), people)
            if after is None:
                return False
            keep = {row.row_key for row in listing.rows_for(after)}
            stale = [row for row in listing.rows_for(current) if row.row_key not in keep]
            try:
                self.repos.store.transact([("update", after), *(("delete", row) for row in stale)])
                return True
            except ConcurrencyConflict:
                fresh = self.repos.booking(booking.tenantId, booking.bookingId)
            if fresh is not None and fresh.etag == current.etag:  # an index row was gone already
                try:
                    self.repos.store.update(after)
                    listing.drop(self.repos, stale)
                    return True
                except ConcurrencyConflict:
                    fresh = self.repos.booking(booking.tenantId, booking.bookingId)
            current = fresh
        raise ConcurrencyConflict("a booking kept changing while a person was erased from it")

    def _scrubbed(self, booking: Booking, people: set[str]) -> Booking | None:
        """The booking with the person's values replaced by markers, or None if it names nobody
        of `people`. The organizer's two names (as the caller gave it, as Graph resolved it) are
        one person's: finding one adds the other to `people`."""
        hit = False
        names = [v for v in (booking.organizer, booking.organizerAddress) if v and not is_erased(v)]
        if any(v.lower() in people for v in names):
            people.update(v.lower() for v in names)
            booking.organizer = self.mark(booking.tenantId, booking.organizer) \
                if not is_erased(booking.organizer) else booking.organizer
            if booking.organizerAddress and not is_erased(booking.organizerAddress):
                booking.organizerAddress = self.mark(booking.tenantId, booking.organizerAddress)
            hit = True
        responses = booking.response_map
        attendees = []
        for attendee in booking.attendees:
            if not is_erased(attendee) and attendee.lower() in people:
                responses.pop(attendee, None)
                attendee, hit = self.mark(booking.tenantId, attendee), True
            attendees.append(attendee)
        if not hit:
            return None
        booking.attendees = attendees
        if booking.responses is not None:
            booking.responses = json.dumps(responses)
        return booking

    # changes

    def _changes(self, erasure: Erasure) -> None:
        from sync.changes import CHANGE_PREFIX, ChangeRecord

        rows, token = self.repos.store.page(
            ChangeRecord, "PartitionKey eq @tenant and RowKey gt @low and RowKey lt @high",
            {"tenant": erasure.tenantId, "low": CHANGE_PREFIX, "high": CHANGE_PREFIX[:-1] + ";"},
            page_size=CHANGE_PAGE, continuation=self._cursor(erasure).get("token"))
        people = set(erasure.people)
        named = [row for row in rows if scrub_change(json.loads(row.body), people) is not None]
        erasure.changes += sum(_side_by_side(lambda row: self._erase_change(row, people), named))
        self._advance(erasure, token)

    def _erase_change(self, row: Any, people: set[str]) -> bool:
        from shared.errors import ConcurrencyConflict
        from sync.changes import ChangeRecord

        current = row
        for _ in range(10):
            if current is None:
                return False  # pruned meanwhile
            body = scrub_change(json.loads(current.body), people)
            if body is None:
                return False
            current.body = json.dumps(body, separators=(",", ":"))
            try:
                self.repos.store.update(current)
                return True
            except ConcurrencyConflict:
                current = self.repos.store.get(ChangeRecord, row.tenantId, row.row_key)
        raise ConcurrencyConflict("a change row kept changing while a person was erased from it")

    # index rows left by a crash between a booking's write and its index clean-up

    def _index(self, erasure: Erasure) -> None:
        from booking.listing import PREFIX, ListingRow, address_key

        ranges = [f"{PREFIX}{dimension}{address_key(address)}:" for address in erasure.people if "@" in address
                  for dimension in ("a", "o")]
        cursor = self._cursor(erasure)
        number = int(cursor.get("range", 0))
        if number >= len(ranges):
            self._advance(erasure, None)
            return
        low = ranges[number]
        rows, token = self.repos.store.page(
            ListingRow, "PartitionKey eq @tenant and RowKey ge @low and RowKey lt @high",
            {"tenant": erasure.tenantId, "low": low, "high": low[:-1] + ";"}, page_size=INDEX_PAGE,
            continuation=cursor.get("token"))
        people = set(erasure.people)
        for row in rows:
            booking = self.repos.booking(row.tenantId, row.bookingId)
            if booking is None or not people & named_in(booking):
                self.repos.store.delete(row, if_unchanged=False)
        if token is not None:
            erasure.cursor = json.dumps({"range": number, "token": token})
        elif number + 1 < len(ranges):
            erasure.cursor = json.dumps({"range": number + 1})
        else:
            self._advance(erasure, None)

    # the organizer's subscription and lease

    def _finish(self, erasure: Erasure) -> None:
        from shared.storage import Lease, encode_key
        from sync.subscriptions import Subscription, mailbox_key

        for address in (p for p in erasure.people if "@" in p):
            row = self.repos.store.get(Subscription, erasure.tenantId, "sub:" + mailbox_key(address))
            if row is not None:
                from sync.jobs import subscriptions

                subscriptions().remove(row)
            lease = self.repos.store.get(Lease, erasure.tenantId, encode_key(f"organizer:{address}"))
            if lease is not None and (not lease.holder or lease.expiresAt is None or lease.expiresAt <= self.clock()):
                from shared.errors import ConcurrencyConflict

                try:
                    self.repos.store.delete(lease)  # only if still free (its ETag)
                except ConcurrencyConflict:
                    log.info("an erased organizer's lease was taken meanwhile; retention deletes it later")


def _side_by_side(work: Callable[[Any], bool], items: list[Any]) -> list[bool]:
    """`work` on each item, `WRITERS` at a time (each is a storage round trip or two)."""
    if len(items) <= 1:
        return [work(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(WRITERS, len(items)), thread_name_prefix="erase") as pool:
        return list(pool.map(work, items))


def named_in(booking: Booking) -> set[str]:
    """Every identifier of a person the booking row holds, lower-cased."""
    values = [booking.organizer, booking.organizerAddress or "", *booking.attendees]
    return {v.lower() for v in values if v and not is_erased(v)}


def scrub_change(change: dict[str, Any], people: set[str]) -> dict[str, Any] | None:
    """The change with the person's values erased, or None if it names nobody of `people`."""
    hit = False
    snapshot = change.get("booking")
    if isinstance(snapshot, dict):
        organizer = snapshot.get("organizer")
        if isinstance(organizer, str) and organizer.lower() in people:
            snapshot["organizer"], hit = erased_person(), True
        attendees = snapshot.get("attendees")
        for number, attendee in enumerate(attendees if isinstance(attendees, list) else []):
            email = attendee.get("email") if isinstance(attendee, dict) else None
            if isinstance(email, str) and email.lower() in people:
                attendees[number], hit = erased_person(), True
    email, user_id = change.get("email"), change.get("userId")
    if (isinstance(email, str) and email.lower() in people) or (isinstance(user_id, str) and user_id.lower() in people):
        change["userId"], change["email"], change["erased"], hit = None, None, True, True
    return change if hit else None


# -- wiring ---------------------------------------------------------------------------------------


def eraser() -> Eraser:
    """On the process's clients (each cached by shared.clients)."""
    from shared.clients import job_queue, repositories, secret_store
    from shared.settings import get_settings

    vault = get_settings().key_vault_url
    return Eraser(repositories(), lambda: hash_key(secret_store(), vault), lambda message: job_queue().send(message))


def erase_job(message: dict[str, Any]) -> str:
    """`erase.person`: continue the erasure from where its record says."""
    try:
        tenant_id, key = str(message["tenantId"]), str(message["erasure"])
    except (KeyError, TypeError):
        raise ValueError("malformed erasure job") from None
    work = eraser()
    erasure = work.repos.store.get(Erasure, tenant_id, "erase:" + key)
    if erasure is None:
        return "skipped: done"
    return work.run(erasure, seconds=JOB_SECONDS)


def stalled_page(run: Any) -> tuple[str, Any]:
    """The `erasures` sweep: an erasure untouched for `STALLED` (its job was lost) gets a job."""
    work = eraser()
    rows, token = work.repos.store.page(Erasure, "updatedAt lt @stale", {"stale": run.at - STALLED},
                                        page_size=100, continuation=run.continuation)
    for row in rows:
        work.send({"kind": ERASE, "tenantId": row.tenantId, "erasure": row.erasureKey})
    return f"{len(rows)} stalled erasure(s) continued", token
