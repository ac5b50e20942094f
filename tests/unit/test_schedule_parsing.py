"""Reading Graph's getSchedule answers, and planning the parts of a big question (no server)."""

import json
from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from availability.schedule import (
    Part,
    Schedule,
    ScheduleReader,
    _decode,
    busy_from_view,
    plan,
    reason_of,
    view_minutes,
    working_hours,
)
from shared.graph import GraphError
from tests.support.days import DAY

START = datetime.combine(DAY, time(14), UTC)


def test_availability_view_becomes_busy_intervals_when_items_are_absent():
    busy = busy_from_view("0123400", START, 15)
    assert [(b.start.strftime("%H:%M"), b.end.strftime("%H:%M"), b.status) for b in busy] == [
        ("14:15", "14:30", "tentative"), ("14:30", "14:45", "busy"), ("14:45", "15:00", "oof")]


def test_working_hours_with_a_windows_zone_name():
    hours = working_hours({"daysOfWeek": ["Monday", "friday"], "startTime": "08:30:00.0000000",
                           "endTime": "17:00:00.0000000", "timeZone": {"name": "Pacific Standard Time"}})
    assert hours.days == {"monday", "friday"}
    assert (hours.start, hours.end) == (time(8, 30), time(17, 0))
    assert hours.zone == ZoneInfo("America/Los_Angeles")


def test_working_hours_with_an_iana_name_a_custom_zone_or_nothing():
    assert working_hours({"daysOfWeek": ["monday"], "startTime": "09:00:00", "endTime": "17:00:00",
                          "timeZone": {"name": "Europe/Paris"}}).zone == ZoneInfo("Europe/Paris")
    custom = working_hours({"daysOfWeek": ["monday"], "startTime": "09:00:00", "endTime": "17:00:00",
                            "timeZone": {"@odata.type": "#microsoft.graph.customTimeZone", "bias": 300,
                                         "name": "Customized Time Zone"}})
    assert custom.zone == timezone(-timedelta(hours=5))
    assert working_hours(None) is None
    assert working_hours({"daysOfWeek": [], "startTime": "09:00:00", "endTime": "17:00:00",
                          "timeZone": {"name": "UTC"}}) is None
    assert working_hours({"daysOfWeek": ["monday"], "startTime": "9am", "endTime": "17:00:00",
                          "timeZone": {"name": "UTC"}}) is None


def test_per_schedule_errors_become_reasons():
    assert reason_of({"message": "Unable to resolve e-mail address x@ext.com to an Active Directory object.",
                      "responseCode": "5009"}) == "not_found"
    assert reason_of({"message": "Access to OData is disabled.", "responseCode": "ErrorAccessDenied"}) == \
        "outside_security_group"
    assert reason_of({"message": "Something broke", "responseCode": "500"}) == "upstream_error"


def test_plan_splits_by_20_people_and_61_days_and_rotates_paths_every_4_parts():
    people = [f"p{i}@x.example" for i in range(45)]
    parts = plan(people, START, START + timedelta(days=90))
    assert len(parts) == 3 * 2
    assert all(len(p.schedules) <= 20 and p.end - p.start <= timedelta(days=61) for p in parts)
    assert {s for p in parts for s in p.schedules} == set(people)
    paths = [p.path_mailbox for p in parts]
    assert paths == ["p0@x.example"] * 4 + ["p1@x.example"] * 2
    assert all(paths.count(path) <= 4 for path in paths)
    assert plan(people[:3], START, START + timedelta(hours=1)) == [
        Part("p0@x.example", tuple(people[:3]), START, START + timedelta(hours=1))]


def answer_of(*infos: dict) -> bytes:
    return json.dumps({"@odata.context": "https://graph/$metadata", "value": list(infos)}).encode()


def item(status: str, start: str, end: str, subject: str = "x") -> dict:
    return {"status": status, "isPrivate": False, "subject": subject, "location": "",
            "start": {"dateTime": f"{DAY.isoformat()}T{start}:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": f"{DAY.isoformat()}T{end}:00.0000000", "timeZone": "UTC"}}


def read(raw: bytes, *names: str) -> dict[str, Schedule]:
    """What the reader makes of one part's answer `raw` for `names`: 14:00 plus four quarter hours."""
    part = Part("a@x.example", names, START, START + timedelta(hours=1))
    schedules = {name: Schedule(name) for name in names}
    ScheduleReader(graph=None)._merge(schedules, part, _decode(raw), 15)
    return schedules


def test_the_view_answers_alone_when_the_items_say_nothing_it_cannot():
    [ann] = read(answer_of({"scheduleId": "a@x.example", "availabilityView": "0210", "scheduleItems": [
        item("Busy", "14:15", "14:30"), item("tentative", "14:30", "14:45")]}), "a@x.example").values()
    assert ann.cells() == ((int(START.timestamp()), "0210"),)
    assert (ann.participant().cells, ann.participant().cell) == (ann.cells(), 15 * 60)
    # The items are still there for whoever needs times (a booking's re-check).
    assert [(b.start.strftime("%H:%M"), b.status) for b in ann.busy] == [("14:15", "busy"), ("14:30", "tentative")]


def test_items_are_read_when_the_view_cannot_say_what_they_say():
    names = ("unknown@x.example", "short@x.example", "letters@x.example", "none@x.example")
    schedules = read(answer_of(
        {"scheduleId": names[0], "availabilityView": "0000", "scheduleItems": [item("Unknown", "14:00", "14:15")]},
        {"scheduleId": names[1], "availabilityView": "000", "scheduleItems": []},
        {"scheduleId": names[2], "availabilityView": "00x0", "scheduleItems": []},
        {"scheduleId": names[3], "scheduleItems": []}), *names)
    assert all(schedules[name].cells() == () for name in names)
    assert schedules["unknown@x.example"].spans[0][2] == "unknown"
    # "unknown" spelt with a JSON escape, as Graph could send it: json.dumps would escape the
    # backslash itself, so the escape is written into the raw text.
    raw = answer_of({"scheduleId": "escaped@x.example", "availabilityView": "0000",
                     "scheduleItems": [item("ESCAPED", "14:00", "14:15")]}).replace(b"ESCAPED", b"\\u0075nknown")
    [escaped] = read(raw, "escaped@x.example").values()
    assert escaped.cells() == ()
    assert escaped.spans[0][2] == "unknown"


def test_a_null_item_list_leaves_the_view_and_a_wrong_shape_is_graphs_fault():
    [ann] = read(answer_of({"scheduleId": "a@x.example", "availabilityView": "0020", "scheduleItems": None}),
                 "a@x.example").values()
    assert ann.cells() == ((int(START.timestamp()), "0020"),)
    assert [(b.start.strftime("%H:%M"), b.status) for b in ann.busy] == [("14:30", "busy")]
    with pytest.raises(GraphError) as raised:
        _decode(answer_of({"scheduleId": "a@x.example", "availabilityView": 20}))
    assert (raised.value.status, raised.value.code) == (502, "invalidAnswer")


@pytest.mark.parametrize(("step", "duration", "buffer", "cell"), [
    (15, 30, 0, 15), (30, 60, 0, 15), (10, 20, 0, 5), (15, 30, 10, 5), (60, 60, 45, 15), (7, 30, 0, 15),
    (5, 5, 0, 5), (45, 90, 30, 15)])
def test_the_view_cell_is_the_largest_every_slot_boundary_falls_on(step, duration, buffer, cell):
    assert view_minutes(step, duration, buffer) == cell
