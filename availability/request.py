"""The availability request: every field checked against API.md's limits, defaults filled."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared import validation as v
from shared.errors import InvalidRequest

FIELDS = {"organizer", "attendees", "start", "end", "durationMinutes", "timeZone", "slotStepMinutes",
          "bufferMinutes", "maxSlots", "respectWorkingHours", "tentativeAsBusy"}
MAX_WINDOW = timedelta(days=90)
MAX_ATTENDEES = 99


@dataclass(frozen=True)
class AvailabilityRequest:
    organizer: str
    attendees: tuple[str, ...]
    start: datetime
    end: datetime
    duration: timedelta
    time_zone: str
    step_minutes: int
    buffer: timedelta
    max_slots: int
    respect_working_hours: bool
    tentative_as_busy: bool

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def participants(self) -> tuple[str, ...]:
        return (self.organizer, *self.attendees)


def attendee_list(value: Any, organizer: str, *, minimum: int) -> tuple[str, ...]:
    """Distinct e-mails (case-insensitive), the organizer not counted, order kept."""
    if not isinstance(value, list):
        raise InvalidRequest("attendees must be a list of e-mail addresses.", target="attendees")
    seen: dict[str, None] = {}
    for item in value:
        address = v.email(item, "attendees")
        if address != organizer:
            seen.setdefault(address, None)
    if not minimum <= len(seen) <= MAX_ATTENDEES:
        raise InvalidRequest(f"attendees must hold {minimum}-{MAX_ATTENDEES} distinct people besides the organizer.",
                             target="attendees")
    return tuple(seen)


def window(body: dict[str, Any], *, now: datetime) -> tuple[datetime, datetime]:
    start = v.instant(body.get("start"), "start")
    end = v.instant(body.get("end"), "end")
    if end <= start:
        raise InvalidRequest("end must be after start.", target="end")
    if end <= now:
        raise InvalidRequest("The window ends in the past.", target="end")
    return start, end


def parse(body: dict[str, Any], *, default_time_zone: str, now: datetime) -> AvailabilityRequest:
    v.only_fields(body, FIELDS)
    organizer = v.person(body.get("organizer"), "organizer")
    if "attendees" not in body:
        raise InvalidRequest("attendees is required.", target="attendees")
    attendees = attendee_list(body["attendees"], organizer, minimum=0)
    if "durationMinutes" not in body:
        raise InvalidRequest("durationMinutes is required.", target="durationMinutes")
    duration = v.integer(body, "durationMinutes", default=None, low=5, high=1440)
    start, end = window(body, now=now)
    if end - start < timedelta(minutes=duration):
        raise InvalidRequest("The window must be at least durationMinutes long.", target="end")
    if end - start > MAX_WINDOW:
        raise InvalidRequest("The window may be at most 90 days long.", target="end")
    time_zone = v.time_zone(body.get("timeZone") or default_time_zone, "timeZone")
    return AvailabilityRequest(
        organizer=organizer, attendees=attendees, start=start, end=end, duration=timedelta(minutes=duration),
        time_zone=time_zone,
        step_minutes=v.integer(body, "slotStepMinutes", default=15, low=5, high=1440),
        buffer=timedelta(minutes=v.integer(body, "bufferMinutes", default=0, low=0, high=240)),
        max_slots=v.integer(body, "maxSlots", default=50, low=1, high=500),
        respect_working_hours=v.boolean(body, "respectWorkingHours", True),
        tentative_as_busy=v.boolean(body, "tentativeAsBusy", True),
    )
