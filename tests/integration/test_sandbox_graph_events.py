"""Events in the sandbox: create (attendees' copies, transactionId, extended properties, online
meetings), list with $filter/$expand/$select/$top, get, update, delete, cancel, immutable ids, and
the control endpoint.

Sources: learn.microsoft.com/graph/api/user-post-events (201 and the example answer),
/graph/api/event-get, /graph/api/event-update, /graph/api/event-delete, /graph/api/event-cancel
(202; an attendee gets 400 "Your request can't be completed. You need to be an organizer to cancel
a meeting."), /graph/outlook-immutable-id (ids change on a move, immutable ones do not),
/graph/api/singlevaluelegacyextendedproperty-get (the Any() filter and $expand), /graph/api/resources/event
(transactionId returned only when set).
"""

from __future__ import annotations

import uuid
from urllib.parse import quote

import pytest
import requests

from sandbox.server import RunningServer
from sandbox.testing import SandboxProcess
from tests.support.days import day
from tests.support.graph_schema import graph_schema
from tests.support.sandbox_graph import (
    ANN,
    BEN,
    CAT,
    DAN,
    FABRIKAM,
    IMMUTABLE,
    Graph,
    delegated_token,
    error,
    graph_seed,
    ok,
    raw_token,
    window,
)

pytestmark = pytest.mark.integration

TAG = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name TenKC-BookingId"
ANN_EVENTS = f"/users/{ANN['mail']}/events"
DOCUMENTED_CREATE_KEYS = {
    "@odata.context", "@odata.etag", "id", "createdDateTime", "lastModifiedDateTime", "changeKey", "categories",
    "originalStartTimeZone", "originalEndTimeZone", "iCalUId", "reminderMinutesBeforeStart", "isReminderOn",
    "hasAttachments", "subject", "bodyPreview", "importance", "sensitivity", "isAllDay", "isCancelled", "isOrganizer",
    "responseRequested", "seriesMasterId", "showAs", "type", "webLink", "onlineMeetingUrl", "responseStatus", "body",
    "start", "end", "location", "locations", "recurrence", "attendees", "organizer"}


def meeting(**extra: object) -> dict:
    body = {"subject": "10KC: Intro call",
            "body": {"contentType": "HTML", "content": "<p>Hello</p>"},
            "start": {"dateTime": f"{day(1)}T09:00:00", "timeZone": "Pacific Standard Time"},
            "end": {"dateTime": f"{day(1)}T09:30:00", "timeZone": "Pacific Standard Time"},
            "attendees": [{"emailAddress": {"address": BEN["mail"], "name": "Ben"}, "type": "Required"},
                          {"emailAddress": {"address": "guest@external.example"}, "type": "optional"}],
            "allowNewTimeProposals": False}
    body.update(extra)
    return body


@pytest.fixture(autouse=True)
def seeded_calendars(sandbox: SandboxProcess) -> None:
    sandbox.reset(graph_seed())  # every test starts from the seeded calendars


def create(graph: Graph, body: dict, *, mailbox: str = ANN["mail"], headers: dict | None = None) -> dict:
    response = graph.post(f"/users/{mailbox}/events", json=body, headers=headers)
    event = ok(response, 201, "graph.event")
    assert event["@odata.context"].endswith(f"/v1.0/$metadata#users('{mailbox}')/events/$entity")
    return event


def events_of(graph: Graph, mailbox: str, **params: str) -> list[dict]:
    response = graph.get(f"/users/{mailbox}/events", params={"$top": "100", **params})
    return ok(response, 200, "graph.event", collection=True, selected="$select" in params)["value"]


def stored(graph: Graph, mailbox: str) -> list[dict]:
    body = ok(graph.session.get(f"{graph.base_url}/_sandbox/users/{mailbox}/events", timeout=30), 200)
    for event in body["value"]:
        graph_schema().check(event, "graph.event")
    return body["value"]


def test_create_answers_the_full_event(graph: Graph) -> None:
    response = graph.post(ANN_EVENTS, json=meeting(transactionId="tx-1"),
                          headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'})
    event = ok(response, 201, "graph.event")
    assert response.headers["Preference-Applied"] == 'outlook.timezone="Pacific Standard Time"'
    assert event["subject"] == "10KC: Intro call" and event["transactionId"] == "tx-1"
    assert event["start"] == {"dateTime": f"{day(1)}T09:00:00.0000000", "timeZone": "Pacific Standard Time"}
    assert event["originalStartTimeZone"] == "Pacific Standard Time"
    assert event["isOrganizer"] is True and event["isCancelled"] is False and event["showAs"] == "busy"
    # Literal on purpose (here and for the attendee below): 0001-01-01 is Graph's "no response" time.
    assert event["responseStatus"] == {"response": "organizer", "time": "0001-01-01T00:00:00Z"}
    assert event["organizer"] == {"emailAddress": {"name": ANN["displayName"], "address": ANN["mail"]}}
    assert event["attendees"][0] == {"type": "required", "status": {"response": "none", "time": "0001-01-01T00:00:00Z"},
                                     "emailAddress": {"name": "Ben", "address": BEN["mail"]}}
    assert event["body"]["contentType"] == "html" and "<p>Hello</p>" in event["body"]["content"]
    assert event["isOnlineMeeting"] is False and event["onlineMeeting"] is None
    assert event["allowNewTimeProposals"] is False and event["type"] == "singleInstance"
    assert event["iCalUId"].startswith("040000008200E00074C5B7101A82E008")
    assert quote(event["id"], safe="") in event["webLink"]
    assert event["@odata.etag"] == f'W/"{event["changeKey"]}"'
    assert "singleValueExtendedProperties" not in event
    # Every property of Microsoft's documented answer is there (user-post-events, "Response 1").
    assert set(event) >= DOCUMENTED_CREATE_KEYS
    # Without Prefer, times come back in UTC.
    plain = create(graph, meeting())
    assert plain["start"] == {"dateTime": f"{day(1)}T17:00:00.0000000", "timeZone": "UTC"}
    assert "transactionId" not in plain  # only returned when the app set it
    assert plain["id"] != event["id"]


def test_online_meeting_gets_a_join_url(graph: Graph) -> None:
    event = create(graph, meeting(isOnlineMeeting=True, onlineMeetingProvider="teamsForBusiness"))
    assert event["isOnlineMeeting"] is True and event["onlineMeetingProvider"] == "teamsForBusiness"
    join_url = event["onlineMeeting"]["joinUrl"]
    assert join_url.startswith("https://teams.microsoft.com/l/meetup-join/")
    assert "<p>Hello</p>" in event["body"]["content"] and "Microsoft Teams meeting" in event["body"]["content"]
    error(graph.post(ANN_EVENTS, json=meeting(isOnlineMeeting=True, onlineMeetingProvider="skypeForBusiness")), 400,
          "ErrorInvalidRequest")
    # Once on, it stays on (graph-facts.md §3: cannot be set back to false).
    patched = ok(graph.patch(f"{ANN_EVENTS}/{event['id']}", json={"isOnlineMeeting": False}), 200, "graph.event")
    assert patched["isOnlineMeeting"] is True and patched["onlineMeeting"]["joinUrl"] == join_url


def test_attendees_of_the_tenant_get_their_own_copy(graph: Graph) -> None:
    event = create(graph, meeting())
    copies = events_of(graph, BEN["mail"], **{"$filter": f"iCalUId eq '{event['iCalUId']}'"})
    assert len(copies) == 1
    copy = copies[0]
    assert copy["id"] != event["id"] and copy["iCalUId"] == event["iCalUId"]
    assert copy["isOrganizer"] is False and copy["showAs"] == "tentative"
    assert copy["responseStatus"]["response"] == "notResponded"
    assert copy["organizer"]["emailAddress"]["address"] == ANN["mail"]
    # The copy shows in Ben's free/busy as tentative (17:00-17:30 UTC).
    [ben] = ok(graph.post(f"/users/{BEN['mail']}/calendar/getSchedule", json={
        "schedules": [BEN["mail"]], "availabilityViewInterval": 30,
        **window(f"{day(1)}T16:00:00", f"{day(1)}T18:00:00")}), 200, "graph.scheduleInformation",
        collection=True)["value"]
    assert ben["availabilityView"] == "0010"
    # No copy for the external guest, nor for Cat who was not invited.
    assert not [e for e in stored(graph, CAT["mail"]) if e["iCalUId"] == event["iCalUId"]]


def test_transaction_id_makes_a_retry_create_nothing(graph: Graph) -> None:
    transaction = str(uuid.uuid4())
    first = create(graph, meeting(transactionId=transaction))
    again = create(graph, meeting(transactionId=transaction, subject="changed on retry"))
    assert again["id"] == first["id"] and again["subject"] == first["subject"]
    assert [e["transactionId"] for e in stored(graph, ANN["mail"]) if e.get("transactionId")] == [transaction]
    assert len([e for e in stored(graph, BEN["mail"]) if e["iCalUId"] == first["iCalUId"]]) == 1
    other = create(graph, meeting(transactionId=str(uuid.uuid4())))
    assert other["id"] != first["id"]
    # The same transactionId on another mailbox is another event.
    elsewhere = create(graph, meeting(transactionId=transaction), mailbox=CAT["mail"])
    assert elsewhere["iCalUId"] != first["iCalUId"]


def test_extended_properties_are_kept_filtered_and_expanded(graph: Graph) -> None:
    tagged = create(graph, meeting(singleValueExtendedProperties=[{"id": TAG, "value": "bk_123"}]))
    create(graph, meeting(singleValueExtendedProperties=[{"id": TAG, "value": "bk_456"}]))
    assert "singleValueExtendedProperties" not in tagged
    flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{TAG}' and ep/value eq 'bk_123')"
    expand = f"singleValueExtendedProperties($filter=id eq '{TAG}')"
    found = events_of(graph, ANN["mail"], **{"$filter": flt, "$expand": expand})
    assert [e["id"] for e in found] == [tagged["id"]]
    assert found[0]["singleValueExtendedProperties"] == [{"id": TAG, "value": "bk_123"}]
    # The same, URL-encoded by hand as the facts sheet says to.
    url = f"{ANN_EVENTS}?$filter={quote(flt)}&$select=subject,start&$expand={quote(expand)}"
    body = ok(graph.get(url), 200, "graph.event", collection=True, selected=True)
    assert body["@odata.context"].endswith(f"users('{ANN['mail']}')/events(subject,start)")
    [selected] = body["value"]
    assert set(selected) == {"@odata.etag", "id", "subject", "start", "singleValueExtendedProperties"}
    single = ok(graph.get(f"{ANN_EVENTS}/{tagged['id']}", params={"$expand": expand, "$select": "subject"}), 200,
                "graph.event", selected=True)
    assert single["singleValueExtendedProperties"] == [{"id": TAG, "value": "bk_123"}]
    untagged = events_of(graph, ANN["mail"], **{"$filter": "subject eq 'Standup'", "$expand": expand})
    assert untagged[0]["singleValueExtendedProperties"] == []
    # Attendees' copies do not carry the organizer's extended properties.
    assert not events_of(graph, BEN["mail"], **{"$filter": flt})
    error(graph.get(ANN_EVENTS, params={"$select": "subjekt"}), 400, "RequestBroker--ParseUri",
          "Could not find a property named 'subjekt' on type 'microsoft.graph.event'.")
    error(graph.get(ANN_EVENTS, params={"$filter": "singleValueExtendedProperties/Any(ep: ep/value eq 'x')"}), 400,
          "ErrorInvalidUrlQueryFilter")
    error(graph.get(ANN_EVENTS, params={"$filter": "contains(subject, 'x')"}), 400, "ErrorInvalidUrlQueryFilter")


def test_paging_and_time_filters(graph: Graph) -> None:
    page = ok(graph.get(ANN_EVENTS, params={"$top": "4", "$select": "subject"}), 200, "graph.event",
              collection=True, selected=True)
    assert len(page["value"]) == 4 and page["@odata.nextLink"].startswith(graph.base_url + "/v1.0/users/")
    rest = ok(graph.get(page["@odata.nextLink"]), 200, "graph.event", collection=True, selected=True)
    assert len(rest["value"]) == 2 and "@odata.nextLink" not in rest
    subjects = [e["subject"] for e in page["value"] + rest["value"]]
    assert subjects == ["Overnight batch", "Doctor", "Standup", "Design review", "Focus", "Offsite"]
    afternoon = events_of(graph, ANN["mail"], **{"$filter": f"start/dateTime ge '{day(0)}T10:00:00'",
                                                 "$orderby": "start/dateTime desc", "$select": "subject"})
    assert [e["subject"] for e in afternoon] == ["Offsite", "Focus"]


def test_get_update_and_delete(graph: Graph) -> None:
    event = create(graph, meeting())
    path = f"{ANN_EVENTS}/{event['id']}"
    got = ok(graph.get(path, params={"$select": "subject,isCancelled,iCalUId"}), 200, "graph.event", selected=True)
    assert set(got) == {"@odata.context", "@odata.etag", "id", "subject", "isCancelled", "iCalUId"}
    update = {"subject": "Moved", "start": {"dateTime": f"{day(2)}T10:00:00", "timeZone": "Europe/Paris"},
              "end": {"dateTime": f"{day(2)}T11:00:00", "timeZone": "Europe/Paris"},
              "attendees": [{"emailAddress": {"address": CAT["mail"]}, "type": "required"}]}
    patched = ok(graph.patch(path, json=update), 200, "graph.event")
    assert patched["subject"] == "Moved" and patched["id"] == event["id"]
    assert patched["start"] == {"dateTime": f"{day(2)}T09:00:00.0000000", "timeZone": "UTC"}
    assert patched["lastModifiedDateTime"] >= event["lastModifiedDateTime"]
    assert patched["changeKey"] != event["changeKey"]
    # Ben was dropped (his copy is cancelled), Cat was added (she gets a copy at the new time).
    [ben_copy] = [e for e in stored(graph, BEN["mail"]) if e["iCalUId"] == event["iCalUId"]]
    assert ben_copy["isCancelled"] is True
    [cat_copy] = [e for e in stored(graph, CAT["mail"]) if e["iCalUId"] == event["iCalUId"]]
    assert cat_copy["subject"] == "Moved" and cat_copy["isCancelled"] is False
    error(graph.patch(path, json={"start": {"dateTime": f"{day(2)}T12:00:00", "timeZone": "Europe/Paris"}}), 400,
          "ErrorCalendarEndDateIsEarlierThanStartDate", "The end date occurs before the start date.")
    assert graph.delete(path).status_code == 204
    error(graph.get(path), 404, "ErrorItemNotFound", "The specified object was not found in the store.")
    [cat_copy] = [e for e in stored(graph, CAT["mail"]) if e["iCalUId"] == event["iCalUId"]]
    assert cat_copy["isCancelled"] is True and cat_copy["showAs"] == "free"


def test_organizer_time_change_reaches_copies(graph: Graph) -> None:
    event = create(graph, meeting())
    ok(graph.patch(f"{ANN_EVENTS}/{event['id']}", json={
        "subject": "Later", "start": {"dateTime": f"{day(1)}T13:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"{day(1)}T13:30:00", "timeZone": "UTC"}}), 200, "graph.event")
    [copy] = events_of(graph, BEN["mail"], **{"$filter": f"iCalUId eq '{event['iCalUId']}'"})
    assert copy["subject"] == "Later" and copy["start"]["dateTime"] == f"{day(1)}T13:00:00.0000000"
    assert copy["responseStatus"]["response"] == "notResponded" and copy["showAs"] == "tentative"


def test_cancel_and_immutable_ids(graph: Graph) -> None:
    event = create(graph, meeting(), headers=IMMUTABLE)
    rest_id = create(graph, meeting(attendees=[])).get("id")
    assert event["id"].startswith("AAkALg") and rest_id.startswith("AAMkA")
    [copy] = events_of(graph, BEN["mail"], **{"$filter": f"iCalUId eq '{event['iCalUId']}'"})
    error(graph.post(f"/users/{BEN['mail']}/events/{copy['id']}/cancel", json={"Comment": "no"}), 400,
          "ErrorInvalidRequest", "Your request can't be completed. You need to be an organizer to cancel a meeting.")
    [before] = [e for e in stored(graph, ANN["mail"]) if e["iCalUId"] == event["iCalUId"]]
    cancel = graph.post(f"{ANN_EVENTS}/{event['id']}/cancel", json={"comment": "Sorry, cancelled"})
    assert cancel.status_code == 202 and not cancel.content
    # The item moved to Deleted Items: its REST id is gone, its immutable id still reads it.
    error(graph.get(f"{ANN_EVENTS}/{before['id']}"), 404, "ErrorItemNotFound")
    kept = ok(graph.get(f"{ANN_EVENTS}/{event['id']}", headers=IMMUTABLE), 200, "graph.event")
    assert kept["id"] == event["id"] and kept["isCancelled"] is True
    assert event["id"] not in {e["id"] for e in events_of(graph, ANN["mail"])}
    [copy] = events_of(graph, BEN["mail"], **{"$filter": f"iCalUId eq '{event['iCalUId']}'"})
    assert copy["isCancelled"] is True
    [ben] = ok(graph.post(f"/users/{BEN['mail']}/calendar/getSchedule", json={
        "schedules": [BEN["mail"]], **window(f"{day(1)}T17:00:00", f"{day(1)}T17:30:00")}), 200,
        "graph.scheduleInformation", collection=True)["value"]
    assert ben["availabilityView"] == "0" and ben["scheduleItems"] == []


def test_ids_are_opaque_and_case_sensitive(graph: Graph) -> None:
    event = create(graph, meeting())
    assert "/" not in event["id"] and "+" not in event["id"]
    error(graph.get(f"{ANN_EVENTS}/{event['id'].swapcase()}"), 404, "ErrorItemNotFound")
    error(graph.get(f"{ANN_EVENTS}/not-an-id"), 400, "ErrorInvalidIdMalformed", "Id is malformed.")
    # Another mailbox's id is not found here.
    error(graph.get(f"/users/{CAT['mail']}/events/{event['id']}"), 404, "ErrorItemNotFound")
    ok(graph.get(f"/users/{ANN['mail']}/calendar/events/{event['id']}"), 200, "graph.event")


def test_bodies_graph_refuses(graph: Graph) -> None:
    error(graph.post(ANN_EVENTS, json=meeting(subjet="typo")), 400, "BadRequest",
          "The property 'subjet' does not exist on type 'microsoft.graph.event'. Make sure to only use property "
          "names that are defined by the type or mark the type as open type.")
    error(graph.post(ANN_EVENTS, json=meeting(start={"dateTime": f"{day(1)}T09:00:00", "timeZone": "Mars"})), 400,
          "TimeZoneNotSupportedException",
          "A valid TimeZone value must be specified. The following TimeZone value is not supported: 'Mars'.")
    error(graph.post(ANN_EVENTS, json=meeting(end={"dateTime": f"{day(0)}T09:00:00", "timeZone": "UTC"})), 400,
          "ErrorCalendarEndDateIsEarlierThanStartDate")
    error(graph.post(ANN_EVENTS, json=meeting(showAs="away")), 400, "BadRequest")
    error(graph.post(ANN_EVENTS, json=meeting(recurrence={"pattern": {"type": "daily", "interval": 1}})), 400,
          "ErrorInvalidRequest")
    error(graph.post(ANN_EVENTS, data=b"[]", headers={"Content-Type": "application/json"}), 400, "BadRequest")


def test_calendar_and_calendar_events_paths(graph: Graph) -> None:
    calendar = ok(graph.get(f"/users/{ANN['mail']}/calendar"), 200, "graph.calendar")
    assert calendar["allowedOnlineMeetingProviders"] == ["teamsForBusiness"] and calendar["isDefaultCalendar"]
    event = ok(graph.post(f"/users/{ANN['mail']}/calendar/events", json=meeting()), 201, "graph.event")
    assert event["id"] in {e["id"] for e in events_of(graph, ANN["mail"])}


def test_control_endpoint_lists_events_as_stored(graph: Graph) -> None:
    event = create(graph, meeting(singleValueExtendedProperties=[{"id": TAG, "value": "bk_9"}]))
    mine = [e for e in stored(graph, ANN["mail"]) if e["id"] == event["id"]]
    assert mine and mine[0]["start"] == {"dateTime": f"{day(1)}T09:00:00.0000000",
                                         "timeZone": "Pacific Standard Time"}
    assert mine[0]["singleValueExtendedProperties"] == [{"id": TAG, "value": "bk_9"}]
    assert [e["subject"] for e in stored(graph, DAN["mail"])] == ["Dan busy"]
    error(graph.session.get(f"{graph.base_url}/_sandbox/users/nobody@nowhere.example/events", timeout=30), 404,
          "ErrorInvalidUser")


# -- in-process: other apps, delegated paths -------------------------------------------------------

def local_client(local: RunningServer, token: str) -> Graph:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(local.sandbox.pki.ca_bundle_path)
    return Graph(local.base_url, token, session)


def test_other_apps_events_are_readable_and_transactions_are_per_app(local: RunningServer) -> None:
    ours = local_client(local, raw_token(local, FABRIKAM))
    theirs = local_client(local, raw_token(local, FABRIKAM, appid=str(uuid.uuid4())))
    transaction = str(uuid.uuid4())
    their_event = ok(theirs.post(ANN_EVENTS, json=meeting(transactionId=transaction)), 201, "graph.event")
    read = ok(ours.get(f"{ANN_EVENTS}/{their_event['id']}"), 200, "graph.event")
    assert read["subject"] == their_event["subject"]
    our_event = ok(ours.post(ANN_EVENTS, json=meeting(transactionId=transaction)), 201, "graph.event")
    assert our_event["id"] != their_event["id"]


def test_me_events_with_a_delegated_token(local: RunningServer) -> None:
    ann = local_client(local, delegated_token(local, FABRIKAM, ANN))
    created = ok(ann.post("/me/events", json=meeting()), 201, "graph.event")
    assert created["@odata.context"].endswith(f"users('{ANN['id']}')/events/$entity")
    also = ok(ann.post("/me/calendar/events", json=meeting()), 201, "graph.event")
    listed = ok(ann.get("/me/calendar/events", params={"$top": "50"}), 200, "graph.event", collection=True)
    assert {created["id"], also["id"]} <= {e["id"] for e in listed["value"]}
    assert ann.delete(f"/me/events/{also['id']}").status_code == 204
    assert ann.post(f"/me/events/{created['id']}/cancel", json={}).status_code == 202
