"""The organizer's event in Graph: its body, exact times, create / find / read / cancel.

Times. Graph's `dateTimeTimeZone` is a wall-clock time plus a zone name, which is ambiguous in the
repeated hour of a fall-back change and names nothing in the skipped hour of a spring-forward one
(Exchange documents no reading for either; the sandbox reads the first occurrence). So each of
`start` and `end` is written in the booking's own zone (Outlook shows the meeting in it) when that
local time names exactly one instant, and in UTC otherwise: the event lands at the instants asked.

Creates. `POST /events` is not idempotent. A create that got an answer either made the event or
did not; one that timed out, dropped or got a 5xx has an unknown outcome until its deadline: the
client's timeout plus `late_margin`, the time Graph may still take to act on a request the client
gave up on (Microsoft documents no bound; we assume one and fence everything on it). The
`transactionId` is sent too, but Microsoft documents no window for it, so nothing relies on it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from shared.errors import InvalidRequest, OutsideSecurityGroup, UpstreamError
from shared.graph import GraphClient, GraphError, graph_time
from shared.upstream import service_error

log = logging.getLogger(__name__)

# Our own MAPI named property: tags every event this service creates with its booking id.
TAG_ID = "String {8c3a5f2e-4b1d-4e6a-9f0c-2d7e1a6b5c94} Name TenKCBookingId"
TRANSACTION_NAMESPACE = uuid.UUID("5b6f0d2a-6c1e-4f3b-8a9d-7e2c4b1a0f63")
IMMUTABLE_IDS = 'IdType="ImmutableId"'
IN_UTC = 'outlook.timezone="UTC"'
CANCEL_COMMENT = "This meeting was cancelled through 10KC."
READ_FIELDS = "start,end,attendees,isCancelled"
# Statuses that say Graph did not act on the create (throttled before any work).
NOT_PERFORMED = frozenset({429})


def windows_name(iana: str) -> str:
    """Graph's dateTimeTimeZone takes Windows names (CLDR's mapping), or UTC."""
    from tzlocal.windows_tz import tz_win

    return tz_win.get(iana, "UTC")


def unambiguous(instant: datetime, zone: ZoneInfo) -> bool:
    """Whether the wall-clock time of `instant` in `zone` names that instant and no other."""
    local = instant.astimezone(zone).replace(tzinfo=None)
    first, second = local.replace(tzinfo=zone, fold=0), local.replace(tzinfo=zone, fold=1)
    return first.utcoffset() == second.utcoffset() and first.astimezone(UTC) == instant.astimezone(UTC)


def graph_time_of(instant: datetime, zone_name: str) -> dict[str, str]:
    """`instant` as Graph's dateTimeTimeZone: in the booking's zone, or in UTC where that zone's
    wall-clock time is ambiguous or does not exist."""
    zone = ZoneInfo(zone_name)
    if zone_name != "UTC" and unambiguous(instant, zone):
        return {"dateTime": instant.astimezone(zone).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": windows_name(zone_name)}
    return {"dateTime": instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}


def transaction_id(tenant_id: str, key: str) -> str:
    return str(uuid.uuid5(TRANSACTION_NAMESPACE, f"{tenant_id}|{key}"))


def event_body(*, subject: str, body: str, start: datetime, end: datetime, time_zone: str, attendees: list[str],
               online_meeting: bool, booking_id: str, transaction: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "subject": subject,
        "body": {"contentType": "text", "content": body},
        "start": graph_time_of(start, time_zone),
        "end": graph_time_of(end, time_zone),
        "attendees": [{"type": "required", "emailAddress": {"address": a}} for a in attendees],
        "isOnlineMeeting": online_meeting,
        "transactionId": transaction,
        "singleValueExtendedProperties": [{"id": TAG_ID, "value": booking_id}],
    }
    if online_meeting:
        event["onlineMeetingProvider"] = "teamsForBusiness"
    return event


@dataclass(frozen=True)
class Calendar:
    """Whose calendar, and how Graph is asked: `/users/{id or UPN}` with the app's token, or `/me`
    with the organizer's delegated token."""

    tenant_id: str
    mailbox: str  # the path's user (object id or UPN), or the member's id for /me
    token: str | None = None

    @property
    def events(self) -> str:
        return "/me/events" if self.token else f"/users/{quote(self.mailbox, safe='')}/events"

    def event(self, event_id: str) -> str:
        return f"{self.events}/{quote(event_id, safe='')}"


@dataclass(frozen=True)
class CreateOutcome:
    """`event` when Graph made it; `unknown_until` when it may still make it until then; else the
    error for a create Graph certainly did not perform."""

    event: dict[str, Any] | None = None
    unknown_until: datetime | None = None
    error: GraphError | None = None


class Events:
    def __init__(self, graph: GraphClient, *, timeout: float, late_margin: timedelta) -> None:
        self.graph = graph
        self.write_window = timedelta(seconds=timeout) + late_margin

    def create(self, calendar: Calendar, body: dict[str, Any], *, sent_at: datetime) -> CreateOutcome:
        """One create, never repeated here. Refusals that Graph answered are raised as the
        service's errors; throttling (not performed) and unknown outcomes are returned."""
        try:
            event = self.graph.post(calendar.events, tenant_id=calendar.tenant_id, mailbox=calendar.mailbox,
                                    json=body, token=calendar.token, retry=False, prefer=[IMMUTABLE_IDS]).body
            return CreateOutcome(event=event or {})
        except GraphError as error:
            if error.status in NOT_PERFORMED:
                return CreateOutcome(error=error)
            if error.status == 0 or error.status >= 500:
                log.warning("event create outcome unknown (%s %s)", error.status, error.code)
                return CreateOutcome(unknown_until=sent_at + self.write_window, error=error)
            if error.outside_access_policy:
                raise OutsideSecurityGroup("The organizer's mailbox is outside the security group the "
                                           "tenant's admin allowed.", target="organizer") from None
            if error.status == 404:
                raise InvalidRequest("The organizer has no mailbox in this tenant.", target="organizer") from None
            raise UpstreamError(f"Microsoft Graph refused the event ({error.status} {error.code}).") from None

    def find_tagged(self, calendar: Calendar, booking_id: str) -> dict[str, Any] | None:
        """The event this service created for `booking_id` in the calendar, if any."""
        query = {"$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq '{TAG_ID}' and ep/value eq "
                            f"'{booking_id}')", "$select": "id,webLink,onlineMeeting,isCancelled"}
        try:
            found = self.graph.get(calendar.events, tenant_id=calendar.tenant_id, mailbox=calendar.mailbox,
                                   params=query, token=calendar.token, retry=True, prefer=[IMMUTABLE_IDS]).body
        except GraphError as error:
            raise service_error(error) from None
        events = (found or {}).get("value") or []
        return events[0] if events else None

    def read(self, calendar: Calendar, event_id: str) -> dict[str, Any] | None:
        """The event's times, attendees and cancellation (None: deleted in Outlook)."""
        try:
            return self.graph.get(calendar.event(event_id), tenant_id=calendar.tenant_id, mailbox=calendar.mailbox,
                                  token=calendar.token, params={"$select": READ_FIELDS}, retry=True,
                                  prefer=[IMMUTABLE_IDS, IN_UTC]).body or {}
        except GraphError as error:
            if error.status == 404:
                return None
            raise service_error(error) from None

    def cancel(self, calendar: Calendar, event_id: str) -> None:
        try:
            self.graph.post(f"{calendar.event(event_id)}/cancel", tenant_id=calendar.tenant_id,
                            mailbox=calendar.mailbox, token=calendar.token, json={"comment": CANCEL_COMMENT},
                            retry=True, prefer=[IMMUTABLE_IDS])
        except GraphError as error:
            if error.status != 404:  # 404: already deleted in Outlook, nothing to tell anyone
                raise service_error(error) from None


@dataclass(frozen=True)
class MoveOutcome:
    """`event` when Graph moved it; `conflict` when the event changed since its etag was read
    (Graph's 412); `gone` when it no longer exists; `unknown_until` when the update may still land
    until then."""

    event: dict[str, Any] | None = None
    conflict: bool = False
    gone: bool = False
    unknown_until: datetime | None = None


def move(events: Events, calendar: Calendar, event_id: str, *, start: datetime, end: datetime, time_zone: str,
         etag: str | None, sent_at: datetime) -> MoveOutcome:
    """One update of the organizer's event to new times, sent with the event's `@odata.etag` as
    `If-Match` (Graph answers 412 when the event changed meanwhile). Times are written as a create
    writes them (`graph_time_of`: UTC where the zone's local time is ambiguous or missing)."""
    body = {"start": graph_time_of(start, time_zone), "end": graph_time_of(end, time_zone)}
    try:
        moved = events.graph.request("PATCH", calendar.event(event_id), tenant_id=calendar.tenant_id,
                                     mailbox=calendar.mailbox, json=body, token=calendar.token, retry=False,
                                     prefer=[IMMUTABLE_IDS, IN_UTC], headers={"If-Match": etag} if etag else None)
        return MoveOutcome(event=moved.body or {})
    except GraphError as error:
        if error.status == 412:
            return MoveOutcome(conflict=True)
        if error.status == 404:
            return MoveOutcome(gone=True)
        if error.status == 0 or error.status >= 500:
            log.warning("event update outcome unknown (%s %s)", error.status, error.code)
            return MoveOutcome(unknown_until=sent_at + events.write_window)
        if error.status == 429:
            raise service_error(error) from None  # throttled before acting: nothing happened
        raise service_error(error) from None


def live_times(event: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    return graph_time(event.get("start")), graph_time(event.get("end"))
