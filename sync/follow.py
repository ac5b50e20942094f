"""Keeping bookings in step with Outlook: what a notification (or a re-read) makes of a booking.

Notifications are hints. The event id is mapped to a booking through the index the confirmation
wrote; an id the service does not know is dropped without any Graph call, so the service never
reads meetings it did not book. A known one is re-read from Graph, and at most one change is
recorded, the first that applies of: deleted (Graph answers 404), cancelled (`isCancelled`),
moved (start or end; it carries the reset responses too), an attendee's response. The booking
row's new state and the change are written in one transaction
(booking.service.record_booking_change), so duplicates, retries of the queue and two hosts
reading the same event record it once. A person erased from the booking (booking/erasure.py) stays
erased: only the booking's own attendees are looked up in the event, markers never, and a booking
whose organizer was erased is not read at all.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from booking import events as ev
from booking.erasure import is_erased
from shared.errors import ServiceError
from shared.storage import Booking, Repositories, Tenant
from sync.changes import ChangeLog

log = logging.getLogger(__name__)


class Follower:
    def __init__(self, repos: Repositories, events: ev.Events, members: Any, changes: ChangeLog) -> None:
        self.repos = repos
        self.events = events
        self.members = members
        self.changes = changes

    def notified(self, tenant_id: str, event_id: str) -> str:
        booking = self.repos.booking_of_event(tenant_id, event_id)
        if booking is None:
            return "not ours: dropped"
        tenant = self.repos.tenant(tenant_id)
        if tenant is None or tenant.status != "enabled":
            return "tenant not enabled"
        return self.refresh(tenant, booking)

    def refresh(self, tenant: Tenant, booking: Booking) -> str:
        """Re-read the booking's event and record what changed (at most one change)."""
        if booking.status != "confirmed" or not booking.eventId:
            return "nothing to follow"
        if is_erased(booking.organizer):
            return "nothing to follow: the organizer was erased"  # the service no longer reads that calendar
        try:
            token = self.members.access_token(tenant.tenantId, booking.organizer) if tenant.mode == "delegated" \
                else None
        except ServiceError as error:  # the organizer must reconnect: nothing can be read for now
            return f"skipped: {error.code}"
        event = self.events.read(ev.Calendar(tenant.tenantId, booking.organizer, token), booking.eventId)
        from booking.service import record_booking_change

        happened: list[str] = []

        def follow(current: Booking) -> tuple[str, str] | None:
            happened.clear()
            outcome = what_changed(current, event)
            if outcome is not None:
                happened.append(outcome[1])
            return outcome

        _, changed = record_booking_change(self.repos, self.changes, tenant, booking.bookingId, follow)
        return happened[0] if changed else "no change"


def what_changed(current: Booking, event: dict[str, Any] | None) -> tuple[str, str] | None:
    """Edit the booking row to what the event shows and name the first change that applies:
    deleted, cancelled, moved (with the reset answers), an answer; None when nothing it keeps
    changed."""
    if current.status != "confirmed":
        return None
    if event is None:
        current.status = "cancelled"
        return "booking.cancelled", "deleted_in_outlook"
    if event.get("isCancelled"):
        current.status = "cancelled"
        return "booking.cancelled", "cancelled_in_outlook"
    start, end = ev.live_times(event)
    responses = invited_responses(current, event)
    if (start and start != current.start) or (end and end != current.end):
        current.start, current.end = start or current.start, end or current.end
        current.responses = json.dumps(responses)
        return "booking.updated", "moved_in_outlook"
    if responses != {a: current.response_map.get(a, "none") for a in current.attendees if not is_erased(a)}:
        current.responses = json.dumps(responses)
        return "booking.updated", "attendee_responded"
    return None


def invited_responses(booking: Booking, event: dict[str, Any]) -> dict[str, str]:
    """The invited attendees' responses as the event shows them ("none" for one it lists not).
    Keyed by the booking's own attendees only, and never an erased one's: an address the event
    still lists never comes back into the row (booking/erasure.py)."""
    found: dict[str, str] = {}
    for attendee in event.get("attendees") or ():
        address = str((attendee.get("emailAddress") or {}).get("address", "")).lower()
        found[address] = str((attendee.get("status") or {}).get("response") or "none")
    return {a: found.get(a, "none") for a in booking.attendees if not is_erased(a)}
