"""POST /api/tenants/{id}/availability against the sandbox's Graph, for both integration types."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import SANDBOX_SEED
from tests.support.consent_pages import admin_consent, connect_member
from tests.support.days import at, day

DOMAIN = "a1b2c3d4-0000-4000-8000-0000000000d1"
DELEGATED = "a1b2c3d4-0000-4000-8000-0000000000d2"
POLICY = "a1b2c3d4-0000-4000-8000-0000000000d3"
GROUP = "a1b2c3d4-0000-4000-8000-00000000a0a0"
CLIENT_ID = json.loads(SANDBOX_SEED.read_text())["apps"][0]["clientId"]
WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]


def person(uid: int, mail: str, zone: str, events=(), admin=False):
    return {"id": f"a1b2c3d4-0000-4000-8000-{uid:012d}", "mail": mail, "displayName": mail.split("@")[0],
            "timeZone": zone, "isAdmin": admin,
            "workingHours": {"daysOfWeek": WEEKDAYS, "startTime": "09:00:00", "endTime": "17:00:00"},
            "events": [{"subject": "busy", "start": s, "end": e, "showAs": show} for s, e, show in events]}


ADA = person(1, "ada@tailspin.example", "America/New_York",
             [(at(0, "10:00:00-05:00"), at(0, "11:00:00-05:00"), "busy"),
              (at(0, "11:30:00-05:00"), at(0, "12:00:00-05:00"), "tentative")], admin=True)
GRACE = person(2, "grace@tailspin.example", "Europe/London",
               [(at(0, "14:00:00+00:00"), at(0, "14:30:00+00:00"), "oof")])
# Lin's first meeting has the status `unknown`, for which getSchedule's availabilityView has no
# digit; her second is five minutes long, off the quarter hours.
LIN = person(3, "lin@tailspin.example", "America/New_York",
             [(at(0, "09:00:00-05:00"), at(0, "09:30:00-05:00"), "unknown"),
              (at(0, "10:05:00-05:00"), at(0, "10:10:00-05:00"), "busy")])
# Many people for the split: p27 is busy on a day in the window's second part (past 61 days),
# DAY + 76, a Monday (tests/support/days.py keeps New York at -05:00 that far ahead).
CROWD = [person(100 + i, f"p{i:02d}@tailspin.example", "America/New_York",
                [(at(76, "09:00:00-05:00"), at(76, "17:00:00-05:00"), "busy")] if i == 27 else [])
         for i in range(40)]
TENANTS = [
    {"tenantId": DOMAIN, "domain": "tailspin.example", "users": [ADA, GRACE, LIN, *CROWD]},
    {"tenantId": DELEGATED, "domain": "wingtip.example",
     "users": [person(11, "ada@wingtip.example", "America/New_York",
                      [(at(0, "10:00:00-05:00"), at(0, "11:00:00-05:00"), "busy")], admin=True),
               person(12, "grace@wingtip.example", "Europe/London")]},
    {"tenantId": POLICY, "domain": "fourth.example", "applicationAccessPolicy": {CLIENT_ID: GROUP},
     "groups": [{"id": GROUP, "mail": "10kc@fourth.example", "members": ["in@fourth.example"]}],
     "users": [person(21, "in@fourth.example", "UTC", admin=True), person(22, "out@fourth.example", "UTC")]},
]
DAY = {"start": at(0, "09:00:00-05:00"), "end": at(0, "17:00:00-05:00"), "durationMinutes": 30,
       "timeZone": "America/New_York", "slotStepMinutes": 30}


@pytest.fixture
def tenants(api, sandbox):
    sandbox.reset({"tenants": TENANTS})
    return api


def ask(api, tenant, **body):
    return api.post(f"/tenants/{tenant}/availability", json=DAY | body)


def graph_calls(sandbox, since, suffix):
    return [e for e in sandbox.requests(since=since) if e["path"].lower().endswith(suffix.lower())]


def test_domain_slots_match_the_seeded_calendars(tenants, sandbox):
    admin_consent(tenants, sandbox, DOMAIN, ADA["mail"])
    since = sandbox.next_request_index()
    answer = ask(tenants, DOMAIN, organizer="ADA@tailspin.example", attendees=["grace@tailspin.example"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    # Common working hours: 09:00-12:00 New York (London's 14:00-17:00). Ada is busy 10-11 and
    # tentative 11:30-12; Grace is out of office 09:00-09:30 New York.
    assert body["slots"] == [{"start": at(0, "09:30:00-05:00"), "end": at(0, "10:00:00-05:00")},
                             {"start": at(0, "11:00:00-05:00"), "end": at(0, "11:30:00-05:00")}]
    assert body["participants"] == [{"email": "ada@tailspin.example", "status": "ok"},
                                    {"email": "grace@tailspin.example", "status": "ok"}]
    assert (body["mode"], body["timeZone"], body["emptyReason"]) == ("domain", "America/New_York", None)
    assert len(graph_calls(sandbox, since, "/calendar/getSchedule")) == 1

    relaxed = ask(tenants, DOMAIN, organizer="ada@tailspin.example", attendees=["grace@tailspin.example"],
                  tentativeAsBusy=False, respectWorkingHours=False, maxSlots=3)
    assert [s["start"][11:16] for s in relaxed.json()["slots"]] == ["09:30", "11:00", "11:30"]

    since = sandbox.next_request_index()
    ask(tenants, DOMAIN, organizer="ada@tailspin.example", attendees=["grace@tailspin.example"])
    assert graph_calls(sandbox, since, "/oauth2/v2.0/token") == []  # the app token came from MSAL's cache


def test_buffer_widens_what_graph_is_asked_and_busy_time_outside_counts(tenants, sandbox):
    admin_consent(tenants, sandbox, DOMAIN, ADA["mail"])
    answer = ask(tenants, DOMAIN, organizer="ada@tailspin.example", attendees=["grace@tailspin.example"],
                 start=at(0, "09:30:00-05:00"), end=at(0, "10:00:00-05:00"), bufferMinutes=15,
                 respectWorkingHours=False)
    # 09:30-10:00 is free, but Ada's 10:00 meeting is within the 15-minute buffer.
    assert answer.json()["slots"] == []
    assert answer.json()["emptyReason"] == "no_common_time"


def test_a_meeting_of_unknown_status_is_busy_though_the_view_cannot_show_it(tenants, sandbox):
    admin_consent(tenants, sandbox, DOMAIN, ADA["mail"])
    answer = ask(tenants, DOMAIN, organizer="lin@tailspin.example", attendees=[],
                 start=at(0, "09:00:00-05:00"), end=at(0, "10:00:00-05:00"))
    assert answer.json()["slots"] == [{"start": at(0, "09:30:00-05:00"), "end": at(0, "10:00:00-05:00")}]


def test_five_minute_steps_are_answered_to_the_minute_not_the_quarter_hour(tenants, sandbox):
    # 20-minute slots every 10 minutes: the five-minute meeting at 10:05 rules out the starts
    # overlapping it and no more (a reading in quarter hours would also rule out 10:10).
    admin_consent(tenants, sandbox, DOMAIN, ADA["mail"])
    answer = ask(tenants, DOMAIN, organizer="lin@tailspin.example", attendees=[],
                 start=at(0, "09:30:00-05:00"), end=at(0, "11:00:00-05:00"), durationMinutes=20, slotStepMinutes=10)
    starts = [slot["start"] for slot in answer.json()["slots"]]
    assert starts == [at(0, f"{t}:00-05:00") for t in ("09:30", "09:40", "10:10", "10:20", "10:30", "10:40")]


def test_unknown_attendee_is_unavailable_and_the_others_still_answer(tenants, sandbox):
    admin_consent(tenants, sandbox, DOMAIN, ADA["mail"])
    body = ask(tenants, DOMAIN, organizer="ada@tailspin.example",
               attendees=["nobody@tailspin.example", "grace@tailspin.example"]).json()
    assert body["participants"][1] == {"email": "nobody@tailspin.example", "status": "unavailable",
                                       "reason": "not_found"}
    assert len(body["slots"]) == 2
    # An organizer Graph does not resolve in a path: 422, asking for the object id or UPN (API.md).
    lost = ask(tenants, DOMAIN, organizer="nobody@tailspin.example", attendees=["ada@tailspin.example"])
    assert lost.status_code == 422, lost.text
    assert lost.json()["error"]["code"] == "person_not_found"
    assert lost.json()["error"]["target"] == "organizer"
    assert "object id" in lost.json()["error"]["message"]


def test_throttling_is_waited_out(tenants, sandbox):
    admin_consent(tenants, sandbox, DOMAIN, ADA["mail"])
    sandbox.session().post(f"{sandbox.base_url}/_sandbox/faults",
                           json={"path": "getSchedule$", "status": 429, "retryAfter": 1, "count": 1})
    since, began = sandbox.next_request_index(), time.monotonic()
    answer = ask(tenants, DOMAIN, organizer="ada@tailspin.example", attendees=["grace@tailspin.example"])
    assert answer.status_code == 200
    assert len(answer.json()["slots"]) == 2
    assert time.monotonic() - began >= 1.0
    assert [e["status"] for e in graph_calls(sandbox, since, "/calendar/getSchedule")] == [429, 200]


def test_throttling_past_the_budget_is_503_with_retry_after(tenants, sandbox):
    admin_consent(tenants, sandbox, DOMAIN, ADA["mail"])
    from shared.clients import graph_client

    graph_client()._retry_budget = 2.0
    sandbox.session().post(f"{sandbox.base_url}/_sandbox/faults",
                           json={"path": "getSchedule$", "status": 429, "retryAfter": 7, "count": 3})
    answer = ask(tenants, DOMAIN, organizer="ada@tailspin.example", attendees=["grace@tailspin.example"])
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "upstream_throttled"
    assert answer.headers["Retry-After"] == "7"


def test_many_people_and_a_long_window_are_split_concurrently(tenants, sandbox):
    admin_consent(tenants, sandbox, DOMAIN, ADA["mail"])
    crowd = [p["mail"] for p in CROWD]
    since = sandbox.next_request_index()
    answer = ask(tenants, DOMAIN, organizer="ada@tailspin.example", attendees=crowd,
                 start=at(13, "09:00:00-05:00"), end=at(81, "17:00:00-05:00"), durationMinutes=60,
                 slotStepMinutes=60, maxSlots=500)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["participants"]) == 41 and all(p["status"] == "ok" for p in body["participants"])
    calls = graph_calls(sandbox, since, "/calendar/getSchedule")
    # 41 people in groups of 20 (3) x a 68-day window in parts under 62 days (2) = 6 calls, no throttling.
    assert len(calls) == 6
    assert all(call["status"] == 200 for call in calls)
    paths = {call["path"] for call in calls}
    assert len(paths) == 2  # rotated: 4 parts on the organizer, 2 on the next participant
    starts = [s["start"] for s in body["slots"]]
    assert not any(s.startswith(day(76)) for s in starts)  # p27 is busy that whole day (a Monday)
    assert any(s.startswith(day(77)) for s in starts)
    assert any(s.startswith(day(13)) for s in starts)


def test_organizer_outside_the_security_group_is_403_attendee_is_unavailable(tenants, sandbox):
    admin_consent(tenants, sandbox, POLICY, "in@fourth.example")
    out = ask(tenants, POLICY, organizer="out@fourth.example", attendees=["in@fourth.example"])
    assert out.status_code == 403
    assert out.json()["error"]["code"] == "outside_security_group"
    inside = ask(tenants, POLICY, organizer="in@fourth.example", attendees=["out@fourth.example"]).json()
    assert inside["participants"][1] == {"email": "out@fourth.example", "status": "unavailable",
                                         "reason": "outside_security_group"}


def test_delegated_mode_uses_find_meeting_times_with_the_organizers_token(tenants, sandbox):
    admin_consent(tenants, sandbox, DELEGATED, "ada@wingtip.example", mode="delegated")
    not_yet = ask(tenants, DELEGATED, organizer="ada@wingtip.example", attendees=["grace@wingtip.example"])
    assert not_yet.status_code == 409
    assert not_yet.json()["error"]["code"] == "user_not_connected"
    connect_member(tenants, sandbox, DELEGATED, "ada@wingtip.example")
    since = sandbox.next_request_index()
    answer = ask(tenants, DELEGATED, organizer="ada@wingtip.example", attendees=["grace@wingtip.example"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["mode"] == "delegated"
    assert graph_calls(sandbox, since, "/me/findMeetingTimes")
    starts = [s["start"][11:16] for s in body["slots"]]
    # Microsoft's "work" domain is the organizer's working hours (New York 9-17); Ada is busy
    # 10-11, and Grace is free all day.
    assert starts == ["09:00", "09:30", "11:00", "11:30", "12:00", "12:30", "13:00", "13:30", "14:00", "14:30",
                      "15:00", "15:30", "16:00", "16:30"]

    buffered = ask(tenants, DELEGATED, organizer="ada@wingtip.example", attendees=["grace@wingtip.example"],
                   bufferMinutes=10)
    assert buffered.status_code == 409
    assert buffered.json()["error"]["code"] == "wrong_mode"

    sandbox.session().post(f"{sandbox.base_url}/_sandbox/users/ada@wingtip.example/revoke")
    from tests.conftest import clear_caches

    clear_caches()  # forget the cached access token, so the refresh token is used again
    revoked = ask(tenants, DELEGATED, organizer="ada@wingtip.example", attendees=["grace@wingtip.example"])
    assert revoked.status_code == 409
    assert revoked.json()["error"]["code"] == "user_not_connected"
    assert tenants.get(f"/tenants/{DELEGATED}/users/ada@wingtip.example").json()["status"] == "needs_reconnect"


def test_tenant_not_enabled_and_unknown(tenants):
    tenants.put(f"/tenants/{DOMAIN}", json={"organizationId": "org-42", "mode": "domain"})
    answer = ask(tenants, DOMAIN, organizer="ada@tailspin.example", attendees=[])
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "tenant_not_enabled"
    answer = ask(tenants, "a1b2c3d4-0000-4000-8000-0000000000ff", organizer="ada@tailspin.example", attendees=[])
    assert answer.status_code == 404


@pytest.mark.parametrize(
    ("change", "target"),
    [
        ({"organizer": None}, "organizer"),
        ({"organizer": "not-an-email"}, "organizer"),
        ({"attendees": "grace@tailspin.example"}, "attendees"),
        ({"attendees": [f"a{i}@x.example" for i in range(100)]}, "attendees"),
        ({"attendees": ["ok@x.example", 5]}, "attendees"),
        ({"start": at(0, "09:00:00")}, "start"),
        ({"start": "tomorrow"}, "start"),
        ({"end": at(0, "08:00:00-05:00")}, "end"),
        # Literal on purpose: a window that ended long ago, and stays in the past whatever today is.
        ({"start": "2020-01-01T09:00:00Z", "end": "2020-01-02T09:00:00Z"}, "end"),
        ({"end": at(182, "09:00:00-05:00")}, "end"),  # 26 weeks after start: longer than 90 days
        # Literal on purpose: the ends of datetime's range, which overflow it once converted to UTC.
        ({"start": "0001-01-01T00:00:00+14:00"}, "start"),
        ({"end": "9999-12-31T23:59:59-14:00"}, "end"),
        ({"durationMinutes": 4}, "durationMinutes"),
        ({"durationMinutes": 1441}, "durationMinutes"),
        ({"durationMinutes": True}, "durationMinutes"),
        ({"durationMinutes": 30.5}, "durationMinutes"),
        ({"durationMinutes": "30"}, "durationMinutes"),
        ({"durationMinutes": 600}, "end"),
        ({"timeZone": "Eastern Standard Time"}, "timeZone"),
        ({"timeZone": "Mars/Base"}, "timeZone"),
        ({"slotStepMinutes": 0}, "slotStepMinutes"),
        ({"bufferMinutes": 241}, "bufferMinutes"),
        ({"maxSlots": 0}, "maxSlots"),
        ({"maxSlots": 501}, "maxSlots"),
        ({"respectWorkingHours": "yes"}, "respectWorkingHours"),
        ({"tentativeAsBusy": 1}, "tentativeAsBusy"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_bad_requests_are_400_naming_the_field(tenants, change, target):
    tenants.put(f"/tenants/{DOMAIN}", json={"organizationId": "org-42", "mode": "domain"})
    body = DAY | {"organizer": "ada@tailspin.example", "attendees": ["grace@tailspin.example"]} | change
    body = {k: v for k, v in body.items() if v is not None}
    answer = tenants.post(f"/tenants/{DOMAIN}/availability", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"
    assert answer.json()["error"]["target"] == target


def test_graph_calls_are_logged_with_graphs_request_id(tenants, sandbox, caplog):
    import logging
    import re

    admin_consent(tenants, sandbox, DOMAIN, ADA["mail"])
    with caplog.at_level(logging.INFO, logger="shared.graph"):
        ask(tenants, DOMAIN, organizer="ada@tailspin.example", attendees=["grace@tailspin.example"])
    lines = [r.getMessage() for r in caplog.records if r.name == "shared.graph"]
    assert any(re.search(r"getSchedule -> 200 .* request-id [0-9a-f-]{36}, client-request-id [0-9a-f-]{36}", line)
               for line in lines), lines
    assert not any("tailspin.example" in line for line in lines)  # no e-mail of anyone in Graph log lines
