"""The slot engine against a brute-force oracle that looks at every minute.

The oracle shares no code with the engine: it lays out the minutes around the window, marks
each minute busy (widened by the buffer) or working (per person, from the wall clock), and
tests every minute whose local wall-clock time is on the grid. Random busy sets, time zones with
odd offsets, buffers, steps, and windows around DST changes; the answers must be the same. The
same holds when busy time comes as Graph's availabilityView (a digit per cell) instead of times.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from itertools import accumulate
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from availability.schedule import view_minutes
from availability.slots import Busy, Participant, SlotQuery, WorkingHours, ceil_seconds, find_slots, floor_seconds
from tests.support.days import DAY
from tools.dates import next_transition

ZONES = ["UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham",
         "America/Sao_Paulo", "Asia/Tehran", "Europe/Berlin", "America/St_Johns"]
# The zones of ZONES that still change their clocks (São Paulo and Tehran no longer do): US and
# Canada, the EU and UK, Lord Howe's half-hour change and Chatham's at :45, both hemispheres.
DST_ZONES = ["America/New_York", "America/St_Johns", "Europe/London", "Europe/Berlin", "Australia/Lord_Howe",
             "Pacific/Chatham"]
# The next real DST changes of those zones after today, each way (windows are drawn within 36
# hours of them), and an ordinary day.
BASE_TIMES = sorted({next_transition(zone, fall_back=fall_back).at for zone in DST_ZONES
                     for fall_back in (True, False)} | {datetime.combine(DAY, time(0), UTC)})


def on_day(offset_days: int, hour: int, minute: int = 0) -> datetime:
    """`hour`:`minute` UTC on the tests' day (tests/support/days.py) + `offset_days`."""
    return datetime.combine(DAY + timedelta(days=offset_days), time(hour, minute), UTC)


STATUSES = ["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


@st.composite
def scenarios(draw):
    base = draw(st.sampled_from(BASE_TIMES)) + timedelta(minutes=draw(st.integers(-36 * 60, 36 * 60)))
    length = timedelta(minutes=draw(st.integers(30, 60 * 60)))
    start, end = base, base + length
    duration = timedelta(minutes=draw(st.integers(5, 240)))
    buffer = timedelta(minutes=draw(st.sampled_from([0, 0, 5, 10, 15, 30, 60])))
    people = []
    for index in range(draw(st.integers(1, 3))):
        busy = []
        for _ in range(draw(st.integers(0, 8))):
            offset = draw(st.integers(-300, int(length.total_seconds() // 60) + 300))
            busy.append(Busy(start + timedelta(minutes=offset),
                             start + timedelta(minutes=offset + draw(st.integers(1, 300))),
                             draw(st.sampled_from(STATUSES))))
        hours = None
        if draw(st.booleans()):
            begin = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 45])))
            finish = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 45])))
            days = frozenset(draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=7, unique=True)))
            hours = WorkingHours(days, begin, finish, ZoneInfo(draw(st.sampled_from(ZONES))))
        people.append(Participant(f"p{index}@x.example", busy, hours))
    now = None
    if draw(st.booleans()):
        now = start + timedelta(minutes=draw(st.integers(-60, int(length.total_seconds() // 60))))
    query = SlotQuery(start=start, end=end, duration=duration,
                      step_minutes=draw(st.sampled_from([5, 7, 15, 30, 45, 60, 90, 100, 1440])),
                      buffer=buffer, max_slots=draw(st.sampled_from([1, 3, 500])),
                      zone=ZoneInfo(draw(st.sampled_from(ZONES))), respect_working_hours=draw(st.booleans()),
                      tentative_as_busy=draw(st.booleans()), now=now)
    return people, query, draw(st.booleans())


def oracle(people, query: SlotQuery, unavailable: bool):
    origin = query.start - timedelta(days=3)
    total = int((query.end - origin).total_seconds() // 60) + 3 * 24 * 60
    minute = [origin + timedelta(minutes=i) for i in range(total)]

    def index(t: datetime) -> int:
        return int((t - origin).total_seconds() // 60)

    def prefix(flags):
        return [0, *accumulate(flags)]

    busy = [0] * total
    for person in people:
        for b in person.busy:
            status = b.status.lower()
            if status in ("busy", "oof", "unknown") or (status == "tentative" and query.tentative_as_busy):
                for i in range(max(0, index(b.start)), min(total, index(b.end))):
                    busy[i] = 1
    busy_sum = prefix(busy)

    working_sums = []
    if query.respect_working_hours:
        for person in people:
            hours = person.working_hours
            if hours is None:
                continue
            walls = [m.astimezone(hours.zone).replace(tzinfo=None) for m in minute]

            def first_at_or_after(naive: datetime, walls=walls) -> int:
                # The first minute whose wall-clock time is at or after `naive`.
                i = max(0, index(naive.replace(tzinfo=UTC)) - 15 * 60)
                while walls[i] < naive:
                    i += 1
                return i

            work = [0] * total
            day = (query.start - timedelta(days=2)).astimezone(hours.zone).date()
            while day <= (query.end + timedelta(days=1)).astimezone(hours.zone).date():
                if DAYS[day.weekday()] in hours.days:
                    a = first_at_or_after(datetime.combine(day, hours.start))
                    end_day = day if hours.end > hours.start else day + timedelta(days=1)
                    b = first_at_or_after(datetime.combine(end_day, hours.end))
                    for i in range(a, b):
                        work[i] = 1
                day += timedelta(days=1)
            working_sums.append(prefix(work))

    d = int(query.duration.total_seconds() // 60)
    buf = int(query.buffer.total_seconds() // 60)
    starts, in_hours = [], 0
    earliest = query.start if query.now is None else max(query.start, query.now)
    for i in range(index(query.start), index(query.end) - d + 1):
        t = minute[i]
        local = t.astimezone(query.zone)
        if (local.hour * 60 + local.minute) % query.step_minutes or t < earliest:
            continue
        if any(s[i + d] - s[i] != d for s in working_sums):
            continue
        in_hours += 1
        if busy_sum[min(total, i + d + buf)] - busy_sum[max(0, i - buf)] == 0:
            starts.append(t)
    starts = sorted(starts)[: query.max_slots]
    reason = None
    if not starts:
        reason = ("participant_unavailable" if unavailable else
                  "outside_working_hours" if in_hours == 0 and working_sums else "no_common_time")
    return starts, reason


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_engine_matches_the_minute_by_minute_oracle(scenario):
    people, query, unavailable = scenario
    result = find_slots(people, query, unavailable=unavailable)
    expected, reason = oracle(people, query, unavailable)
    # PEP 495: a time in a repeated hour never equals one of another zone; compare in UTC.
    assert [s.astimezone(UTC) for s, _ in result.slots] == expected
    # Aware datetimes of one zone subtract as wall-clock times; compare instants in UTC.
    assert all(e.astimezone(UTC) - s.astimezone(UTC) == query.duration for s, e in result.slots)
    assert all(s.tzinfo == query.zone == e.tzinfo for s, e in result.slots)
    assert result.empty_reason == reason


def test_fall_back_gives_both_instants_and_spring_forward_skips():
    zone = ZoneInfo("America/New_York")
    # New York's next real fall-back (02:00 EDT becomes 01:00 EST) and spring-forward (02:00 EST
    # becomes 03:00 EDT) after today.
    back, forward = next_transition(zone.key, fall_back=True), next_transition(zone.key, fall_back=False)
    assert (back.before, back.after) == (timedelta(hours=-4), timedelta(hours=-5))
    assert (forward.before, forward.after) == (timedelta(hours=-5), timedelta(hours=-4))
    assert back.at.astimezone(zone).strftime("%H:%M%z") == "01:00-0500"
    assert forward.at.astimezone(zone).strftime("%H:%M%z") == "03:00-0400"
    fall = SlotQuery(start=back.at - timedelta(hours=1), end=back.at + timedelta(hours=1, minutes=30),
                     duration=timedelta(minutes=30), step_minutes=30, buffer=timedelta(0), max_slots=50, zone=zone,
                     respect_working_hours=False)
    starts = [s.strftime("%H:%M%z") for s, _ in find_slots([Participant("a@x.example")], fall).slots]
    assert starts == ["01:00-0400", "01:30-0400", "01:00-0500", "01:30-0500", "02:00-0500"]
    spring = SlotQuery(start=forward.at - timedelta(hours=1), end=forward.at + timedelta(hours=1),
                       duration=timedelta(minutes=30), step_minutes=30, buffer=timedelta(0), max_slots=50, zone=zone,
                       respect_working_hours=False)
    starts = [s.strftime("%H:%M%z") for s, _ in find_slots([Participant("a@x.example")], spring).slots]
    assert starts == ["01:00-0500", "01:30-0500", "03:00-0400", "03:30-0400"]


def test_buffer_counts_busy_time_just_outside_the_window_and_reaches_outside_working_hours():
    zone = ZoneInfo("Europe/London")  # at UTC+0 on DAY, which is in northern winter
    hours = WorkingHours(frozenset(DAYS), time(9), time(17), zone)
    busy = [Busy(on_day(0, 8, 45), on_day(0, 9, 0))]
    query = SlotQuery(start=on_day(0, 9, 0), end=on_day(0, 10, 0),
                      duration=timedelta(minutes=30), step_minutes=15, buffer=timedelta(minutes=15),
                      max_slots=50, zone=zone)
    starts = [s.strftime("%H:%M") for s, _ in find_slots([Participant("a@x.example", busy, hours)], query).slots]
    assert starts == ["09:15", "09:30"]


def test_night_shift_crosses_midnight_and_back_to_back_periods_merge():
    zone = ZoneInfo("UTC")
    night = WorkingHours(frozenset(DAYS), time(22), time(6), zone)
    query = SlotQuery(start=on_day(0, 21, 0), end=on_day(1, 7, 0),
                      duration=timedelta(hours=8), step_minutes=60, buffer=timedelta(0), max_slots=50, zone=zone)
    starts = [s.strftime("%d %H:%M") for s, _ in find_slots([Participant("a@x.example", (), night)], query).slots]
    assert starts == [f"{DAY:%d} 22:00"]
    always = WorkingHours(frozenset(DAYS), time(0), time(0), zone)  # midnight to midnight, every day: merged
    query = SlotQuery(start=on_day(0, 20, 0), end=on_day(1, 6, 0),
                      duration=timedelta(hours=8), step_minutes=60, buffer=timedelta(0), max_slots=50, zone=zone)
    assert len(find_slots([Participant("a@x.example", (), always)], query).slots) == 3


def test_empty_reasons_in_order():
    zone = ZoneInfo("UTC")
    weekend = WorkingHours(frozenset({"saturday"}), time(9), time(17), zone)
    query = SlotQuery(start=on_day(0, 9, 0), end=on_day(0, 17, 0),
                      duration=timedelta(minutes=30), step_minutes=30, buffer=timedelta(0), max_slots=50, zone=zone)
    person = Participant("a@x.example", [Busy(query.start, query.end)], weekend)
    assert find_slots([person], query, unavailable=True).empty_reason == "participant_unavailable"
    assert find_slots([person], query).empty_reason == "outside_working_hours"
    busy_all_day = Participant("a@x.example", [Busy(query.start, query.end)])
    assert find_slots([busy_all_day], query).empty_reason == "no_common_time"
    free = Participant("a@x.example", [Busy(query.start, query.end, "free")])
    assert find_slots([free], query).empty_reason is None


# --- busy time as Graph's availabilityView --------------------------------------------------------

# The digit Graph writes for a status (calendar-getschedule: 0 free or working elsewhere, 1
# tentative, 2 busy, 3 out of office); `unknown` has none, so a person with such an item keeps
# exact times (availability.schedule.Schedule.cells).
DIGIT = {"free": 0, "workingelsewhere": 0, "tentative": 1, "busy": 2, "oof": 3}


def view_of(busy, origin: int, cells: int, cell: int) -> str:
    """One digit per cell from `origin`: the highest of the items overlapping it, as Graph documents."""
    digits = [0] * cells
    for b in busy:
        start, end = floor_seconds(b.start), ceil_seconds(b.end)
        first, last = max(0, (start - origin) // cell), min(cells, -(-(end - origin) // cell))
        for i in range(first, last):
            digits[i] = max(digits[i], DIGIT[b.status.lower()])
    return "".join(map(str, digits))


class Untouchable(Sequence):
    """Spans that fail the test if the engine reads them."""

    def __getitem__(self, index):
        raise AssertionError("the engine read exact times where the view was enough")

    def __len__(self):
        raise AssertionError("the engine read exact times where the view was enough")


def as_viewed(people, query: SlotQuery, *, keep_times: bool):
    """People as the schedule reader gives them: a view in cells of `view_minutes` over the window
    widened by the buffer to whole cells; exact times only for someone with an `unknown` item, or
    (`keep_times`) beside the view for everyone."""
    cell = view_minutes(query.step_minutes, query.duration // timedelta(minutes=1),
                        query.buffer // timedelta(minutes=1)) * 60
    origin = floor_seconds(query.start - query.buffer) // cell * cell
    cells = -(-(ceil_seconds(query.end + query.buffer) - origin) // cell)
    out = []
    for person in people:
        if any(b.status == "unknown" for b in person.busy):
            out.append(person)
        else:
            out.append(Participant(person.email, person.busy if keep_times else Untouchable(), person.working_hours,
                                   cells=((origin, view_of(person.busy, origin, cells, cell)),), cell=cell))
    return out


@st.composite
def aligned_scenarios(draw):
    """Questions whose steps, durations and buffers share a cell of 5 minutes or more."""
    people, query, unavailable = draw(scenarios())
    step = draw(st.sampled_from([5, 10, 15, 30, 45, 60, 90, 1440]))
    duration = timedelta(minutes=5 * draw(st.integers(1, 48)))
    return people, replace(query, step_minutes=step, duration=duration), unavailable


def assert_viewed_as_oracle(scenario, *, keep_times: bool) -> None:
    people, query, unavailable = scenario
    result = find_slots(as_viewed(people, query, keep_times=keep_times), query, unavailable=unavailable)
    expected, reason = oracle(people, query, unavailable)
    assert [s.astimezone(UTC) for s, _ in result.slots] == expected
    assert result.empty_reason == reason


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(aligned_scenarios())
def test_views_alone_answer_as_the_oracle_when_the_grid_falls_on_their_cells(scenario):
    assert_viewed_as_oracle(scenario, keep_times=False)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_views_that_do_not_fit_the_grid_leave_the_answer_to_exact_times(scenario):
    # Steps of 7 or 100 minutes, durations of any minute: the cells (15 minutes when no 5-minute
    # multiple is shared) cannot answer, and the engine must not round them into an answer.
    assert_viewed_as_oracle(scenario, keep_times=True)


def test_a_cell_no_view_covers_counts_as_busy():
    zone = ZoneInfo("UTC")
    query = SlotQuery(start=on_day(0, 9, 0), end=on_day(0, 11, 0), duration=timedelta(minutes=30), step_minutes=30,
                      buffer=timedelta(0), max_slots=50, zone=zone, respect_working_hours=False)
    origin = floor_seconds(query.start)
    short = Participant("a@x.example", Untouchable(), cells=((origin, "0000"),), cell=900)  # 09:00-10:00 only
    starts = [s.strftime("%H:%M") for s, _ in find_slots([short], query).slots]
    assert starts == ["09:00", "09:30"]
