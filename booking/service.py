"""Bookings: exactly one meeting per request, no double booking, read back only what we created.

Create, in order:
1. Validate; the tenant enabled (and, delegated, the organizer connected).
2. Idempotency record for (tenant, key): inserted as `in_progress` with the request's fingerprint
   and a new booking id. A record already there: another body is 422; a completed one is answered
   from storage (200, no Graph call); one in progress is waited for up to 10 s, then 409
   `idempotency_in_progress` — unless its holder's time ran out (a crash), when this request
   takes it over with an ETag and finishes the job.
3. The organizer's lease (one booking per organizer at a time), then, with `checkAvailability`,
   the re-check through the availability path's getSchedule: busy time in `[start, end)` is 409.
4. The booking row as `creating`, then one Graph create event in the organizer's calendar,
   tagged with an extended property carrying the booking id, with a `transactionId` derived from
   tenant and key. Graph documents no duplicate window for `transactionId`, so after a timeout,
   a dropped connection or a 5xx the event is looked up by the tag first and adopted if there.
5. The booking `confirmed`, the record `completed`. A failure deletes both, so the key can be
   used again; nothing that failed is stored.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from availability.schedule import ScheduleReader
from availability.slots import counts_as_busy
from booking.request import BookingRequest, parse
from shared.errors import (
    AlreadyExists,
    BookingNotFound,
    ConcurrencyConflict,
    IdempotencyConflict,
    IdempotencyInProgress,
    InvalidRequest,
    OutsideSecurityGroup,
    SlotUnavailable,
    UpstreamError,
)
from shared.graph import GraphClient, GraphError, as_service_error, graph_time
from shared.http import rfc3339, utc_stamp
from shared.leases import hold
from shared.members import MemberTokens
from shared.storage import Booking, IdempotencyRecord, Repositories, Tenant, utcnow

log = logging.getLogger(__name__)

# Our own MAPI named property: tags every event this service creates with its booking id.
TAG_ID = "String {8c3a5f2e-4b1d-4e6a-9f0c-2d7e1a6b5c94} Name TenKCBookingId"
TRANSACTION_NAMESPACE = uuid.UUID("5b6f0d2a-6c1e-4f3b-8a9d-7e2c4b1a0f63")
KEEP_KEYS = timedelta(days=30)
HOLD_KEY = timedelta(seconds=60)  # longer than one create can take; then another request may take over
WAIT_FOR_OTHER = 10.0
CREATE_ATTEMPTS = 3
IMMUTABLE_IDS = 'IdType="ImmutableId"'
CANCEL_COMMENT = "This meeting was cancelled through 10KC."
READ_FIELDS = "start,end,attendees,isCancelled"


class _EventMayExist(Exception):
    """The event was created but the booking could not be confirmed: keep the idempotency record."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def view(booking: Booking, responses: dict[str, str] | None = None, *, start: datetime | None = None,
         end: datetime | None = None, cancelled: bool = False) -> dict[str, Any]:
    zone = ZoneInfo(booking.timeZone)
    responses = responses or {}
    return {
        "bookingId": booking.bookingId,
        "tenantId": booking.tenantId,
        "organizer": booking.organizer,
        "attendees": [{"email": a, "response": responses.get(a, "none")} for a in booking.attendees],
        "start": rfc3339((start or booking.start).astimezone(zone)),
        "end": rfc3339((end or booking.end).astimezone(zone)),
        "timeZone": booking.timeZone,
        "subject": booking.subject,
        "status": "cancelled" if cancelled or booking.status == "cancelled" else booking.status,
        "webLink": booking.webLink,
        "onlineMeetingUrl": booking.onlineMeetingUrl,
        "createdAt": utc_stamp(booking.createdAt or utcnow()),
    }


def windows_name(iana: str) -> str:
    """Graph's dateTimeTimeZone takes Windows names (CLDR's mapping), or UTC."""
    from tzlocal.windows_tz import tz_win

    return tz_win.get(iana, "UTC")


class BookingService:
    def __init__(self, repos: Repositories, graph: GraphClient, members: MemberTokens, *,
                 wait_for_other: float = WAIT_FOR_OTHER) -> None:
        self.repos = repos
        self.graph = graph
        self.members = members
        self.schedules = ScheduleReader(graph)
        self.wait_for_other = wait_for_other

    # -- access ------------------------------------------------------------------------------

    def _token(self, tenant: Tenant, organizer: str) -> str | None:
        """The organizer's delegated token in delegated mode (409 if not connected), else None."""
        if tenant.mode != "delegated":
            return None
        return self.members.access_token(tenant.tenantId, organizer)

    def _events_path(self, tenant: Tenant, organizer: str) -> str:
        return "/me/events" if tenant.mode == "delegated" else f"/users/{quote(organizer, safe='')}/events"

    # -- create --------------------------------------------------------------------------------

    def create(self, tenant: Tenant, key: str, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
        now = utcnow()
        request = parse(body, default_time_zone=tenant.defaultTimeZone, now=now)
        tenant.require_enabled()
        token = self._token(tenant, request.organizer)
        fingerprint = request.fingerprint()
        for _ in range(3):
            record = IdempotencyRecord(tenantId=tenant.tenantId, key=key, requestHash=fingerprint,
                                       bookingId="bk_" + uuid.uuid4().hex, expiresAt=now + KEEP_KEYS,
                                       lockedUntil=now + HOLD_KEY, createdAt=now)
            try:
                self.repos.store.insert(record)
                break
            except AlreadyExists:
                existing = self._existing(tenant, key, fingerprint)
                if isinstance(existing, dict):
                    return existing, 200
                if existing is not None:
                    record = existing  # taken over from a request that died half-way
                    break
                # The first request failed and freed the key meanwhile: try again as the first.
        else:
            raise IdempotencyInProgress("This Idempotency-Key is busy; retry.", retry_after=1,
                                        target="Idempotency-Key")
        try:
            booking = self._book(tenant, request, record, token)
        except _EventMayExist as uncertain:
            # Keep the record in progress: a retry after its hold runs out adopts the event.
            raise uncertain.error from None
        except Exception:
            self._forget(tenant, record)
            raise
        record.state, record.lockedUntil = "completed", None
        try:
            self.repos.store.update(record)
        except ConcurrencyConflict:
            log.warning("idempotency record changed while booking; the booking stands")
        return view(booking), 201

    def _existing(self, tenant: Tenant, key: str, fingerprint: str) -> dict[str, Any] | IdempotencyRecord | None:
        """The stored answer for a key seen before, the record when this request takes over, or
        None when the key was freed meanwhile (the first request failed)."""
        deadline = time.monotonic() + self.wait_for_other
        while True:
            record = self.repos.idempotency_record(tenant.tenantId, key)
            if record is None:
                return None
            if record.requestHash != fingerprint:
                raise IdempotencyConflict("This Idempotency-Key was used with another request body.",
                                          target="Idempotency-Key")
            if record.state == "completed" and record.bookingId:
                booking = self.repos.booking(tenant.tenantId, record.bookingId)
                if booking is not None:
                    return view(booking)
            now = utcnow()
            if record.lockedUntil is not None and record.lockedUntil <= now:
                record.lockedUntil = now + HOLD_KEY
                try:
                    return self.repos.store.update(record)
                except ConcurrencyConflict:
                    continue
            if time.monotonic() >= deadline:
                raise IdempotencyInProgress("A request with this Idempotency-Key is still being processed.",
                                            retry_after=2, target="Idempotency-Key")
            time.sleep(0.2)

    def _forget(self, tenant: Tenant, record: IdempotencyRecord) -> None:
        """A failed request leaves nothing: the key can be used again."""
        try:
            booking = self.repos.booking(tenant.tenantId, record.bookingId or "")
            if booking is not None and booking.status == "creating":
                self.repos.store.delete(booking, if_unchanged=False)
            self.repos.store.delete(record)
        except Exception:
            log.exception("could not clean up after a failed booking; the key frees when its hold expires")

    def _book(self, tenant: Tenant, request: BookingRequest, record: IdempotencyRecord,
              token: str | None) -> Booking:
        booking_id = record.bookingId or ""
        with hold(self.repos, tenant.tenantId, f"organizer:{request.organizer}"):
            existing = self.repos.booking(tenant.tenantId, booking_id)
            if existing is not None and existing.status != "creating":
                return existing
            adopted = self._find_tagged(tenant, request.organizer, booking_id, token) if existing else None
            if adopted is None and request.check_availability:
                self._recheck(tenant, request, token)
            now = utcnow()
            booking = existing or self.repos.store.insert(Booking(
                tenantId=tenant.tenantId, bookingId=booking_id, organizer=request.organizer,
                attendees=list(request.attendees), start=request.start.astimezone(UTC),
                end=request.end.astimezone(UTC), timeZone=request.time_zone, subject=request.subject,
                status="creating", idempotencyKey=record.key, createdAt=now, updatedAt=now))
            event = adopted or self._create_event(tenant, request, booking_id, record.key, token)
            booking.status, booking.eventId = "confirmed", event["id"]
            booking.webLink = event.get("webLink")
            booking.onlineMeetingUrl = (event.get("onlineMeeting") or {}).get("joinUrl")
            booking.updatedAt = utcnow()
            try:
                self.repos.store.update(booking)
            except Exception as error:
                raise _EventMayExist(error) from error
            log.info("booking confirmed")
            return booking

    def _recheck(self, tenant: Tenant, request: BookingRequest, token: str | None) -> None:
        schedules = self.schedules.read(tenant.tenantId, request.organizer,
                                        (request.organizer, *request.attendees), request.start, request.end,
                                        token=token)
        for email, schedule in schedules.items():
            if schedule.reason is not None:
                continue  # Graph could not say; the invitation still goes out
            for busy in schedule.busy:
                if counts_as_busy(busy.status, True) and busy.start < request.end and busy.end > request.start:
                    raise SlotUnavailable("Someone is no longer free at that time.",
                                          target="organizer" if email == request.organizer else "attendees")

    def _event_body(self, request: BookingRequest, booking_id: str, key: str, tenant_id: str) -> dict[str, Any]:
        zone = windows_name(request.time_zone)

        def local(value: datetime) -> dict[str, str]:
            return {"dateTime": value.astimezone(request.zone).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": zone}

        body: dict[str, Any] = {
            "subject": request.subject,
            "body": {"contentType": "text", "content": request.body},
            "start": local(request.start),
            "end": local(request.end),
            "attendees": [{"type": "required", "emailAddress": {"address": a}} for a in request.attendees],
            "isOnlineMeeting": request.online_meeting,
            "transactionId": str(uuid.uuid5(TRANSACTION_NAMESPACE, f"{tenant_id}|{key}")),
            "singleValueExtendedProperties": [{"id": TAG_ID, "value": booking_id}],
        }
        if request.online_meeting:
            body["onlineMeetingProvider"] = "teamsForBusiness"
        return body

    def _create_event(self, tenant: Tenant, request: BookingRequest, booking_id: str, key: str,
                      token: str | None) -> dict[str, Any]:
        body = self._event_body(request, booking_id, key, tenant.tenantId)
        path = self._events_path(tenant, request.organizer)
        last: GraphError | None = None
        for attempt in range(CREATE_ATTEMPTS):
            if attempt:
                # The last try may have created the event before failing: look before creating again.
                found = self._find_tagged(tenant, request.organizer, booking_id, token)
                if found is not None:
                    log.info("adopted the event an earlier attempt created")
                    return found
                time.sleep(min(0.5 * 2 ** attempt, 2.0))
            try:
                return self.graph.post(path, tenant_id=tenant.tenantId, mailbox=request.organizer, json=body,
                                       token=token, retry=False, prefer=[IMMUTABLE_IDS]).body
            except GraphError as error:
                if error.outside_access_policy:
                    raise OutsideSecurityGroup("The organizer's mailbox is outside the security group the "
                                               "tenant's admin allowed.", target="organizer") from None
                if error.status == 404:
                    raise InvalidRequest("The organizer has no mailbox in this tenant.", target="organizer") from None
                if error.status not in (0, 429, 500, 502, 503, 504):
                    raise UpstreamError(f"Microsoft Graph refused the event ({error.status} {error.code}).") from None
                last = error
        found = self._find_tagged(tenant, request.organizer, booking_id, token)
        if found is not None:
            return found
        raise as_service_error(last) if last else UpstreamError("Microsoft Graph did not create the event.")

    def _find_tagged(self, tenant: Tenant, organizer: str, booking_id: str, token: str | None) -> dict[str, Any] | None:
        """The event this service created for `booking_id` in the organizer's calendar, if any."""
        path = self._events_path(tenant, organizer)
        query = {"$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{TAG_ID}' and ep/value eq "
                            f"'{booking_id}')", "$select": "id,webLink,onlineMeeting,isCancelled"}
        found = self.graph.get(path, tenant_id=tenant.tenantId, mailbox=organizer, params=query, token=token,
                               retry=True, prefer=[IMMUTABLE_IDS]).body or {}
        events = found.get("value") or []
        return events[0] if events else None

    # -- read and cancel ----------------------------------------------------------------------------

    def _booking(self, tenant: Tenant, booking_id: str) -> Booking:
        booking = self.repos.booking(tenant.tenantId, booking_id)
        if booking is None or booking.tenantId != tenant.tenantId or booking.status == "creating":
            raise BookingNotFound("No booking with this id exists in this tenant.", target="bookingId")
        return booking

    def read(self, tenant: Tenant, booking_id: str) -> dict[str, Any]:
        booking = self._booking(tenant, booking_id)
        tenant.require_enabled()
        token = self._token(tenant, booking.organizer)
        if booking.status == "cancelled" or not booking.eventId:
            return view(booking)
        path = f"{self._events_path(tenant, booking.organizer)}/{quote(booking.eventId, safe='')}"
        try:
            event = self.graph.get(path, tenant_id=tenant.tenantId, mailbox=booking.organizer, token=token,
                                   params={"$select": READ_FIELDS}, retry=True,
                                   prefer=[IMMUTABLE_IDS, 'outlook.timezone="UTC"']).body or {}
        except GraphError as error:
            if error.status == 404:  # deleted in Outlook
                return view(booking, cancelled=True)
            raise
        invited = set(booking.attendees)
        responses = {}
        for attendee in event.get("attendees") or ():
            address = str((attendee.get("emailAddress") or {}).get("address", "")).lower()
            if address in invited:
                responses[address] = str((attendee.get("status") or {}).get("response") or "none")
        start = graph_time(event.get("start")) or booking.start
        end = graph_time(event.get("end")) or booking.end
        return view(booking, responses, start=start, end=end, cancelled=bool(event.get("isCancelled")))

    def cancel(self, tenant: Tenant, booking_id: str) -> dict[str, Any]:
        booking = self._booking(tenant, booking_id)
        tenant.require_enabled()
        token = self._token(tenant, booking.organizer)
        if booking.status == "cancelled":
            return view(booking)
        if booking.eventId:
            path = f"{self._events_path(tenant, booking.organizer)}/{quote(booking.eventId, safe='')}/cancel"
            try:
                self.graph.post(path, tenant_id=tenant.tenantId, mailbox=booking.organizer, token=token,
                                json={"comment": CANCEL_COMMENT}, retry=True, prefer=[IMMUTABLE_IDS])
            except GraphError as error:
                if error.status != 404:  # 404: already deleted in Outlook, nothing to tell anyone
                    raise

        def mark(current: Booking) -> Booking | None:
            if current.status == "cancelled":
                return None
            current.status, current.updatedAt = "cancelled", utcnow()
            return current

        updated = self.repos.store.modify(Booking, tenant.tenantId, booking.row_key, mark)
        log.info("booking cancelled")
        return view(updated or booking)

