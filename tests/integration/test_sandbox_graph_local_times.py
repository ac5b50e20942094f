"""Local times in events' ``start``/``end`` (dateTimeTimeZone,
https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone): a Windows or IANA zone
per value, start and end in different zones, and the hour a fall-back repeats.

SANDBOX.md: a local time that occurs twice is read as its FIRST occurrence (Exchange documents no
reading), on create and on update; a client that means the second one sends UTC. The fall-back
used is New York's next real one (tools.dates.next_transition), so the test never expires.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sandbox.testing import SandboxProcess
from tests.support.days import day
from tests.support.sandbox_graph import ANN, FAY, FAY_UPN, Graph, error, graph_seed, ok, window
from tools.dates import next_transition

pytestmark = pytest.mark.integration

NEW_YORK = ZoneInfo("America/New_York")
FALL = next_transition("America/New_York", fall_back=True)
LOCAL_DAY = FALL.local_day.isoformat()
# 01:30 happens twice that night: first in EDT (-04:00), then again in EST (-05:00).
FIRST = datetime.combine(FALL.local_day, time(1, 30), NEW_YORK).astimezone(UTC)
SECOND = datetime.combine(FALL.local_day, time(1, 30), NEW_YORK).replace(fold=1).astimezone(UTC)
ANN_EVENTS = f"/users/{ANN['mail']}/events"
EASTERN = {"Prefer": 'outlook.timezone="Eastern Standard Time"'}


def utc_text(instant: datetime) -> str:
    return f"{instant.astimezone(UTC):%Y-%m-%dT%H:%M:%S}.0000000"


def times(start: str, start_zone: str, end: str, end_zone: str | None = None) -> dict[str, Any]:
    return {"start": {"dateTime": start, "timeZone": start_zone},
            "end": {"dateTime": end, "timeZone": end_zone or start_zone}}


@pytest.fixture(autouse=True)
def seeded(sandbox: SandboxProcess, graph: Graph) -> None:
    sandbox.reset(graph_seed())


def busy_view(graph: Graph, mailbox: str) -> str:
    """Ann's (or anyone's) 15-minute view from an hour before the change to an hour after (UTC)."""
    [info] = ok(graph.post(f"/users/{ANN['mail']}/calendar/getSchedule", json={
        "schedules": [mailbox], "availabilityViewInterval": 15,
        **window(utc_text(FALL.at - timedelta(hours=1)), utc_text(FALL.at + timedelta(hours=1)))}), 200,
        "graph.scheduleInformation", collection=True)["value"]
    return str(info["availabilityView"])


def test_the_transition_is_what_the_tests_assume() -> None:
    assert FALL.is_fall_back and FALL.before == timedelta(hours=-4) and FALL.after == timedelta(hours=-5)
    assert (FALL.at - timedelta(minutes=30), FALL.at + timedelta(minutes=30)) == (FIRST, SECOND)


@pytest.mark.parametrize("zone", ["Eastern Standard Time", "America/New_York"])
def test_a_repeated_local_time_is_its_first_occurrence(graph: Graph, zone: str) -> None:
    body = {"subject": "Ambiguous", **times(f"{LOCAL_DAY}T01:30:00", zone, f"{LOCAL_DAY}T01:45:00")}
    event = ok(graph.post(ANN_EVENTS, json=body), 201, "graph.event")
    assert event["start"] == {"dateTime": utc_text(FIRST), "timeZone": "UTC"}
    assert event["end"] == {"dateTime": utc_text(FIRST + timedelta(minutes=15)), "timeZone": "UTC"}
    assert (event["originalStartTimeZone"], event["originalEndTimeZone"]) == (zone, zone)
    shown = ok(graph.get(f"{ANN_EVENTS}/{event['id']}", headers=EASTERN), 200, "graph.event")
    assert shown["start"] == {"dateTime": f"{LOCAL_DAY}T01:30:00.0000000", "timeZone": "Eastern Standard Time"}
    # Busy 05:30-05:45 UTC, not an hour later.
    assert busy_view(graph, ANN["mail"]) == "00200000"


def test_the_second_occurrence_sent_as_utc_lands_at_its_exact_instant(graph: Graph) -> None:
    body = {"subject": "Exact", **times(utc_text(SECOND), "UTC", utc_text(SECOND + timedelta(minutes=15)))}
    event = ok(graph.post(ANN_EVENTS, json=body), 201, "graph.event")
    assert event["start"] == {"dateTime": utc_text(SECOND), "timeZone": "UTC"}
    # In Eastern time it reads 01:30 too: the same text as the first occurrence, an hour later.
    shown = ok(graph.get(f"{ANN_EVENTS}/{event['id']}", headers=EASTERN), 200, "graph.event")
    assert shown["start"]["dateTime"] == f"{LOCAL_DAY}T01:30:00.0000000"
    assert busy_view(graph, ANN["mail"]) == "00000020"
    # An explicit offset is exact as well.
    offset = ok(graph.post(ANN_EVENTS, json={"subject": "Offset", **times(
        f"{LOCAL_DAY}T01:30:00-05:00", "Eastern Standard Time", f"{LOCAL_DAY}T01:45:00-05:00")}), 201, "graph.event")
    assert offset["start"]["dateTime"] == utc_text(SECOND)


@pytest.mark.parametrize("zone", ["Eastern Standard Time", "America/New_York"])
def test_an_update_reads_a_repeated_time_the_same_way(graph: Graph, zone: str) -> None:
    event = ok(graph.post(ANN_EVENTS, json={"subject": "Move me", **times(
        f"{day(3)}T10:00:00", "UTC", f"{day(3)}T10:30:00")}), 201, "graph.event")
    moved = ok(graph.patch(f"{ANN_EVENTS}/{event['id']}", json=times(
        f"{LOCAL_DAY}T01:30:00", zone, f"{LOCAL_DAY}T01:45:00")), 200, "graph.event")
    assert moved["start"]["dateTime"] == utc_text(FIRST)
    assert moved["end"]["dateTime"] == utc_text(FIRST + timedelta(minutes=15))
    assert busy_view(graph, ANN["mail"]) == "00200000"


def test_a_seeded_event_keeps_its_instant_in_the_repeated_hour(sandbox: SandboxProcess, graph: Graph) -> None:
    seed = graph_seed()
    [fay] = [u for u in seed["tenants"][0]["users"] if u["id"] == FAY["id"]]
    fay["events"].append({"subject": "Second 01:30", "start": SECOND.astimezone(NEW_YORK).isoformat(),
                          "end": (SECOND + timedelta(minutes=15)).astimezone(NEW_YORK).isoformat(),
                          "showAs": "busy"})
    assert fay["events"][-1]["start"].endswith("01:30:00-05:00")
    sandbox.reset(seed)
    listed = ok(graph.get(f"/users/{FAY_UPN}/events", params={"$filter": "subject eq 'Second 01:30'"}), 200,
                "graph.event", collection=True)["value"]
    assert [e["start"]["dateTime"] for e in listed] == [utc_text(SECOND)]
    assert busy_view(graph, FAY["mail"]) == "00000020"


def test_start_and_end_may_name_different_zones(graph: Graph) -> None:
    # 14:00 UTC to 10:00 New York (15:00 UTC; DAY+3 is in winter, tests/support/days.py).
    event = ok(graph.post(ANN_EVENTS, json={"subject": "Two zones", **times(
        f"{day(3)}T14:00:00", "UTC", f"{day(3)}T10:00:00", "Eastern Standard Time")}), 201, "graph.event")
    assert (event["start"]["dateTime"], event["end"]["dateTime"]) == (f"{day(3)}T14:00:00.0000000",
                                                                       f"{day(3)}T15:00:00.0000000")
    assert (event["originalStartTimeZone"], event["originalEndTimeZone"]) == ("UTC", "Eastern Standard Time")
    pacific = ok(graph.get(f"{ANN_EVENTS}/{event['id']}", headers={"Prefer": 'outlook.timezone="Pacific Standard '
                                                                              'Time"'}), 200, "graph.event")
    assert (pacific["start"]["dateTime"], pacific["end"]["dateTime"]) == (f"{day(3)}T06:00:00.0000000",
                                                                           f"{day(3)}T07:00:00.0000000")
    stored = ok(graph.session.get(f"{graph.base_url}/_sandbox/users/{ANN['mail']}/events", timeout=30), 200)
    [mine] = [e for e in stored["value"] if e["id"] == event["id"]]
    assert mine["start"] == {"dateTime": f"{day(3)}T14:00:00.0000000", "timeZone": "UTC"}
    assert mine["end"] == {"dateTime": f"{day(3)}T10:00:00.0000000", "timeZone": "Eastern Standard Time"}
    # The end's local text is earlier than the start's, but its instant is later: fine. Moving only
    # the end, in a third zone, keeps the start.
    moved = ok(graph.patch(f"{ANN_EVENTS}/{event['id']}", json={"end": {
        "dateTime": f"{day(3)}T07:30:00", "timeZone": "America/Los_Angeles"}}), 200, "graph.event")
    assert (moved["start"]["dateTime"], moved["end"]["dateTime"]) == (f"{day(3)}T14:00:00.0000000",
                                                                       f"{day(3)}T15:30:00.0000000")
    assert (moved["originalStartTimeZone"], moved["originalEndTimeZone"]) == ("UTC", "America/Los_Angeles")
    # 09:00 New York (14:00 UTC) to 13:30 UTC: the end's text is later, its instant earlier.
    error(graph.post(ANN_EVENTS, json={"subject": "Backwards", **times(
        f"{day(3)}T09:00:00", "America/New_York", f"{day(3)}T13:30:00", "UTC")}), 400,
        "ErrorCalendarEndDateIsEarlierThanStartDate")
