"""Reading Graph's getSchedule answers, and planning the parts of a big question (no server)."""

from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from availability.schedule import Part, busy_from_view, plan, reason_of, working_hours
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
