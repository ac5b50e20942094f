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

Internally every instant is whole seconds since 1970 (UTC): busy time is rounded outwards (its
start down, its end up), which changes no answer because every candidate start, duration and
buffer is a whole number of minutes. The candidates are walked in order beside the merged
intervals, so a search is O(n log n + c) for n busy intervals and c grid points; each distinct
working-hours pattern is turned into periods once per search.

Busy time may instead come as Graph's availabilityView (a digit per cell, the highest status of
the items overlapping the cell). When the cell divides the duration and the buffer and every
candidate start lies on a cell boundary, `[t - buffer, t + d + buffer)` is a run of whole cells,
and it overlaps busy time exactly when one of those cells is busy: so everyone's views become
one integer a bit per cell and a start is one shift and mask (`BusyCells`). When they do not fit
(a 7-minute step), the exact times are used instead; cells are never rounded into an answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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
    # Busy time already in whole seconds since 1970: (start, end, lower-case status), as the
    # schedule reader gives it (no datetime per item).
    spans: Sequence[tuple[int, int, str]] = ()
    # Busy time as Graph's availabilityView: (origin, digits) pieces, `cell` seconds a digit, each
    # origin on a multiple of `cell` since 1970. Used in place of `busy` and `spans` when every
    # candidate start, the duration and the buffer fall on the cells; otherwise ignored.
    cells: Sequence[tuple[int, str]] = ()
    cell: int = 0


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


# --- whole seconds -------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def floor_seconds(value: datetime) -> int:
    """An aware datetime as whole seconds since 1970, rounded down (exact: no float)."""
    return (value - EPOCH) // SECOND


def ceil_seconds(value: datetime) -> int:
    return -((EPOCH - value) // SECOND)


# --- interval arithmetic on sorted, disjoint lists ------------------------------------------------

Intervals = list[tuple[int, int]]


def merge(intervals: Iterable[tuple[int, int]], *, touching: bool) -> Intervals:
    """Sort and merge; `touching` also joins intervals that meet end-to-start."""
    merged: Intervals = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if merged and (start < merged[-1][1] or (touching and start == merged[-1][1])):
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


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


# --- the rules -------------------------------------------------------------------------------


def counts_as_busy(status: str, tentative_as_busy: bool) -> bool:
    status = status.lower()
    return status in BUSY_STATUSES or (tentative_as_busy and status == "tentative")


def forbidden_starts(participants: Sequence[Participant], duration: int, buffer: int,
                     tentative_as_busy: bool) -> Intervals:
    """Merged open intervals `(s, e)` of slot starts (seconds) that some busy time rules out."""
    busy = BUSY_STATUSES | {"tentative"} if tentative_as_busy else BUSY_STATUSES
    before, after = duration + buffer, buffer
    spans = [(s - before, e + after) for p in participants for s, e, status in p.spans if status in busy]
    spans.extend((floor_seconds(b.start) - before, ceil_seconds(b.end) + after)
                 for p in participants for b in p.busy if counts_as_busy(b.status, tentative_as_busy))
    if not spans:
        return []
    # merge(spans, touching=False), inlined: this runs over every busy item of every participant.
    # Each interval is non-empty (duration > 0), and each person's items come sorted, so the sort
    # mostly joins sorted runs.
    spans.sort()
    merged: Intervals = []
    start, end = spans[0]
    for s, e in spans:
        if s < end:
            if e > end:
                end = e
        else:
            merged.append((start, end))
            start, end = s, e
    merged.append((start, end))
    return merged


# A view's digits as bits: 0 free, 1 tentative, 2 busy, 3 oof, 4 working elsewhere (free); a digit
# Graph does not document counts as busy, as the schedule reader's own reading of views does.
_CELL_BITS = {True: str.maketrans("0123456789", "0111011111"), False: str.maketrans("0123456789", "0011011111")}


class BusyCells:
    """Everyone's views as one integer a bit per cell (bit i: cell i from `origin`), so a start is
    tested with a shift and a mask. A cell no view covers counts as busy."""

    def __init__(self, participants: Sequence[Participant], duration: int, buffer: int,
                 tentative_as_busy: bool) -> None:
        self.cell = participants[0].cell
        self.origin = min(origin for p in participants for origin, _ in p.cells)
        self.buffer = buffer
        self.width = (duration + 2 * buffer) // self.cell
        self.window = (1 << self.width) - 1
        table = _CELL_BITS[tentative_as_busy]
        busy, covered = 0, -1
        for participant in participants:
            mine = 0
            for origin, digits in participant.cells:
                offset = (origin - self.origin) // self.cell
                if digits:
                    busy |= int(digits.translate(table)[::-1], 2) << offset
                mine |= ((1 << len(digits)) - 1) << offset
            covered &= mine
        self.busy, self.covered = busy, covered

    @staticmethod
    def fit(participants: Sequence[Participant], candidates: Sequence[int], duration: int, buffer: int) -> bool:
        """True when the cells answer exactly: one cell size, and every boundary on a cell."""
        cell = participants[0].cell
        return (cell > 0 and all(p.cell == cell for p in participants) and duration % cell == 0
                and buffer % cell == 0 and all(origin % cell == 0 for p in participants for origin, _ in p.cells)
                and all(at % cell == 0 for at in candidates))

    def blocks(self, at: int) -> bool:
        """True when `[at - buffer, at + duration + buffer)` touches a busy or uncovered cell."""
        first = (at - self.buffer - self.origin) // self.cell
        if first < 0:
            return True
        return bool((self.busy >> first) & self.window) or (self.covered >> first) & self.window != self.window


def working_periods(hours: WorkingHours, start: datetime, end: datetime) -> Intervals:
    """The person's working periods (seconds) that may touch `[start, end)`, back-to-back ones merged."""
    periods = []
    first = start.astimezone(hours.zone).date() - timedelta(days=1)
    last = end.astimezone(hours.zone).date() + timedelta(days=1)
    day = first
    while day <= last:
        if WEEKDAYS[day.weekday()] in hours.days:
            period_start = _local(day, hours.start, hours.zone)
            end_day = day if hours.end > hours.start else day + timedelta(days=1)
            period_end = _local(end_day, hours.end, hours.zone)
            periods.append((floor_seconds(period_start), floor_seconds(period_end)))
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


def allowed_starts(participants: Sequence[Participant], query: SlotQuery) -> Intervals | None:
    """Closed intervals `[s, e]` of starts (seconds) inside everyone's working hours; None when
    nobody has any. Each distinct working-hours pattern is computed once."""
    duration = int(query.duration // SECOND)
    allowed: Intervals | None = None
    seen: set[WorkingHours] = set()
    for participant in participants:
        hours = participant.working_hours
        if hours is None or hours in seen:
            continue  # the same hours again intersect to the same starts
        seen.add(hours)
        periods = working_periods(hours, query.start, query.end)
        starts = [(s, e - duration) for s, e in periods if e - duration >= s]
        allowed = starts if allowed is None else intersect(allowed, starts)
    return allowed


def grid(query: SlotQuery) -> list[int]:
    """Candidate starts (seconds), sorted: wall-clock multiples of the step in the query's zone
    that lie in `[start, end - duration]` and not before now."""
    zone, step = query.zone, query.step_minutes
    earliest = ceil_seconds(query.start if query.now is None else max(query.start, query.now))
    latest = floor_seconds(query.end - query.duration)
    out: list[int] = []
    day = query.start.astimezone(zone).date()
    last_day = query.end.astimezone(zone).date()
    offsets = range(0, 24 * 3600, step * 60)
    while day <= last_day:
        midnight = datetime.combine(day, time())
        next_midnight = midnight + timedelta(days=1)
        first = midnight.replace(tzinfo=zone).astimezone(UTC)
        after = next_midnight.replace(tzinfo=zone).astimezone(UTC)
        if first.astimezone(zone).replace(tzinfo=None) == midnight and after - first == timedelta(days=1) \
                and zone.utcoffset(midnight) == zone.utcoffset(next_midnight - timedelta(minutes=1)):
            # No clock change today: the grid is plain arithmetic from local midnight.
            base = floor_seconds(first)
            low, high = max(earliest - base, 0), latest - base
            out.extend(base + o for o in offsets if low <= o <= high)
        else:
            for seconds in offsets:
                naive = midnight + timedelta(seconds=seconds)
                for fold in (0, 1):
                    instant = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)
                    if instant.astimezone(zone).replace(tzinfo=None) != naive:
                        break  # does not exist (spring forward)
                    if fold == 1 and instant == naive.replace(tzinfo=zone, fold=0).astimezone(UTC):
                        break  # not a repeated time: fold 1 is the same instant
                    at = floor_seconds(instant)
                    if earliest <= at <= latest:
                        out.append(at)
        day += timedelta(days=1)
    out.sort()
    return out


def find_slots(participants: Sequence[Participant], query: SlotQuery, *,
               unavailable: bool = False) -> SlotResult:
    """Common free slots of `participants` (those Graph could answer for); `unavailable` says
    that someone was left out, for `emptyReason`."""
    duration, buffer = int(query.duration // SECOND), int(query.buffer // SECOND)
    candidates = grid(query)
    viewed = [p for p in participants if p.cells]
    cells = None
    if viewed and BusyCells.fit(viewed, candidates, duration, buffer):
        cells = BusyCells(viewed, duration, buffer, query.tentative_as_busy)
        participants_by_time = [p for p in participants if not p.cells]
    else:
        participants_by_time = list(participants)
    forbidden = forbidden_starts(participants_by_time, duration, buffer, query.tentative_as_busy)
    allowed = allowed_starts(participants, query) if query.respect_working_hours else None

    starts: list[int] = []
    in_working_hours = 0
    f, a = 0, 0  # the first forbidden interval not ended before the candidate; the same for allowed
    for at in candidates:
        if allowed is not None:
            while a < len(allowed) and allowed[a][1] < at:
                a += 1
            if a == len(allowed) or allowed[a][0] > at:
                continue  # outside the closed [s, e]
        in_working_hours += 1
        while f < len(forbidden) and forbidden[f][1] <= at:
            f += 1
        if f < len(forbidden) and forbidden[f][0] < at:
            continue  # inside the open (s, e)
        if cells is not None and cells.blocks(at):
            continue
        starts.append(at)
        if len(starts) >= query.max_slots:
            break
    zone = query.zone
    result = SlotResult(slots=[(datetime.fromtimestamp(at, zone), datetime.fromtimestamp(at + duration, zone))
                               for at in starts])
    if not starts:
        if unavailable:
            result.empty_reason = "participant_unavailable"
        elif in_working_hours == 0 and allowed is not None:
            result.empty_reason = "outside_working_hours"
        else:
            result.empty_reason = "no_common_time"
    return result
