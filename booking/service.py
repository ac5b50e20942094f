"""Bookings: exactly one meeting per key, at the instants asked, read back only what we created.

A booking's row moves through these states (an arrow is one ETag-checked write):

    (key claimed) --row inserted--> creating --Graph made it (201, or found by its tag)--> confirmed
                                       |  ^                                                    |
              create sent, outcome     |  |  every earlier attempt's deadline passed,          | DELETE
              unknown and not found    v  |  still not found: one new create                   v
                                     uncertain ------------found by its tag---------------> cancelled
                                                  (a retry with the key, or the reconciler)

    creating --Graph refused, or throttled before acting--> row and key deleted (the key is free)

Create, in order:
1. Validate; the tenant enabled; the organizer's mailbox (object id or UPN in paths; its SMTP
   address, through its calendar, for getSchedule) or, delegated, the connected member.
2. The key (booking/idempotency.py): a stored booking is answered (200, no Graph call), another
   body is 422, a key held by a working request is waited for.
3. The organizer's lease (shared/leases.py), so two overlapping bookings cannot both pass the
   re-check. Then, from what the row says: a confirmed row is answered; a row whose event may
   exist is looked up by our tag and adopted; one whose last attempt may still land (before its
   `attemptDeadline`) answers 503 `booking_outcome_unknown` and sends nothing.
4. With `checkAvailability`, the re-check (availability's getSchedule): busy time in the slot is 409.
5. Before the create: the lease and the key held for the whole write window (the client's timeout
   plus the time Graph may still act after it, `GRAPH_WRITE_MARGIN_SECONDS`), and the row's
   `attemptDeadline` written. Then one create. Its outcome:
   made -> confirmed (201); refused or throttled before acting -> row and key deleted, the error
   answered; unknown (timeout, dropped, 5xx) and not found by its tag -> `uncertain`, the lease
   fenced until the deadline (so no other booking of the organizer runs before it could land),
   503 `booking_outcome_unknown` with `Retry-After`. No second create is ever sent while an earlier
   one may still land, so exactly-once never rests on Graph's `transactionId`.
6. The reconciler (the timer's job, `reconcile`) does steps 3 to 5 for rows left `creating` or
   `uncertain` (a caller that never retried, a host that died).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from availability.schedule import ScheduleReader
from availability.slots import counts_as_busy
from booking import events as ev
from booking import listing
from booking.erasure import erased_person, is_erased
from booking.idempotency import KeyLost, Keys
from booking.request import BookingRequest, parse
from shared.errors import (
    BookingCancelled,
    BookingNotFound,
    BookingOutcomeUnknown,
    ConcurrencyConflict,
    IdempotencyInProgress,
    PreconditionFailed,
    ServiceError,
    SlotUnavailable,
    UpstreamError,
    UpstreamThrottled,
    UserNotConnected,
)
from shared.http import rfc3339, utc_stamp
from shared.leases import HeldLease, LeaseLost, hold
from shared.members import MemberTokens
from shared.people import Mailbox, People
from shared.storage import Booking, EventIndex, IdempotencyRecord, Repositories, Tenant, utcnow
from shared.upstream import service_error
from sync.changes import ChangeLog, Decision

log = logging.getLogger(__name__)

WAIT_FOR_OTHER = 10.0
CHANGE_ROWS = 2  # the changes feed's counter and change rows, in every booking change's transaction
SLACK = timedelta(seconds=5)  # for the few storage calls around a write
THROTTLE_ATTEMPTS = 3  # creates refused with 429 (not performed) may be sent again


def view(booking: Booking, responses: dict[str, str] | None = None, *, start: datetime | None = None,
         end: datetime | None = None, cancelled: bool = False) -> dict[str, Any]:
    """The booking as the API shows it: the row's state, or live values read from Graph."""
    zone = ZoneInfo(booking.timeZone)
    responses = booking.response_map if responses is None else responses
    return {
        "bookingId": booking.bookingId,
        "tenantId": booking.tenantId,
        "organizer": erased_person() if is_erased(booking.organizer) else booking.organizer,
        "attendees": [erased_person() if is_erased(a) else {"email": a, "response": responses.get(a, "none")}
                      for a in booking.attendees],
        "start": rfc3339((start or booking.start).astimezone(zone)),
        "end": rfc3339((end or booking.end).astimezone(zone)),
        "timeZone": booking.timeZone,
        "subject": booking.subject,
        "status": "cancelled" if cancelled or booking.status == "cancelled" else booking.status,
        "webLink": booking.webLink,
        "onlineMeetingUrl": booking.onlineMeetingUrl,
        "createdAt": utc_stamp(booking.createdAt or utcnow()),
        "updatedAt": utc_stamp(booking.updatedAt or booking.createdAt or utcnow()),
        "version": booking.version,
        "etag": f'"{booking.version}"',
    }


@dataclass(frozen=True)
class Context:
    """Whose calendar a booking goes into, and how Graph is asked."""

    tenant: Tenant
    organizer: Mailbox
    calendar: ev.Calendar


# Edits a booking row in place and names what happened: (type, cause) or (type, cause, more rows
# of the same transaction), or None when nothing did.
Change = Callable[[Booking], tuple[Any, ...] | None]


def record_booking_change(repos: Repositories, changes: ChangeLog, tenant: Tenant, booking_id: str,
                          change: Change) -> tuple[Booking | None, bool]:
    """The one way a booking's state changes: `change` edits the fresh row and names what happened
    (type, cause[, more rows of the transaction]) or None; the version moves on (1 for a created
    booking), the list's index rows of the new state are written no later than the row (in its
    transaction when they fit, else ahead of it), the row and the change are one transaction
    (sync/changes.py, retried on a lost race), and the old index rows go after.
    Answers the booking as it now is and whether this call changed it."""
    booking, recorded, _ = _record(repos, changes, tenant, booking_id, change)
    return booking, recorded


def _record(repos: Repositories, changes: ChangeLog, tenant: Tenant, booking_id: str, change: Change, *,
            known: Booking | None = None,
            joined: list[tuple[str, Any]] | None = None) -> tuple[Booking | None, bool, bool]:
    """`record_booking_change`, with two savings for a caller that holds the row: `known` (read or
    written by this request, with its ETag) is used on the first try instead of reading it again,
    and `joined` rows (the Idempotency-Key's completion) ride in the first try's transaction. A
    lost race reads afresh and leaves `joined` out. The third value: whether `joined` was written."""
    states: list[Booking] = []
    tries = [0]

    def decide() -> Decision | None:
        tries[0] += 1
        first = tries[0] == 1
        current = dataclasses.replace(known) if first and known is not None \
            else repos.booking(tenant.tenantId, booking_id)
        states[:] = [current] if current is not None else []
        if current is None:
            return None
        before = dataclasses.replace(current)
        outcome = change(current)
        if outcome is None:
            return None
        kind, cause, *more = outcome
        current.version = 1 if kind == "booking.created" else current.version + 1
        current.updatedAt = utcnow()
        rows: list[tuple[str, Any]] = [("update", current), *(more[0] if more else []),
                                       *(joined if first and joined else [])]
        if kind == "booking.created" or (current.status, current.start) != (before.status, before.start):
            index = [("upsert", row) for row in listing.rows_for(current)]
            if len(index) + len(rows) + CHANGE_ROWS <= listing.BATCH:
                rows.extend(index)  # written with the state itself
            else:
                listing.ahead(repos, current)
        states[:] = [current, before]
        return Decision(kind, cause, current.organizationId or tenant.organizationId,
                        {"bookingId": current.bookingId, "booking": view(current)}, rows)

    # One change of a tenant at a time from this process: its changes all move the tenant's feed
    # counter (ETag), so concurrent ones would mostly lose the race and redo their reads and
    # transaction; queued here they do not. Other instances still race, and the ETags decide.
    with _tenant_lock(tenant.tenantId):
        recorded = changes.record(tenant.tenantId, decide) is not None
    if recorded:
        listing.behind(repos, states[1], states[0])
    return (states[0] if states else None), recorded, recorded and tries[0] == 1 and bool(joined)


_TENANT_LOCKS: dict[str, threading.Lock] = {}
_TENANT_LOCKS_GUARD = threading.Lock()


def _tenant_lock(tenant_id: str) -> threading.Lock:
    with _TENANT_LOCKS_GUARD:
        lock = _TENANT_LOCKS.get(tenant_id)
        if lock is None:
            if len(_TENANT_LOCKS) >= 10_000:
                _TENANT_LOCKS.clear()  # held ones stay with their holders; later ones get new locks
            lock = _TENANT_LOCKS[tenant_id] = threading.Lock()
        return lock


def scoped_key(organization_id: str, key: str) -> str:
    """The stored form of a caller's Idempotency-Key: the organization's own."""
    return f"{organization_id}\n{key}"


class BookingService:
    def __init__(self, repos: Repositories, graph: Any, members: MemberTokens, *, people: People | None = None,
                 timeout: float = 10.0, write_margin: timedelta = timedelta(seconds=60),
                 wait_for_other: float = WAIT_FOR_OTHER) -> None:
        self.repos = repos
        self.graph = graph
        self.members = members
        self.people = people or People(graph)
        self.schedules = ScheduleReader(graph)
        self.events = ev.Events(graph, timeout=timeout, late_margin=write_margin)
        self.window = self.events.write_window  # one write: timeout plus the time it may still land
        self.keys = Keys(repos, window=self.window + SLACK, wait_for_other=wait_for_other)
        self.changes = ChangeLog(repos)
        # Called with each booking newly confirmed or cancelled (sync/ keeps its organizer's
        # mailbox subscribed while it has an upcoming booking).
        self.after_change: Callable[[Booking], None] = lambda booking: None

    # -- access --------------------------------------------------------------------------------

    def _context(self, tenant: Tenant, organizer: str) -> Context:
        if tenant.mode == "delegated":
            member, token = self.members.connected(tenant.tenantId, organizer)
            mailbox = self.people.organizer(tenant.tenantId, organizer, token=token, address=member.email)
            return Context(tenant, mailbox, ev.Calendar(tenant.tenantId, organizer, token))
        mailbox = self.people.organizer(tenant.tenantId, organizer)
        return Context(tenant, mailbox, ev.Calendar(tenant.tenantId, organizer))

    # -- create --------------------------------------------------------------------------------

    def create(self, tenant: Tenant, key: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        now = utcnow()
        request = parse(body, default_time_zone=tenant.defaultTimeZone, now=now)
        tenant.require_enabled()
        # Keys are the organization's own: a tenant that moved to another organization does not
        # answer the new owner with the previous owner's bookings.
        key = scoped_key(tenant.organizationId, key)
        claim = self.keys.claim(tenant.tenantId, key, request.fingerprint(),
                                busy_reason=lambda record: self._unknown_if_uncertain(tenant, record))
        if claim.done is not None:
            stored = self.repos.booking(tenant.tenantId, claim.done)
            if stored is None:  # the row is gone (retention): the key's answer is no longer kept
                raise BookingNotFound("The booking of this Idempotency-Key is no longer kept.", target="bookingId")
            return view(stored), 200
        record = claim.record
        assert record is not None  # noqa: S101 - a claim holds a record or a done booking id
        try:
            context = self._context(tenant, request.organizer)
            request = request.besides(context.organizer.address)
        except Exception:
            if claim.fresh:
                self.keys.forget(record)
            else:
                self.keys.let_go(record)
            raise
        booking, created = self._resolve(context, record, request, fresh=claim.fresh)
        return view(booking), 201 if created else 200

    def _unknown_if_uncertain(self, tenant: Tenant, record: IdempotencyRecord) -> None:
        row = self.repos.booking(tenant.tenantId, record.bookingId or "")
        if row is not None and row.status == "uncertain":
            raise _unknown(row.attemptDeadline)

    def _resolve(self, context: Context, record: IdempotencyRecord, request: BookingRequest, *,
                 fresh: bool = False) -> tuple[Booking, bool]:
        """Steps 3-5 for a held key: the booking confirmed (and whether this call confirmed it), or
        the error the caller sees, with the key freed or kept as the outcome requires. A `fresh`
        key (inserted by this request) has no row yet: nothing is read back."""
        tenant = context.tenant
        booking_id = record.bookingId or ""
        try:
            row = None if fresh else self.repos.booking(tenant.tenantId, booking_id)
            decided = self._decided(context, record, row)  # reads only: no lease needed
            if decided is not None:
                return decided
            with self._organizer_lease(context) as lease:
                if not fresh:  # another holder of the key may have moved it on meanwhile
                    row = self.repos.booking(tenant.tenantId, booking_id)
                    decided = self._decided(context, record, row, lease)
                    if decided is not None:
                        return decided
                return self._create(context, record, request, row, lease), True
        except _Unknown as unknown:
            self.keys.let_go(record)
            raise unknown.error from None
        except (KeyLost, LeaseLost):
            raise _taken_over() from None
        except _NothingHappened as nothing:
            self._forget(tenant, record, booking_id)
            raise nothing.error from None
        except Exception:
            # The lease was busy, storage failed, ...: the key is freed unless an attempt was sent.
            self._forget(tenant, record, booking_id, only_if_unsent=True)
            raise

    def _organizer_lease(self, context: Context) -> Any:
        """One mailbox's bookings and moves, one at a time: a lease by its SMTP address, however the
        caller names the organizer."""
        return hold(self.repos, context.tenant.tenantId, f"organizer:{context.organizer.address}",
                    ttl=self.window + SLACK)

    def _decided(self, context: Context, record: IdempotencyRecord, row: Booking | None,
                 lease: HeldLease | None = None) -> tuple[Booking, bool] | None:
        """The booking if its row says it is decided (confirmed, or its event found by our tag);
        raises `_Unknown` while an earlier attempt may still land; None when a create may be sent."""
        if row is not None and row.status in ("confirmed", "cancelled"):
            self.keys.complete(record)
            return row, False
        if row is None or row.attemptDeadline is None:
            return None
        found = self.events.find_tagged(context.calendar, row.bookingId)
        if found is not None:
            log.info("adopted the event an earlier attempt created")
            return self._confirm(context, row, found, record), True
        if utcnow() < row.attemptDeadline:
            if lease is not None:
                lease.fence(row.attemptDeadline)
            raise _Unknown(_unknown(row.attemptDeadline))
        return None

    def _create(self, context: Context, record: IdempotencyRecord, request: BookingRequest, row: Booking | None,
                lease: HeldLease) -> Booking:
        tenant = context.tenant
        booking_id = record.bookingId or ""
        try:
            if request.check_availability:
                self._recheck(context, request)
        except Exception as error:
            raise _NothingHappened(error) from error
        body = ev.event_body(subject=request.subject, body=request.body, start=request.start, end=request.end,
                             time_zone=request.time_zone, attendees=list(request.attendees),
                             online_meeting=request.online_meeting, booking_id=booking_id,
                             transaction=ev.transaction_id(tenant.tenantId, record.key))
        for attempt in range(THROTTLE_ATTEMPTS):
            # The whole write window held on the lease, the key and the row before anything is sent;
            # each is written only when what it holds falls short of it.
            lease.ensure(self.window)
            sent_at = utcnow()
            self.keys.extend(record, sent_at + self.window)
            # The row's attemptDeadline fences every create, so it is written right before one is
            # sent (a row with a deadline may have a create under way; one without has none).
            if row is None:
                # Marked first, so the reconciler finds the row whatever becomes of this request.
                self.repos.attempt_begun(tenant.tenantId, booking_id)
                row = self.repos.store.insert(Booking(
                    tenantId=tenant.tenantId, bookingId=booking_id, organizer=request.organizer,
                    organizerAddress=context.organizer.address, attendees=list(request.attendees),
                    start=request.start.astimezone(UTC), end=request.end.astimezone(UTC),
                    timeZone=request.time_zone, subject=request.subject, body=request.body,
                    onlineMeeting=request.online_meeting, checkAvailability=request.check_availability,
                    status="creating", idempotencyKey=record.key, attemptDeadline=sent_at + self.window,
                    organizationId=tenant.organizationId, createdAt=sent_at, updatedAt=sent_at))
            else:
                row.attemptDeadline, row.updatedAt = sent_at + self.window, sent_at
                row = self.repos.store.update(row)
            try:
                outcome = self.events.create(context.calendar, body, sent_at=sent_at)
            except ServiceError as refused:  # Graph answered a refusal: it made nothing
                raise _NothingHappened(refused) from None
            if outcome.event is not None:
                return self._confirm(context, row, outcome.event, record)
            if outcome.unknown_until is not None:
                lease.fence(outcome.unknown_until)
                found = self.events.find_tagged(context.calendar, booking_id)
                if found is not None:
                    return self._confirm(context, row, found, record)
                row.status = "uncertain"
                self.repos.store.update(row)
                raise _Unknown(_unknown(outcome.unknown_until))
            # Throttled before acting: Graph did nothing; wait as told, within reason, and send again.
            wait = outcome.error.retry_after if outcome.error and outcome.error.retry_after is not None else 1
            if attempt + 1 < THROTTLE_ATTEMPTS and wait <= 5:
                time.sleep(wait)
                continue
            raise _NothingHappened(service_error(outcome.error) if outcome.error else UpstreamThrottled(
                "Microsoft Graph is throttling; retry later.", retry_after=wait))
        raise AssertionError("unreachable")  # pragma: no cover

    def _confirm(self, context: Context, row: Booking, event: dict[str, Any], record: IdempotencyRecord) -> Booking:
        """The event exists: the row becomes `confirmed` (version 1), its event id is indexed for
        notifications, and `booking.created` is recorded, all in one transaction."""

        def confirm(current: Booking) -> tuple[str, str, list[tuple[str, Any]]] | None:
            if current.status in ("confirmed", "cancelled"):
                return None  # another holder of the key confirmed it
            current.status, current.eventId = "confirmed", event["id"]
            current.webLink = event.get("webLink")
            current.onlineMeetingUrl = (event.get("onlineMeeting") or {}).get("joinUrl")
            current.body = current.onlineMeeting = current.checkAvailability = None  # the event holds them now
            current.responses = json.dumps({a: "none" for a in current.attendees})
            return "booking.created", "api", [("upsert", EventIndex(tenantId=current.tenantId, eventId=event["id"],
                                                                    bookingId=current.bookingId))]

        # The key's completion rides in the same transaction (one round trip fewer); if that
        # transaction lost a race, the retry leaves it out and the key is completed after.
        completed = self.keys.completed(record)
        confirmed, created, joined = _record(self.repos, self.changes, context.tenant, row.bookingId, confirm,
                                             known=row if row.etag else None, joined=[("update", completed)])
        if confirmed is None:
            raise ConcurrencyConflict("the booking row vanished while being confirmed")
        if joined:
            self.keys.took(record, completed)
        else:
            self.keys.complete(record)
        if created:
            log.info("booking confirmed")
            self.after_change(confirmed)
        return confirmed

    def _forget(self, tenant: Tenant, record: IdempotencyRecord, booking_id: str, *,
                only_if_unsent: bool = False) -> None:
        """A request that failed before Graph could act leaves nothing: its key is deleted (only if
        this request still holds it: ETag), then its row. A row with an attempt that may still land
        is kept, and the key with it, for a retry or the reconciler."""
        try:
            row = self.repos.booking(tenant.tenantId, booking_id)
            if row is not None and only_if_unsent and row.attemptDeadline is not None:
                self.keys.let_go(record)
                return
            if not self.keys.forget(record):
                return  # another request holds the key now: the row is its business
            if row is not None and row.status == "creating":
                self.repos.store.delete(row, if_unchanged=False)
        except Exception:
            log.exception("could not clean up after a failed booking; the key frees when its hold lapses")

    def _recheck(self, context: Context, request: BookingRequest) -> None:
        self._recheck_window(context, request.attendees, request.start, request.end)

    def _recheck_window(self, context: Context, attendees: Any, start: datetime, end: datetime,
                        ignore: tuple[datetime, datetime] | None = None) -> None:
        """409 `slot_unavailable` if a participant is busy in [start, end); busy time exactly at
        `ignore` (the booking's own current time, in every participant's calendar) does not count."""
        token = context.calendar.token
        addresses = [context.organizer.address, *attendees]
        schedules = self.schedules.read(context.tenant.tenantId, context.organizer, list(dict.fromkeys(addresses)),
                                        start, end, token=token)
        for address, schedule in schedules.items():
            if schedule.reason is not None:
                continue  # Graph could not say; the invitation still goes out
            for busy in schedule.busy:
                if ignore is not None and (busy.start, busy.end) == ignore:
                    continue
                if counts_as_busy(busy.status, True) and busy.start < end and busy.end > start:
                    raise SlotUnavailable("Someone is no longer free at that time.",
                                          target="organizer" if address == context.organizer.address else "attendees")

    # -- reschedule ----------------------------------------------------------------------------

    def reschedule(self, tenant: Tenant, booking_id: str, key: str, body: dict[str, Any],
                   if_match: str | None) -> dict[str, Any]:
        """Move the booking's event to new times, exactly once per key: the row moves only when
        Graph has moved the event, and a `booking.updated` / `rescheduled` change is recorded with
        it. Serialised with the organizer's other bookings (its lease)."""
        from booking.request import parse_move

        booking = self._booking(tenant, booking_id)
        move = parse_move(body, default_time_zone=booking.timeZone, now=utcnow())
        tenant.require_enabled()
        _not_erased(booking)
        key = scoped_key(tenant.organizationId, key)
        claim = self.keys.claim(tenant.tenantId, key, move.fingerprint(booking_id), booking_id=booking_id)
        if claim.done is not None:
            current = self.repos.booking(tenant.tenantId, claim.done)
            return view(current or booking)
        record = claim.record
        assert record is not None  # noqa: S101
        try:
            context = self._context(tenant, booking.organizer)
            with self._organizer_lease(context) as lease:
                return view(self._move(context, record, booking_id, move, if_match, lease))
        except _Unknown as unknown:
            self.keys.let_go(record)
            raise unknown.error from None
        except (KeyLost, LeaseLost):
            raise _taken_over() from None
        except Exception:
            row = self.repos.booking(tenant.tenantId, booking_id)
            if row is not None and row.moveKey == record.key and row.moveDeadline is not None:
                self.keys.let_go(record)  # a move was sent: the key stays reserved for a retry
            else:
                self.keys.forget(record)
            raise

    def _move(self, context: Context, record: IdempotencyRecord, booking_id: str, move: Any,
              if_match: str | None, lease: HeldLease) -> Booking:
        tenant = context.tenant
        for _ in range(4):  # Graph's 412 (the event changed in Outlook) without the caller's If-Match
            row = self.repos.booking(tenant.tenantId, booking_id)
            if row is None or row.status in ("creating", "uncertain"):
                raise BookingNotFound("No booking with this id exists in this tenant.", target="bookingId")
            if row.status == "cancelled":
                raise BookingCancelled("This booking was cancelled; book a new meeting instead.", target="bookingId")
            now = utcnow()
            pending = row.moveDeadline is not None and row.moveDeadline > now
            if pending and row.moveKey != record.key:
                lease.fence(row.moveDeadline)
                raise _Unknown(_unknown(row.moveDeadline))  # another change may still land
            if if_match is not None and row.moveKey != record.key and if_match != f'"{row.version}"':
                raise PreconditionFailed("The booking changed since it was read (its etag).", target="If-Match")
            event = self.events.read(context.calendar, row.eventId or "")
            if event is None:
                raise BookingCancelled("The meeting was deleted in Outlook.", target="bookingId")
            start, end = ev.live_times(event)
            if (start, end) == (move.start, move.end):
                return self._moved(context, record, row, move)  # already there (a retry, or a move that landed)
            if pending:  # our own earlier attempt may still land
                lease.fence(row.moveDeadline)
                raise _Unknown(_unknown(row.moveDeadline))
            if move.check_availability:
                self._recheck_window(context, row.attendees, move.start, move.end, ignore=(row.start, row.end))
            sent_at = utcnow()
            self.keys.extend(record, sent_at + self.window)
            row.moveKey, row.moveDeadline = record.key, sent_at + self.window
            row = self.repos.store.update(row)  # the fence, written before the update is sent
            outcome = ev.move(self.events, context.calendar, row.eventId or "", start=move.start, end=move.end,
                              time_zone=move.time_zone, etag=event.get("@odata.etag"), sent_at=sent_at)
            if outcome.event is not None:
                return self._moved(context, record, row, move)
            if outcome.unknown_until is not None:
                lease.fence(outcome.unknown_until)
                raise _Unknown(_unknown(outcome.unknown_until))
            self._clear_move(row)
            if outcome.gone:
                raise BookingCancelled("The meeting was deleted in Outlook.", target="bookingId")
            if if_match is not None:  # the caller asked for the version it read: it has changed
                raise PreconditionFailed("The meeting changed in Outlook since the booking was read.",
                                         target="If-Match")
        raise UpstreamError("The meeting kept changing in Outlook while it was being moved; retry.")

    def _clear_move(self, row: Booking) -> None:
        def clear(current: Booking) -> Booking | None:
            if current.moveKey is None:
                return None
            current.moveKey = current.moveDeadline = None
            return current

        self.repos.store.modify(Booking, row.tenantId, row.row_key, clear)

    def _moved(self, context: Context, record: IdempotencyRecord, row: Booking, move: Any) -> Booking:
        """Graph has the event at the new times: the row follows, with the change, once."""

        def follow(current: Booking) -> tuple[str, str] | None:
            if (current.start, current.end, current.timeZone) == (move.start, move.end, move.time_zone) \
                    and current.moveKey is None:
                return None
            current.start, current.end, current.timeZone = move.start, move.end, move.time_zone
            current.responses = json.dumps({a: "none" for a in current.attendees})  # Exchange asks again
            current.moveKey = current.moveDeadline = None
            return "booking.updated", "rescheduled"

        moved, _ = record_booking_change(self.repos, self.changes, context.tenant, row.bookingId, follow)
        self.keys.complete(record)
        log.info("booking rescheduled")
        return moved or row

    # -- the reconciler ------------------------------------------------------------------------

    def reconcile(self, tenant: Tenant, booking_id: str) -> str:
        """Finish a booking left `creating` or `uncertain`: adopt its event, or create it once every
        earlier attempt's deadline has passed. Answers what it did (for the job's log line)."""
        row = self.repos.booking(tenant.tenantId, booking_id)
        if row is None or row.status not in ("creating", "uncertain") or not row.idempotencyKey:
            return "nothing to do"
        if any(is_erased(person) for person in (row.organizer, *row.attendees)):
            return "not booked: a person was erased from it"  # never invite a marker; retention deletes the row
        if tenant.status != "enabled":
            return "tenant not enabled"
        record = self.keys.take_over(tenant.tenantId, row.idempotencyKey)
        if record is None:
            return "key busy or done"
        request = BookingRequest(
            organizer=row.organizer, attendees=tuple(row.attendees), start=row.start, end=row.end,
            time_zone=row.timeZone, subject=row.subject, body=row.body or "",
            online_meeting=bool(row.onlineMeeting), check_availability=bool(row.checkAvailability))
        try:
            context = self._context(tenant, row.organizer)
        except Exception as error:
            self.keys.let_go(record)  # e.g. the organizer must reconnect: the next run tries again
            mapped = service_error(error)
            return f"not booked: {mapped.code if mapped else type(error).__name__}"
        try:
            self._resolve(context, record, request)
        except BookingOutcomeUnknown:
            return "outcome still unknown"
        except Exception as error:
            mapped = service_error(error)
            return f"not booked: {mapped.code if mapped else type(error).__name__}"
        return "confirmed"

    # -- read and cancel ---------------------------------------------------------------------

    def _booking(self, tenant: Tenant, booking_id: str) -> Booking:
        booking = self.repos.booking(tenant.tenantId, booking_id)
        if booking is None or booking.tenantId != tenant.tenantId or booking.status in ("creating", "uncertain") \
                or booking.organizationId not in (None, tenant.organizationId):  # a previous owner's
            raise BookingNotFound("No booking with this id exists in this tenant.", target="bookingId")
        return booking

    def _calendar(self, tenant: Tenant, booking: Booking) -> ev.Calendar:
        _not_erased(booking)
        token = self.members.access_token(tenant.tenantId, booking.organizer) if tenant.mode == "delegated" else None
        return ev.Calendar(tenant.tenantId, booking.organizer, token)

    def read(self, tenant: Tenant, booking_id: str) -> dict[str, Any]:
        booking = self._booking(tenant, booking_id)
        tenant.require_enabled()
        if is_erased(booking.organizer):  # the service no longer reads that person's calendar
            return view(booking)
        calendar = self._calendar(tenant, booking)
        if booking.status == "cancelled" or not booking.eventId:
            return view(booking)
        event = self.events.read(calendar, booking.eventId)
        if event is None:  # deleted in Outlook
            return view(booking, cancelled=True)
        invited = set(booking.attendees)
        responses = {}
        for attendee in event.get("attendees") or ():
            address = str((attendee.get("emailAddress") or {}).get("address", "")).lower()
            if address in invited:
                responses[address] = str((attendee.get("status") or {}).get("response") or "none")
        start, end = ev.live_times(event)
        return view(booking, responses, start=start, end=end, cancelled=bool(event.get("isCancelled")))

    def cancel(self, tenant: Tenant, booking_id: str) -> dict[str, Any]:
        booking = self._booking(tenant, booking_id)
        tenant.require_enabled()
        calendar = self._calendar(tenant, booking)
        if booking.status == "cancelled":
            return view(booking)
        if booking.eventId:
            self.events.cancel(calendar, booking.eventId)

        def cancel(current: Booking) -> tuple[str, str] | None:
            if current.status == "cancelled":
                return None
            current.status = "cancelled"
            return "booking.cancelled", "api"

        cancelled, changed = record_booking_change(self.repos, self.changes, tenant, booking.bookingId, cancel)
        if changed and cancelled is not None:
            log.info("booking cancelled")
            self.after_change(cancelled)
        return view(cancelled or booking)


def _not_erased(booking: Booking) -> None:
    """409 for a booking whose organizer was erased: the service no longer acts on that calendar."""
    if is_erased(booking.organizer):
        raise UserNotConnected("The organizer was erased from this service; it no longer acts on that calendar.",
                               target="organizer")


def _taken_over() -> IdempotencyInProgress:
    return IdempotencyInProgress("Another request took this Idempotency-Key over; retry.", retry_after=2,
                                 target="Idempotency-Key")


class _Unknown(Exception):
    def __init__(self, error: BookingOutcomeUnknown) -> None:
        super().__init__(error.message)
        self.error = error


class _NothingHappened(Exception):
    """Graph did not act (a refusal, a failed re-check, throttling): the key and row can go."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def _unknown(deadline: datetime | None) -> BookingOutcomeUnknown:
    wait = max(1, math.ceil(((deadline or utcnow()) - utcnow()).total_seconds()))
    return BookingOutcomeUnknown("Microsoft Graph may or may not have made the meeting; the key stays reserved. "
                                 "Retry with the same Idempotency-Key after Retry-After.", retry_after=wait)
