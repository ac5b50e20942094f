"""getSchedule and findMeetingTimes in the sandbox, against Microsoft's documented shapes.

Sources: learn.microsoft.com/graph/api/calendar-getschedule, /graph/outlook-get-free-busy-schedule
(example answer, the 20-entity and 62-day limits), /graph/api/resources/scheduleinformation
(availabilityView digits), /graph/api/user-findmeetingtimes (confidence, ordering, example answer);
Exchange's error codes as reported in github.com/microsoftgraph/microsoft-graph-docs issues
#7047 (ErrorMailboxDataArrayTooBig), #6450 (ErrorInvalidMergedFreeBusyInterval), #4494 (null
interval: 500) and pull request #19703 (ErrorTimeIntervalTooBig).

The calendars are tests/support/sandbox_graph.py's seed: Ann (Paris) on DAY (tests/support/days.py,
a Tuesday) has an overnight batch until 08:15, a private appointment 08:15-08:45, a standup 09:00-09:15,
a tentative review 10:00-11:00, a free "Focus" 11:30-12:00 and is out of office 13:00-17:00.
"""

from __future__ import annotations

import pytest
import requests

from sandbox.server import RunningServer
from tests.support.days import day
from tests.support.sandbox_graph import (
    ANN,
    BEN,
    BOB,
    CAT,
    DAN,
    EVE,
    FABRIKAM,
    Graph,
    delegated_token,
    error,
    ok,
    window,
)

pytestmark = pytest.mark.integration

PARIS_DAY = window(f"{day(0)}T08:00:00", f"{day(0)}T18:00:00", "Romance Standard Time")
SCHEDULE_PATH = f"/users/{ANN['mail']}/calendar/getSchedule"


def as_user(local: RunningServer, user: dict) -> Graph:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(local.sandbox.pki.ca_bundle_path)
    return Graph(local.base_url, delegated_token(local, FABRIKAM, user), session)


def schedule(graph: Graph, schedules: list[str], *, prefer: str | None = None, path: str = SCHEDULE_PATH,
             **body: object) -> list[dict]:
    headers = {"Prefer": f'outlook.timezone="{prefer}"'} if prefer else {}
    response = graph.post(path, json={"schedules": schedules, **PARIS_DAY, **body}, headers=headers)
    answer = ok(response, 200, "graph.scheduleInformation", collection=True)
    assert answer["@odata.context"].endswith("/v1.0/$metadata#Collection(microsoft.graph.scheduleInformation)")
    if prefer:
        assert response.headers["Preference-Applied"] == f'outlook.timezone="{prefer}"'
    return answer["value"]


# -- getSchedule ----------------------------------------------------------------------------------

def test_availability_view_items_and_working_hours(graph: Graph) -> None:
    ann, ben, cat = schedule(graph, [ANN["mail"], BEN["mail"], CAT["mail"]], availabilityViewInterval=60)
    # 08-09 busy (overnight + private), 09 busy (standup), 10 tentative, 11 free ("Focus" is free),
    # 12 free, 13-16 out of office, 17 free.
    assert ann["availabilityView"] == "2210033330"
    assert ann["error"] is None and ann["scheduleId"] == ANN["mail"]
    subjects = [item.get("subject") for item in ann["scheduleItems"]]
    assert subjects == ["Overnight batch", None, "Standup", "Design review", "Focus", "Offsite"]
    overnight, private, standup = ann["scheduleItems"][:3]
    # An item straddling the window's start is included, with its own times (UTC by default).
    assert overnight["start"] == {"dateTime": f"{day(-1)}T22:00:00.0000000", "timeZone": "UTC"}
    # Private items show only free/busy.
    assert set(private) == {"status", "start", "end"} and private["status"] == "busy"
    assert standup == {"status": "busy", "isPrivate": False, "subject": "Standup", "location": "Room 1",
                       "start": {"dateTime": f"{day(0)}T08:00:00.0000000", "timeZone": "UTC"},
                       "end": {"dateTime": f"{day(0)}T08:15:00.0000000", "timeZone": "UTC"}}
    assert [i["status"] for i in ann["scheduleItems"]] == ["busy", "busy", "busy", "tentative", "free", "oof"]
    assert ann["workingHours"] == {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                                   "startTime": "09:00:00.0000000", "endTime": "17:00:00.0000000",
                                   "timeZone": {"name": "Romance Standard Time"}}
    # workingElsewhere counts as free in availabilityView (documented), but is listed as such.
    assert ben["availabilityView"] == "0200000000"
    assert [i["status"] for i in ben["scheduleItems"]] == ["busy", "workingElsewhere"]
    assert ben["workingHours"]["timeZone"] == {"name": "Eastern Standard Time"}
    assert cat == {"scheduleId": CAT["mail"], "availabilityView": "0" * 10, "scheduleItems": [],
                   "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                                    "startTime": "08:00:00.0000000", "endTime": "17:00:00.0000000",
                                    "timeZone": {"name": "India Standard Time"}}, "error": None}


def test_default_interval_and_partial_last_slot(graph: Graph) -> None:
    [ann] = schedule(graph, [ANN["mail"]], **window(f"{day(0)}T08:00:00", f"{day(0)}T12:10:00", "Europe/Paris"))
    # 30-minute slots by default; the last, partial slot counts too.
    assert ann["availabilityView"] == "222011000"
    [ann] = schedule(graph, [ANN["mail"]], availabilityViewInterval="15",
                     **window(f"{day(0)}T07:00:00", f"{day(0)}T08:00:00"))  # 08:00-09:00 Paris, a string "15"
    assert ann["availabilityView"] == "2220"  # the private appointment ends at 08:45


@pytest.mark.parametrize("zone", ["Pacific Standard Time", "America/Los_Angeles"])
def test_prefer_time_zone_windows_or_iana(graph: Graph, zone: str) -> None:
    [ann] = schedule(graph, [ANN["mail"]], prefer=zone)
    standup = ann["scheduleItems"][2]
    assert standup["start"] == {"dateTime": f"{day(0)}T00:00:00.0000000", "timeZone": zone}
    assert standup["end"] == {"dateTime": f"{day(0)}T00:15:00.0000000", "timeZone": zone}


def test_unresolvable_and_policy_excluded_schedules_carry_an_error(graph: Graph) -> None:
    answer = schedule(graph, ["someone@external.example", BOB["mail"], DAN["mail"], ANN["mail"]])
    assert [a["scheduleId"] for a in answer] == ["someone@external.example", BOB["mail"], DAN["mail"], ANN["mail"]]
    assert answer[0] == {"scheduleId": "someone@external.example", "error": {
        "message": "Unable to resolve e-mail address someone@external.example to an Active Directory object.",
        "responseCode": "5009"}}
    assert answer[1]["error"]["responseCode"] == "5009"
    # Dan is outside the application access policy (the sandbox's choice: a per-schedule error).
    assert answer[2] == {"scheduleId": DAN["mail"], "error": {"message": "Access to OData is disabled.",
                                                              "responseCode": "ErrorAccessDenied"}}
    assert answer[3]["error"] is None


def test_parameter_names_are_case_insensitive(graph: Graph) -> None:
    body = {"Schedules": [ANN["mail"]], "StartTime": PARIS_DAY["startTime"], "EndTime": PARIS_DAY["endTime"],
            "AvailabilityViewInterval": 60}
    value = ok(graph.post(SCHEDULE_PATH, json=body), 200, "graph.scheduleInformation", collection=True)["value"]
    assert value[0]["availabilityView"] == "2210033330"


def test_limits_and_parameter_errors(graph: Graph) -> None:
    def post(**body: object) -> requests.Response:
        return graph.post(SCHEDULE_PATH, json={"schedules": [ANN["mail"]], **PARIS_DAY, **body})

    error(post(schedules=[f"u{i}@fabrikam.example" for i in range(21)]), 400, "ErrorMailboxDataArrayTooBig",
          "There are too many target users in the EmailAddress array. The allowed size = 20; the actual size = 21.")
    assert len(schedule(graph, [f"u{i}@fabrikam.example" for i in range(20)])) == 20
    error(post(**window(f"{day(0)}T00:00:00", f"{day(62)}T00:00:00")), 400, "ErrorTimeIntervalTooBig",
          "The requested time duration specified for FreeBusyViewOptions.TimeWindow is too long. The allowed limit "
          "= 62 days; the actual limit = 62 days.")
    ok(post(**window(f"{day(0)}T00:00:00", f"{day(61)}T23:00:00")), 200, "graph.scheduleInformation",
       collection=True)
    error(post(**window(f"{day(1)}T00:00:00", f"{day(0)}T00:00:00")), 400, "ErrorInvalidTimeInterval")
    for interval in (4, 1441, 601):  # 601 minutes is longer than the 10-hour window
        error(post(availabilityViewInterval=interval), 400, "ErrorInvalidMergedFreeBusyInterval")
    error(post(availabilityViewInterval=None), 500, "ErrorInternalServerError")  # docs issue #4494
    error(post(**window(f"{day(0)}T00:00:00", f"{day(1)}T00:00:00", "Mars/Olympus_Mons")), 400,
          "TimeZoneNotSupportedException")
    error(graph.post(SCHEDULE_PATH, data="{not json", headers={"Content-Type": "application/json"}), 400,
          "BadRequest")


def test_me_get_schedule_with_a_delegated_token(local: RunningServer) -> None:
    ann = as_user(local, ANN)
    [mine] = schedule(ann, [ANN["mail"]], path="/me/calendar/getSchedule", availabilityViewInterval=60)
    assert mine["availabilityView"] == "2210033330"
    # The application access policy does not bind delegated calls.
    [dan] = schedule(ann, [DAN["mail"]], path="/me/calendar/getSchedule", availabilityViewInterval=60)
    assert dan["error"] is None and dan["availabilityView"] == "0000020000"  # 12:00Z is 13:00 in Paris


# -- findMeetingTimes ------------------------------------------------------------------------------

def slot(start: str, end: str, zone: str = "Romance Standard Time") -> dict:
    return {"timeConstraint": {"activityDomain": "work", "timeSlots": [
        {"start": {"dateTime": start, "timeZone": zone}, "end": {"dateTime": end, "timeZone": zone}}]}}


def attendees(*users: dict | str) -> list[dict]:
    return [{"type": "required", "emailAddress": {"address": u if isinstance(u, str) else u["mail"]}} for u in users]


def find(graph: Graph, body: dict, *, prefer: str | None = None, path: str = "/me/findMeetingTimes") -> dict:
    headers = {"Prefer": f'outlook.timezone="{prefer}"'} if prefer else {}
    response = graph.post(path, json=body, headers=headers)
    answer = ok(response, 200, "graph.meetingTimeSuggestionsResult")
    assert answer["@odata.context"].endswith("/v1.0/$metadata#microsoft.graph.meetingTimeSuggestionsResult")
    return answer


def starts(answer: dict) -> list[str]:
    return [s["meetingTimeSlot"]["start"]["dateTime"][11:16] for s in answer["meetingTimeSuggestions"]]


def test_find_meeting_times_inside_working_hours(local: RunningServer) -> None:
    ann = as_user(local, ANN)
    body = {"attendees": attendees(BEN), **slot(f"{day(0)}T08:00:00", f"{day(0)}T18:00:00"),
            "meetingDuration": "PT1H", "returnSuggestionReasons": True}
    answer = find(ann, body, prefer="Romance Standard Time")
    # 09:00 the organizer is busy (standup); 09:30 Ben is busy; from 12:30 the organizer is out of office.
    assert starts(answer) == ["10:00", "10:30", "11:00", "11:30", "12:00"]
    assert answer["emptySuggestionsReason"] == ""
    first = answer["meetingTimeSuggestions"][0]
    assert first == {
        "confidence": 100, "order": 1, "organizerAvailability": "tentative",
        "suggestionReason": "Suggested because it is one of the nearest times when all attendees are available.",
        "attendeeAvailability": [{"attendee": {"type": "required", "emailAddress": {"address": BEN["mail"]}},
                                  "availability": "free"}],
        "locations": [],
        "meetingTimeSlot": {"start": {"dateTime": f"{day(0)}T10:00:00.0000000", "timeZone": "Romance Standard Time"},
                            "end": {"dateTime": f"{day(0)}T11:00:00.0000000", "timeZone": "Romance Standard Time"}}}
    assert [s["order"] for s in answer["meetingTimeSuggestions"]] == [1, 2, 3, 4, 5]
    assert answer["meetingTimeSuggestions"][1]["attendeeAvailability"][0]["availability"] == "workingElsewhere"
    # Without the Prefer header the slots are in UTC; without returnSuggestionReasons the reason is empty.
    utc = find(ann, {**body, "returnSuggestionReasons": False})
    assert utc["meetingTimeSuggestions"][0]["meetingTimeSlot"]["start"] == {
        "dateTime": f"{day(0)}T09:00:00.0000000", "timeZone": "UTC"}
    assert utc["meetingTimeSuggestions"][0]["suggestionReason"] == ""


def test_confidence_ordering_unknown_attendees_and_limits(local: RunningServer) -> None:
    ann = as_user(local, ANN)
    window_body = slot(f"{day(0)}T08:00:00", f"{day(0)}T18:00:00")
    # Eve is busy 09:00-12:00: 50 % until noon, 100 % at noon; by confidence, then time.
    answer = find(ann, {"attendees": attendees(BEN, EVE), **window_body, "meetingDuration": "PT1H"},
                  prefer="Europe/Paris")
    assert starts(answer) == ["12:00", "10:00", "10:30", "11:00", "11:30"]
    assert [s["confidence"] for s in answer["meetingTimeSuggestions"]] == [100, 50, 50, 50, 50]
    capped = find(ann, {"attendees": attendees(BEN, EVE), **window_body, "meetingDuration": "PT1H",
                        "maxCandidates": 2}, prefer="Europe/Paris")
    assert starts(capped) == ["12:00", "10:00"]
    # Someone outside the tenant is "unknown": 49 %.
    unknown = find(ann, {"attendees": attendees(BEN, "guest@external.example"), **window_body,
                         "meetingDuration": "PT1H"}, prefer="Europe/Paris")
    assert unknown["meetingTimeSuggestions"][0]["confidence"] == 74.5
    assert unknown["meetingTimeSuggestions"][0]["attendeeAvailability"][1]["availability"] == "unknown"
    none = find(ann, {"attendees": attendees(BEN, "guest@external.example"), **window_body,
                      "meetingDuration": "PT1H", "minimumAttendeePercentage": 100})
    assert none == {"@odata.context": none["@odata.context"], "emptySuggestionsReason": "attendeesUnavailableOrUnknown",
                    "meetingTimeSuggestions": []}


def test_empty_suggestion_reasons(local: RunningServer) -> None:
    ann = as_user(local, ANN)
    # Ann is out of office all afternoon.
    organizer = find(ann, {"attendees": attendees(BEN), **slot(f"{day(0)}T13:00:00", f"{day(0)}T17:00:00")})
    assert organizer["emptySuggestionsReason"] == "organizerUnavailable"
    # With the organizer optional, Ben's busy hour leaves nothing at 100 %.
    busy = find(ann, {"attendees": attendees(BEN), **slot(f"{day(0)}T09:00:00", f"{day(0)}T10:00:00"),
                      "meetingDuration": "PT1H", "isOrganizerOptional": True, "minimumAttendeePercentage": 100})
    assert busy["emptySuggestionsReason"] == "attendeesUnavailable"
    # A Saturday is outside working hours ("work"): no candidate at all.
    saturday = slot(f"{day(4)}T08:00:00", f"{day(4)}T18:00:00")  # DAY is a Tuesday
    assert find(ann, {"attendees": attendees(BEN), **saturday})["emptySuggestionsReason"] == "unknown"
    personal = {"timeConstraint": {**saturday["timeConstraint"], "activityDomain": "personal"}}
    assert starts(find(ann, {"attendees": attendees(BEN), **personal}, prefer="Europe/Paris"))[0] == "09:00"
    unrestricted = {"timeConstraint": {**saturday["timeConstraint"], "activityDomain": "unrestricted"}}
    assert starts(find(ann, {"attendees": attendees(BEN), **unrestricted}, prefer="Europe/Paris"))[0] == "08:00"


def test_attendee_statuses_and_organizer_only(local: RunningServer) -> None:
    ben = as_user(local, BEN)
    unrestricted = {"timeConstraint": {"activityDomain": "unrestricted", "timeslots": [  # the examples' spelling
        {"start": {"dateTime": f"{day(0)}T10:00:00", "timeZone": "Europe/Paris"},
         "end": {"dateTime": f"{day(0)}T11:00:00", "timeZone": "Europe/Paris"}}]}}
    tentative = find(ben, {"attendees": attendees(ANN), **unrestricted, "meetingDuration": "PT1H"})
    [only] = tentative["meetingTimeSuggestions"]
    assert only["confidence"] == 50 and only["attendeeAvailability"][0]["availability"] == "tentative"
    oof_window = {"timeConstraint": {"activityDomain": "unrestricted", "timeSlots": [
        {"start": {"dateTime": f"{day(0)}T12:00:00", "timeZone": "UTC"},
         "end": {"dateTime": f"{day(0)}T13:00:00", "timeZone": "UTC"}}]}}
    oof = find(ben, {"attendees": attendees(ANN), **oof_window, "meetingDuration": "PT1H",
                     "minimumAttendeePercentage": 0})
    assert oof["meetingTimeSuggestions"][0]["attendeeAvailability"][0]["availability"] == "oof"
    assert oof["meetingTimeSuggestions"][0]["confidence"] == 0
    # No attendees: the organizer's own free time; default duration 30 minutes.
    alone = find(ben, {**oof_window})
    assert starts(alone) == ["12:00", "12:30"]
    assert alone["meetingTimeSuggestions"][0]["attendeeAvailability"] == []


def test_find_meeting_times_is_delegated_only(graph: Graph, local: RunningServer) -> None:
    body = {"attendees": attendees(BEN), **slot(f"{day(0)}T08:00:00", f"{day(0)}T18:00:00")}
    error(graph.post(f"/users/{ANN['mail']}/findMeetingTimes", json=body), 403, "ErrorAccessDenied",
          "Access is denied. Check credentials and try again.")
    error(graph.post("/me/findMeetingTimes", json=body), 400, "BadRequest")
    ann = as_user(local, ANN)
    find(ann, body, path=f"/users/{ANN['mail']}/findMeetingTimes")
    error(ann.post("/me/findMeetingTimes", json={**body, "meetingDuration": "an hour"}), 400, "BadRequest")
    error(ann.post("/me/findMeetingTimes", json={**body, "timeConstraint": {"activityDomain": "leisure"}}), 400,
          "BadRequest")
