"""The booking request: fields checked, defaults filled, and the normal form idempotency compares."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from availability.request import MAX_ATTENDEES, attendee_list, window
from shared import validation as v
from shared.errors import InvalidRequest

FIELDS = {"organizer", "attendees", "start", "end", "timeZone", "subject", "body", "onlineMeeting",
          "checkAvailability"}
MAX_BODY_CHARS = 32_000
MAX_LENGTH = timedelta(hours=24)  # a meeting, as availability's longest durationMinutes


@dataclass(frozen=True)
class BookingRequest:
    organizer: str
    attendees: tuple[str, ...]
    start: datetime
    end: datetime
    time_zone: str
    subject: str
    body: str
    online_meeting: bool
    check_availability: bool

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def fingerprint(self) -> str:
        """SHA-256 of the normal form: defaults filled, times as UTC instants, e-mails lower-cased
        and the attendees as a set, so the same booking asked twice compares equal."""
        normal = {"organizer": self.organizer, "attendees": sorted(self.attendees),
                  "start": self.start.astimezone(UTC).isoformat(), "end": self.end.astimezone(UTC).isoformat(),
                  "timeZone": self.time_zone, "subject": self.subject, "body": self.body,
                  "onlineMeeting": self.online_meeting, "checkAvailability": self.check_availability}
        return hashlib.sha256(json.dumps(normal, sort_keys=True).encode()).hexdigest()

    def besides(self, address: str) -> BookingRequest:
        """The attendees without the organizer's own SMTP address (`address`, her calendar's owner
        as Graph names it): a caller who named her by object id or UPN and listed her mail among
        the attendees would otherwise invite her to her own meeting. She is not counted, whatever
        name she was given; a proxy address of hers is not known without directory permission."""
        attendees = tuple(attendee for attendee in self.attendees if attendee != address)
        if not attendees:
            raise InvalidRequest(f"attendees must hold 1-{MAX_ATTENDEES} distinct people besides the organizer.",
                                 target="attendees")
        return self if len(attendees) == len(self.attendees) else replace(self, attendees=attendees)


def idempotency_key(value: str | None) -> str:
    if not value or len(value) > 200 or not all(0x20 <= ord(c) <= 0x7E for c in value):
        raise InvalidRequest("Idempotency-Key must be 1-200 printable ASCII characters.", target="Idempotency-Key")
    return value


def parse(body: dict[str, Any], *, default_time_zone: str, now: datetime) -> BookingRequest:
    v.only_fields(body, FIELDS)
    organizer = v.person(body.get("organizer"), "organizer")
    if "attendees" not in body:
        raise InvalidRequest("attendees is required.", target="attendees")
    attendees = attendee_list(body["attendees"], organizer, minimum=1)
    start, end = window(body, now=now)
    if end - start > MAX_LENGTH:
        raise InvalidRequest("A booking may last at most 24 hours.", target="end")
    subject = v.string(body, "subject", required=True, min_length=1, max_length=255)
    text = v.string(body, "body", default="", max_length=MAX_BODY_CHARS)
    return BookingRequest(
        organizer=organizer, attendees=attendees, start=start, end=end,
        time_zone=v.time_zone(body.get("timeZone") or default_time_zone, "timeZone"),
        subject=subject or "", body=text or "",
        online_meeting=v.boolean(body, "onlineMeeting", False),
        check_availability=v.boolean(body, "checkAvailability", True),
    )


MOVE_FIELDS = {"start", "end", "timeZone", "checkAvailability"}


@dataclass(frozen=True)
class MoveRequest:
    """A reschedule: the new times, the zone the event is written in, and the re-check."""

    start: datetime
    end: datetime
    time_zone: str
    check_availability: bool

    def fingerprint(self, booking_id: str) -> str:
        normal = {"move": booking_id, "start": self.start.astimezone(UTC).isoformat(),
                  "end": self.end.astimezone(UTC).isoformat(), "timeZone": self.time_zone,
                  "checkAvailability": self.check_availability}
        return hashlib.sha256(json.dumps(normal, sort_keys=True).encode()).hexdigest()


def parse_move(body: dict[str, Any], *, default_time_zone: str, now: datetime) -> MoveRequest:
    """`{"start", "end", "timeZone"?, "checkAvailability"?}`; any other field is 400."""
    v.only_fields(body, MOVE_FIELDS)
    start, end = window(body, now=now)
    if end - start > MAX_LENGTH:
        raise InvalidRequest("A booking may last at most 24 hours.", target="end")
    return MoveRequest(start=start.astimezone(UTC), end=end.astimezone(UTC),
                       time_zone=v.time_zone(body.get("timeZone") or default_time_zone, "timeZone"),
                       check_availability=v.boolean(body, "checkAvailability", True))
