"""The slot engine: common free time of several people, as pure functions (no I/O).

The rules (API.md, "Availability"), with every interval half-open `[start, end)`:
- Busy time is `busy`, `oof`, `unknown`, and `tentative` when tentative counts as busy.
- A slot `[t, t + d)` needs no busy time of anyone overlapping `[t - buffer, t + d + buffer)`.
  So each busy interval `[bs, be)` forbids the starts in the open interval `(bs - d - b, be + b)`;
  the union of those is computed once (sort and merge: O(n log n) in the busy intervals).
- With working hours, `[t, t + d)` lies inside one working period of every participant, in that
  person's own time zone; a period runs from startTime to endTime on each listed day, into the
  next day when endTime <= startTime, and back-to-back periods merge. A period `[ps, pe)` allows
  the starts in `[ps, pe - d]`; the allowed starts are the intersection over participants.
- Starts lie on the wall-clock grid of the requested time zone: local times whose minutes past
  local midnight are a multiple of the step. A local time that does not exist (spring forward) is
  skipped; one that exists twice (fall back) gives both instants.
- Slots are sorted by start, cut at `max_slots`, and given in the requested time zone.

Checking one candidate start against the merged intervals is a binary search, so a search is
O(n log n + c log n) for n busy intervals and c grid points.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

BUSY_STATUSES = frozenset({"busy", "oof", "unknown"})
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Busy:
    start: datetime
    end: datetime
    status: str = "busy"


@dataclass(frozen=True)
class WorkingHours:
    days: frozenset[str]  # lower-case English day names
    start: time
    end: time
    zone: tzinfo


@dataclass(frozen=True)
class Participant:
    email: str
    busy: Sequence[Busy] = ()
    working_hours: WorkingHours | None = None


@dataclass(frozen=True)
class SlotQuery:
    start: datetime
    end: datetime
    duration: timedelta
    step_minutes: int
    buffer: timedelta
    max_slots: int
    zone: ZoneInfo
    respect_working_hours: bool = True
    tentative_as_busy: bool = True
    now: datetime | None = None


@dataclass
class SlotResult:
    slots: list[tuple[datetime, datetime]] = field(default_factory=list)
    empty_reason: str | None = None


# --- interval arithmetic on sorted, disjoint lists ------------------------------------------------


def merge(intervals: Iterable[tuple[datetime, datetime]], *, touching: bool) -> list[tuple[datetime, datetime]]:
    """Sort and merge; `touching` also joins intervals that meet end-to-start."""
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if merged and (start < merged[-1][1] or (touching and start == merged[-1][1])):
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


Intervals = list[tuple[datetime, datetime]]


def intersect(a: Intervals, b: Intervals) -> Intervals:
    """Intersection of two sorted disjoint lists of closed intervals `[s, e]` (s <= e)."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start <= end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


class _Lookup:
    """Membership of an instant in a sorted list of disjoint intervals, by binary search."""

    def __init__(self, intervals: list[tuple[datetime, datetime]]) -> None:
        self.intervals = intervals
        self.starts = [s for s, _ in intervals]

    def open_contains(self, t: datetime) -> bool:
        """t in some (s, e)."""
        index = bisect.bisect_left(self.starts, t) - 1
        return index >= 0 and self.intervals[index][0] < t < self.intervals[index][1]

    def closed_contains(self, t: datetime) -> bool:
        """t in some [s, e]."""
        index = bisect.bisect_right(self.starts, t) - 1
        return index >= 0 and self.intervals[index][0] <= t <= self.intervals[index][1]


# --- the rules -------------------------------------------------------------------------------


def counts_as_busy(status: str, tentative_as_busy: bool) -> bool:
    status = status.lower()
    return status in BUSY_STATUSES or (tentative_as_busy and status == "tentative")


def forbidden_starts(participants: Sequence[Participant], duration: timedelta, buffer: timedelta,
                     tentative_as_busy: bool) -> list[tuple[datetime, datetime]]:
    """Merged open intervals of slot starts that some busy time rules out."""
    return merge(
        ((b.start.astimezone(UTC) - duration - buffer, b.end.astimezone(UTC) + buffer)
         for p in participants for b in p.busy if counts_as_busy(b.status, tentative_as_busy)),
        touching=False,
    )


def working_periods(hours: WorkingHours, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """The person's working periods (UTC) that may touch `[start, end)`, back-to-back ones merged."""
    periods = []
    first = start.astimezone(hours.zone).date() - timedelta(days=1)
    last = end.astimezone(hours.zone).date() + timedelta(days=1)
    day = first
    while day <= last:
        if WEEKDAYS[day.weekday()] in hours.days:
            period_start = _local(day, hours.start, hours.zone)
            end_day = day if hours.end > hours.start else day + timedelta(days=1)
            period_end = _local(end_day, hours.end, hours.zone)
            periods.append((period_start, period_end))
        day += timedelta(days=1)
    return merge(periods, touching=True)


def _local(day: date, at: time, zone: tzinfo) -> datetime:
    """A wall-clock time as an instant: the first instant whose wall-clock time is at or after
    it. So a repeated time (fall back) is its first occurrence, and a time skipped by spring
    forward is the moment of the change (a 02:30 start on that day starts at 03:00)."""
    naive = datetime.combine(day, at)
    instant = naive.replace(tzinfo=zone).astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == naive:
        return instant
    # In a gap: fold=1 reads the time with the later offset, an instant before the change; walk
    # forward a minute at a time (a gap is an hour, rarely more) to the change itself.
    probe = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    while probe.astimezone(zone).replace(tzinfo=None) < naive:
        probe += timedelta(minutes=1)
    return probe


def allowed_starts(participants: Sequence[Participant], query: SlotQuery) -> list[tuple[datetime, datetime]] | None:
    """Closed intervals of starts inside everyone's working hours; None when nobody has any."""
    allowed: list[tuple[datetime, datetime]] | None = None
    for participant in participants:
        if participant.working_hours is None:
            continue
        periods = working_periods(participant.working_hours, query.start, query.end)
        starts = [(s, e - query.duration) for s, e in periods if e - query.duration >= s]
        allowed = starts if allowed is None else intersect(allowed, starts)
    return allowed


def grid(query: SlotQuery) -> list[datetime]:
    """Candidate starts (UTC), sorted: wall-clock multiples of the step in the query's zone that
    lie in `[start, end - duration]` and not before now."""
    zone, step = query.zone, query.step_minutes
    earliest = query.start if query.now is None else max(query.start, query.now)
    latest = query.end - query.duration
    out: list[datetime] = []
    day = query.start.astimezone(zone).date()
    last_day = query.end.astimezone(zone).date()
    minutes_of_day = range(0, 24 * 60, step)
    while day <= last_day:
        midnight = datetime.combine(day, time())
        next_midnight = midnight + timedelta(days=1)
        first = midnight.replace(tzinfo=zone).astimezone(UTC)
        after = next_midnight.replace(tzinfo=zone).astimezone(UTC)
        if first.astimezone(zone).replace(tzinfo=None) == midnight and after - first == timedelta(days=1) \
                and zone.utcoffset(midnight) == zone.utcoffset(next_midnight - timedelta(minutes=1)):
            # No clock change today: the grid is plain arithmetic from local midnight.
            out.extend(t for t in (first + timedelta(minutes=m) for m in minutes_of_day) if earliest <= t <= latest)
        else:
            for minutes in minutes_of_day:
                naive = midnight + timedelta(minutes=minutes)
                for fold in (0, 1):
                    instant = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)
                    if instant.astimezone(zone).replace(tzinfo=None) != naive:
                        break  # does not exist (spring forward)
                    if fold == 1 and instant == naive.replace(tzinfo=zone, fold=0).astimezone(UTC):
                        break  # not a repeated time: fold 1 is the same instant
                    if earliest <= instant <= latest:
                        out.append(instant)
        day += timedelta(days=1)
    out.sort()
    return out


def find_slots(participants: Sequence[Participant], query: SlotQuery, *,
               unavailable: bool = False) -> SlotResult:
    """Common free slots of `participants` (those Graph could answer for); `unavailable` says
    that someone was left out, for `emptyReason`."""
    # Arithmetic on aware datetimes of one zone is wall-clock arithmetic: work in UTC throughout.
    query = replace(query, start=query.start.astimezone(UTC), end=query.end.astimezone(UTC),
                    now=query.now.astimezone(UTC) if query.now else None)
    forbidden = _Lookup(forbidden_starts(participants, query.duration, query.buffer, query.tentative_as_busy))
    allowed_intervals = allowed_starts(participants, query) if query.respect_working_hours else None
    allowed = _Lookup(allowed_intervals) if allowed_intervals is not None else None

    slots: list[tuple[datetime, datetime]] = []
    in_working_hours = 0
    for start in grid(query):
        if allowed is not None and not allowed.closed_contains(start):
            continue
        in_working_hours += 1
        if forbidden.open_contains(start):
            continue
        slots.append((start.astimezone(query.zone), (start + query.duration).astimezone(query.zone)))
        if len(slots) >= query.max_slots:
            break
    result = SlotResult(slots=slots)
    if not slots:
        if unavailable:
            result.empty_reason = "participant_unavailable"
        elif in_working_hours == 0 and allowed is not None:
            result.empty_reason = "outside_working_hours"
        else:
            result.empty_reason = "no_common_time"
    return result
