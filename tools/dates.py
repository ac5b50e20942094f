"""Dates computed from today, for tests, seeds, benches and the `make run` demo.

Nothing in the repository may expire: the contract refuses windows and bookings that end in the
past, so a fixed date in a test passes only until that day. Every helper here starts from the
clock (`now`, injectable) and looks ahead for a day with the properties a test needs, e.g. "the
first Tuesday at least two weeks ahead on which New York and London are 5 hours apart", or the
next real daylight-saving transition of a zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

# The UTC offsets, in hours, that the tests' expectations are written in: northern winter
# (standard time everywhere north of the equator). A test day is picked where these hold.
WINTER_OFFSETS: Mapping[str, float] = {
    "America/New_York": -5, "America/Chicago": -6, "America/Los_Angeles": -8,
    "Europe/London": 0, "Europe/Paris": 1, "Europe/Berlin": 1, "Asia/Kolkata": 5.5, "UTC": 0,
}

MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY, SATURDAY, SUNDAY = range(7)


def utc_now() -> datetime:
    return datetime.now(UTC)


def offset_hours(zone: str | tzinfo, instant: datetime) -> float:
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    offset = instant.astimezone(tz).utcoffset() or timedelta(0)
    return offset.total_seconds() / 3600


def quiet_day(*, weekday: int = TUESDAY, min_days_ahead: int = 14, span_days: int = 7,
              offsets: Mapping[str, float] = WINTER_OFFSETS, now: datetime | None = None) -> date:
    """The first `weekday` at least `min_days_ahead` days from today (UTC) such that every zone of
    `offsets` has exactly that UTC offset from the day before it to `span_days` days after it: no
    clock change can move an expectation written for those offsets."""
    today = (now or utc_now()).astimezone(UTC).date()
    day = today + timedelta(days=min_days_ahead)
    day += timedelta(days=(weekday - day.weekday()) % 7)
    for _ in range(60):  # at most about 14 months ahead: every zone has its winter within a year
        if _offsets_hold(day, span_days, offsets):
            return day
        day += timedelta(days=7)
    raise LookupError(f"no {weekday=} with offsets {dict(offsets)} found ahead of {today}")


def _offsets_hold(day: date, span_days: int, offsets: Mapping[str, float]) -> bool:
    first = datetime.combine(day - timedelta(days=1), time(0), UTC)
    hours = (span_days + 2) * 24
    # Every zone changes its clock at most twice a year, each change lasting for months, so
    # sampling every 6 hours over the span cannot miss one that falls inside it.
    for zone, expected in offsets.items():
        tz = ZoneInfo(zone)
        for step in range(0, hours + 1, 6):
            if offset_hours(tz, first + timedelta(hours=step)) != expected:
                return False
    return True


@dataclass(frozen=True)
class Transition:
    """A clock change of `zone`: at the UTC instant `at` the offset goes from `before` to `after`."""

    zone: str
    at: datetime
    before: timedelta
    after: timedelta

    @property
    def is_fall_back(self) -> bool:
        return self.after < self.before

    @property
    def local_day(self) -> date:
        return self.at.astimezone(ZoneInfo(self.zone)).date()


def next_transition(zone: str, *, after: datetime | None = None, fall_back: bool | None = None,
                    min_days_ahead: int = 2) -> Transition:
    """The zone's next real clock change at least `min_days_ahead` days after `after` (default
    now); only fall-backs (`fall_back=True`) or only springs forward (`False`) when asked."""
    tz = ZoneInfo(zone)
    start = (after or utc_now()).astimezone(UTC) + timedelta(days=min_days_ahead)
    probe = start.replace(minute=0, second=0, microsecond=0)
    current = probe.astimezone(tz).utcoffset()
    for _ in range(24 * 366 * 3):
        probe += timedelta(hours=1)
        offset = probe.astimezone(tz).utcoffset()
        if offset != current:
            lo, hi = probe - timedelta(hours=1), probe  # the change lies in (lo, hi]: find its minute
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(tz).utcoffset() == current:
                    lo = mid
                else:
                    hi = mid
            found = Transition(zone, hi.replace(second=0, microsecond=0), current or timedelta(0),
                               offset or timedelta(0))
            if fall_back is None or found.is_fall_back == fall_back:
                return found
            current = offset
    raise LookupError(f"{zone} has no clock change in the next three years")


def iso(day: date, clock: str, zone: str) -> str:
    """RFC 3339 text of wall-clock `clock` ("09:30") on `day` in `zone`, with its real offset."""
    hour, minute = (int(part) for part in clock.split(":")[:2])
    local = datetime.combine(day, time(hour, minute), ZoneInfo(zone))
    return local.isoformat()


def utc_at(day: date, hour: int = 0) -> datetime:
    """`hour` o'clock UTC on `day`."""
    return datetime.combine(day, time(hour), UTC)
