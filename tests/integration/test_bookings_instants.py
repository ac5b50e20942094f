"""Bookings land at exactly the instants asked, also in the hour a fall-back change repeats and
across the change (API.md, Conventions: "A booking's instants are what the caller sent").

The day is New York's next real fall-back (tools/dates.py): at `T.at` (06:00 UTC) clocks go from
02:00 EDT (-04:00) back to 01:00 EST (-05:00), so every local time from 01:00 to 01:59 exists
twice on `T.local_day`. Graph's dateTimeTimeZone cannot say which one is meant (the sandbox, like
an unwary reader, takes the first), so the service must send those times in UTC, and every other
time in the booking's own zone ("Eastern Standard Time", the Windows name Outlook shows)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from tzlocal.windows_tz import win_tz

from tests.conftest import SANDBOX_SEED
from tests.support.consent_pages import admin_consent
from tools.dates import next_transition

TENANT = "c1c2c3c4-0000-4000-8000-0000000000c1"
CLIENT_ID = json.loads(SANDBOX_SEED.read_text())["apps"][0]["clientId"]
NEW_YORK = "America/New_York"
T = next_transition(NEW_YORK, fall_back=True)
LOCAL_DAY = T.local_day.isoformat()
MINUTE = timedelta(minutes=1)


def local(clock: str, offset: str) -> str:
    """RFC 3339 text of `clock` on the change's local day with an explicit offset."""
    return f"{LOCAL_DAY}T{clock}:00{offset}"


# The repeated hour, both times: 01:30 EDT is 30 minutes before the change, 01:30 EST 30 after.
FIRST_0130, SECOND_0130 = local("01:30", "-04:00"), local("01:30", "-05:00")
# The attendee CY is busy for the whole SECOND 01:00-02:00 (EST) hour: [T.at, T.at + 1 h).
CY_BUSY = (local("01:00", "-05:00"), local("02:00", "-05:00"))


def person(uid: int, name: str, events=(), admin=False):
    return {"id": f"c1c2c3c4-0000-4000-8000-{uid:012d}", "mail": f"{name}@instants.example", "displayName": name,
            "timeZone": NEW_YORK, "isAdmin": admin,
            "events": [{"subject": "existing", "start": s, "end": e, "showAs": "busy"} for s, e in events]}


TENANTS = [{"tenantId": TENANT, "domain": "instants.example",
            "users": [person(1, "ada", admin=True), person(2, "bob"), person(3, "cy", events=[CY_BUSY])]}]
ADA, BOB, CY = "ada@instants.example", "bob@instants.example", "cy@instants.example"


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_the_days_times_are_the_ones_this_module_means():
    """The module's arithmetic rests on New York's rule (02:00 EDT -> 01:00 EST at 06:00 UTC)."""
    assert T.is_fall_back and T.before == timedelta(hours=-4) and T.after == timedelta(hours=-5)
    assert instant(FIRST_0130) == T.at - 30 * MINUTE
    assert instant(SECOND_0130) == T.at + 30 * MINUTE
    assert instant(CY_BUSY[0]) == T.at
    # Both readings of 01:30 are real: the wall clock alone names two instants.
    wall = datetime.fromisoformat(f"{LOCAL_DAY}T01:30:00")
    zone = ZoneInfo(NEW_YORK)
    assert wall.replace(tzinfo=zone, fold=0).astimezone(UTC) == instant(FIRST_0130)
    assert wall.replace(tzinfo=zone, fold=1).astimezone(UTC) == instant(SECOND_0130)


@pytest.fixture
def tenants(api, sandbox, short_write_window):
    sandbox.reset({"tenants": TENANTS})
    admin_consent(api, sandbox, TENANT, ADA)
    return api


def book(api, key, **body):
    base = {"organizer": ADA, "attendees": [BOB], "timeZone": NEW_YORK, "subject": "Across the change",
            "checkAvailability": True}
    return api.post(f"/tenants/{TENANT}/bookings", json=base | body, headers={"Idempotency-Key": key})


def booked_events(sandbox, email):
    answer = sandbox.session().get(f"{sandbox.base_url}/_sandbox/users/{email}/events", timeout=10)
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json()["value"] if e["subject"] != "existing"]


def creates(sandbox, since):
    return [e for e in sandbox.requests(since=since) if e["method"] == "POST" and e["path"].endswith("/events")]


def graph_instant(value: dict[str, str]) -> datetime:
    """The instant a stored dateTimeTimeZone names. The sandbox keeps the zone it was given (a
    Windows name, or UTC) and the local time in it with seven fractional digits. A local time
    in a zone is read only where it names a single instant: the service must never have sent
    one that names two (or none)."""
    text, zone_name = value["dateTime"], value["timeZone"]
    assert text[19:] in ("", ".0000000"), text
    wall = datetime.fromisoformat(text[:19])
    if zone_name == "UTC":
        return wall.replace(tzinfo=UTC)
    zone = ZoneInfo(win_tz[zone_name])
    first, second = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    assert first.utcoffset() == second.utcoffset(), f"{value} is ambiguous in {zone_name}"
    assert first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall, f"{value} does not exist"
    return first.astimezone(UTC)


# (start, end) as sent, and the zone each must have been written in: the booking's own where the
# local time names one instant, UTC where it names two.
CASES = {
    # (a) the FIRST 01:30 (EDT) to 01:50 EDT: both ends in the repeated hour.
    "first-occurrence": (FIRST_0130, local("01:50", "-04:00"), "UTC", "UTC"),
    # (b) the SECOND 01:30 (EST), for 20 minutes: both ends in the repeated hour.
    "second-occurrence": (SECOND_0130, local("01:50", "-05:00"), "UTC", "UTC"),
    # (c) 00:30 EDT (before the change, unambiguous) to 01:30 EST (after it, ambiguous): two hours.
    "across-the-change": (local("00:30", "-04:00"), SECOND_0130, "Eastern Standard Time", "UTC"),
    # (d) a plain morning meeting later that day: written in the booking's zone.
    "unambiguous": (local("09:00", "-05:00"), local("09:30", "-05:00"), "Eastern Standard Time",
                    "Eastern Standard Time"),
}


@pytest.mark.parametrize(("start", "end", "start_zone", "end_zone"), list(CASES.values()), ids=list(CASES))
def test_a_booking_lands_at_exactly_the_instants_asked(tenants, sandbox, start, end, start_zone, end_zone):
    since = sandbox.next_request_index()
    answer = book(tenants, "instant-1", start=start, end=end)
    assert answer.status_code == 201, answer.text
    booking = answer.json()
    # The answer gives the instants in the booking's zone with their real offsets: as sent.
    assert (booking["start"], booking["end"]) == (start, end)
    assert len(creates(sandbox, since)) == 1

    organizer, attendee = booked_events(sandbox, ADA), booked_events(sandbox, BOB)
    assert len(organizer) == 1 and len(attendee) == 1
    assert organizer[0]["iCalUId"] == attendee[0]["iCalUId"]
    for copy in (organizer[0], attendee[0]):
        assert graph_instant(copy["start"]) == instant(start), copy["start"]
        assert graph_instant(copy["end"]) == instant(end), copy["end"]
        # What the service sent: the zone of each end, kept as given.
        assert (copy["start"]["timeZone"], copy["end"]["timeZone"]) == (start_zone, end_zone)
        assert (copy["originalStartTimeZone"], copy["originalEndTimeZone"]) == (start_zone, end_zone)

    read = tenants.get(f"/tenants/{TENANT}/bookings/{booking['bookingId']}")
    assert read.status_code == 200, read.text
    assert (instant(read.json()["start"]), instant(read.json()["end"])) == (instant(start), instant(end))
    assert (read.json()["start"], read.json()["end"]) == (start, end)


def test_the_recheck_sees_the_hour_that_was_asked(tenants, sandbox):
    """CY is busy for the second 01:00-02:00 (EST). The first 01:30 (EDT) is free; the second is
    not; a meeting from 01:50 EDT to the change instant (written 01:00 EST) touches the busy hour
    only at its end, which is free (half-open intervals)."""
    first = book(tenants, "first", attendees=[CY], start=FIRST_0130, end=local("01:50", "-04:00"))
    assert first.status_code == 201, first.text
    assert instant(first.json()["start"]) == T.at - 30 * MINUTE

    since = sandbox.next_request_index()
    second = book(tenants, "second", attendees=[CY], start=SECOND_0130, end=local("01:50", "-05:00"))
    assert second.status_code == 409, second.text
    assert second.json()["error"]["code"] == "slot_unavailable"
    assert second.json()["error"]["target"] == "attendees"
    assert creates(sandbox, since) == []

    edge = book(tenants, "edge", attendees=[CY], start=local("01:50", "-04:00"), end=local("01:00", "-05:00"))
    assert edge.status_code == 201, edge.text
    assert (instant(edge.json()["start"]), instant(edge.json()["end"])) == (T.at - 10 * MINUTE, T.at)

    copies = booked_events(sandbox, CY)
    assert sorted((graph_instant(e["start"]), graph_instant(e["end"])) for e in copies) == [
        (T.at - 30 * MINUTE, T.at - 10 * MINUTE), (T.at - 10 * MINUTE, T.at)]
    assert len(booked_events(sandbox, ADA)) == 2
