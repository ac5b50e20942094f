"""Attendees' answers and organizers' changes, through Graph and through the control routes that
stand for what people do in Outlook: accept / tentativelyAccept / decline on the attendee's own
copy, the organizer's item recording the answer, a move resetting everyone's answer, deletes and
cancellations, ``If-Match``, new etags on every change, and the change notifications each fires.

Sources: learn.microsoft.com/graph/api/event-accept, /event-tentativelyaccept, /event-decline
(202 Accepted; comment, sendResponse), /graph/api/event-update, /graph/api/event-delete,
/graph/api/event-cancel, Exchange's response codes (ErrorCalendarIsOrganizerForAccept...,
ErrorIrresolvableConflict); the sandbox's choices are in sandbox/graph/store.py and outlook.py.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from sandbox.receiver import NotificationReceiver
from sandbox.server import RunningServer
from sandbox.testing import SandboxProcess
from tests.support.days import day
from tests.support.sandbox_graph import (
    ANN,
    BEN,
    CAT,
    FABRIKAM,
    IMMUTABLE,
    Graph,
    delegated_token,
    error,
    expires,
    graph_seed,
    ok,
)

pytestmark = pytest.mark.integration

FAST = {"subscriptionValidationTimeoutSeconds": 1, "notificationTimeoutSeconds": 1, "notificationRetries": 1,
        "notificationRetryBaseSeconds": 0.2}
NO_RESPONSE = "0001-01-01T00:00:00Z"  # Graph's "never" for a response time


@pytest.fixture(autouse=True)
def fresh(sandbox: SandboxProcess, hook: NotificationReceiver) -> None:
    sandbox.reset({**graph_seed(), "graph": FAST})
    hook.clear()


def subscribe(graph: Graph, hook: NotificationReceiver, user: dict[str, Any]) -> dict[str, Any]:
    asked = {"changeType": "created,updated,deleted", "notificationUrl": hook.url(f"/{user['mail']}"),
             "resource": f"users/{user['id']}/events", "expirationDateTime": expires(60),
             "clientState": uuid.uuid4().hex}
    return ok(graph.post("/subscriptions", json=asked), 201)


def events(user: dict[str, Any]) -> str:
    return f"/users/{user['id']}/events"


def meeting(**extra: Any) -> dict[str, Any]:
    return {"subject": "10KC: Intro call", "location": {"displayName": "Room 1"},
            "start": {"dateTime": f"{day(1)}T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{day(1)}T09:30:00", "timeZone": "UTC"},
            "attendees": [{"emailAddress": {"address": BEN["mail"], "name": "Ben"}, "type": "required"},
                          {"emailAddress": {"address": CAT["mail"], "name": "Cat"}, "type": "required"}], **extra}


def create(graph: Graph, **extra: Any) -> dict[str, Any]:
    return ok(graph.post(events(ANN), json=meeting(**extra)), 201, "graph.event")


def copy_of(graph: Graph, user: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    [found] = ok(graph.get(events(user), params={"$filter": f"iCalUId eq '{event['iCalUId']}'"}), 200,
                 "graph.event", collection=True)["value"]
    return found


def organizer_view(graph: Graph, event: dict[str, Any]) -> dict[str, Any]:
    return ok(graph.get(f"{events(ANN)}/{event['id']}"), 200, "graph.event")


def status_of(event: dict[str, Any], user: dict[str, Any]) -> dict[str, str]:
    [attendee] = [a for a in event["attendees"] if a["emailAddress"]["address"] == user["mail"]]
    return attendee["status"]


def control(graph: Graph, method: str, path: str, **kwargs: Any) -> requests.Response:
    return graph.session.request(method, f"{graph.base_url}/_sandbox{path}", timeout=30, **kwargs)


def changes(hook: NotificationReceiver, user: dict[str, Any], count: int) -> list[tuple[str, str]]:
    """(changeType, id) of the first ``count`` notifications for ``user``'s mailbox."""
    return [(n["changeType"], n["resourceData"]["id"]) for n in hook.wait_for(count, f"/{user['mail']}")]


@pytest.mark.parametrize(("action", "answer", "show_as"), [("accept", "accepted", "busy"),
                                                           ("tentativelyAccept", "tentativelyAccepted", "tentative")])
def test_an_attendee_answers_on_their_copy(graph: Graph, hook: NotificationReceiver, action: str, answer: str,
                                           show_as: str) -> None:
    event = create(graph)
    subscribe(graph, hook, ANN)
    subscribe(graph, hook, BEN)
    ben_copy = copy_of(graph, BEN, event)
    before = organizer_view(graph, event)
    started = datetime.now(UTC) - timedelta(seconds=1)
    answered = graph.post(f"{events(BEN)}/{ben_copy['id']}/{action}", json={"comment": "See you",
                                                                             "sendResponse": True})
    assert answered.status_code == 202 and not answered.content
    mine = copy_of(graph, BEN, event)
    assert mine["responseStatus"]["response"] == answer and mine["showAs"] == show_as
    assert datetime.fromisoformat(mine["responseStatus"]["time"].replace("Z", "+00:00")) >= started
    after = organizer_view(graph, event)
    assert status_of(after, BEN)["response"] == answer and status_of(after, BEN)["time"] != NO_RESPONSE
    assert status_of(after, CAT) == {"response": "none", "time": NO_RESPONSE}
    # The organizer's item changed: new change key, etag and modification time.
    assert after["changeKey"] != before["changeKey"] and after["@odata.etag"] == f'W/"{after["changeKey"]}"'
    assert after["lastModifiedDateTime"] >= before["lastModifiedDateTime"]
    assert changes(hook, ANN, 1) == [("updated", event["id"])]
    assert changes(hook, BEN, 1) == [("updated", ben_copy["id"])]


def test_a_decline_takes_the_copy_out_of_the_attendees_calendar(graph: Graph, hook: NotificationReceiver) -> None:
    event = create(graph)
    subscribe(graph, hook, ANN)
    subscribe(graph, hook, BEN)
    ben_copy = copy_of(graph, BEN, event)
    immutable_id = ok(graph.get(f"{events(BEN)}/{ben_copy['id']}", headers=IMMUTABLE), 200)["id"]
    assert graph.post(f"{events(BEN)}/{ben_copy['id']}/decline", json={}).status_code == 202
    assert status_of(organizer_view(graph, event), BEN)["response"] == "declined"
    error(graph.get(f"{events(BEN)}/{ben_copy['id']}"), 404, "ErrorItemNotFound")
    kept = ok(graph.get(f"{events(BEN)}/{immutable_id}", headers=IMMUTABLE), 200, "graph.event")
    assert kept["responseStatus"]["response"] == "declined" and kept["showAs"] == "free"
    assert changes(hook, BEN, 1) == [("deleted", ben_copy["id"])]
    assert changes(hook, ANN, 1) == [("updated", event["id"])]
    # Declined is gone: no second answer on it.
    error(graph.post(f"{events(BEN)}/{ben_copy['id']}/accept", json={}), 404, "ErrorItemNotFound")


def test_without_send_response_the_organizer_learns_nothing(graph: Graph, hook: NotificationReceiver) -> None:
    event = create(graph)
    subscribe(graph, hook, ANN)
    before = organizer_view(graph, event)
    ben_copy = copy_of(graph, BEN, event)
    assert graph.post(f"{events(BEN)}/{ben_copy['id']}/accept", json={"sendResponse": False}).status_code == 202
    assert copy_of(graph, BEN, event)["responseStatus"]["response"] == "accepted"
    after = organizer_view(graph, event)
    assert status_of(after, BEN)["response"] == "none" and after["changeKey"] == before["changeKey"]
    assert hook.quiet(0.5, f"/{ANN['mail']}") == []


def test_answers_graph_refuses(graph: Graph) -> None:
    event = create(graph)
    for action, code in (("accept", "ErrorCalendarIsOrganizerForAccept"),
                         ("tentativelyAccept", "ErrorCalendarIsOrganizerForTentative"),
                         ("decline", "ErrorCalendarIsOrganizerForDecline")):
        error(graph.post(f"{events(ANN)}/{event['id']}/{action}", json={}), 400, code)
    ben_copy = copy_of(graph, BEN, event)
    error(graph.post(f"{events(BEN)}/{ben_copy['id']}/accept", json={"note": "x"}), 400, "BadRequest")
    error(graph.post(f"{events(BEN)}/{ben_copy['id']}/accept", json={"sendResponse": "maybe"}), 400, "BadRequest")
    error(graph.post(f"{events(BEN)}/{ben_copy['id']}/decline", json={"proposedNewTime": {}}), 400,
          "ErrorInvalidRequest")
    error(graph.post(f"{events(BEN)}/not-an-id/accept", json={}), 400, "ErrorInvalidIdMalformed")
    # A body is optional; Graph's action names are case-insensitive like its paths.
    assert graph.post(f"{events(BEN)}/{ben_copy['id']}/TentativelyAccept").status_code == 202
    # A cancelled meeting cannot be answered.
    assert graph.post(f"{events(ANN)}/{event['id']}/cancel", json={}).status_code == 202
    error(graph.post(f"{events(BEN)}/{ben_copy['id']}/accept", json={}), 400, "ErrorInvalidRequest")


def test_a_move_by_the_organizer_asks_everyone_again(graph: Graph, hook: NotificationReceiver) -> None:
    event = create(graph)
    ben_copy = copy_of(graph, BEN, event)
    graph.post(f"{events(BEN)}/{ben_copy['id']}/accept", json={})
    cat_copy = copy_of(graph, CAT, event)
    graph.post(f"{events(CAT)}/{cat_copy['id']}/tentativelyAccept", json={})
    # A change that is neither time nor place keeps the answers.
    renamed = ok(graph.patch(f"{events(ANN)}/{event['id']}", json={"subject": "Renamed", "attendees": [
        {"emailAddress": {"address": BEN["mail"]}, "type": "required"},
        {"emailAddress": {"address": CAT["mail"]}, "type": "optional"}]}), 200, "graph.event")
    assert status_of(renamed, BEN)["response"] == "accepted"
    assert status_of(renamed, CAT)["response"] == "tentativelyAccepted"
    assert copy_of(graph, BEN, event)["responseStatus"]["response"] == "accepted"
    subscribe(graph, hook, ANN)
    subscribe(graph, hook, BEN)
    moved = ok(graph.patch(f"{events(ANN)}/{event['id']}", json={
        "start": {"dateTime": f"{day(2)}T14:00:00", "timeZone": "UTC"},
        "end": {"dateTime": f"{day(2)}T15:00:00", "timeZone": "UTC"}}), 200, "graph.event")
    assert all(a["status"] == {"response": "none", "time": NO_RESPONSE} for a in moved["attendees"])
    mine = copy_of(graph, BEN, event)
    assert mine["start"]["dateTime"] == f"{day(2)}T14:00:00.0000000" and mine["end"]["dateTime"].startswith(
        f"{day(2)}T15:00:00")
    assert mine["responseStatus"] == {"response": "notResponded", "time": NO_RESPONSE} and mine["showAs"] == "tentative"
    assert changes(hook, ANN, 1) == [("updated", event["id"])]
    assert changes(hook, BEN, 1) == [("updated", mine["id"])]
    # A new place asks again too.
    graph.post(f"{events(BEN)}/{mine['id']}/accept", json={})
    placed = ok(graph.patch(f"{events(ANN)}/{event['id']}", json={"location": {"displayName": "Room 2"}}), 200)
    assert status_of(placed, BEN)["response"] == "none"
    assert copy_of(graph, BEN, event)["location"]["displayName"] == "Room 2"


def test_if_match(graph: Graph) -> None:
    event = create(graph)
    path = f"{events(ANN)}/{event['id']}"
    current = ok(graph.patch(path, json={"subject": "One"}, headers={"If-Match": event["@odata.etag"]}), 200)
    assert current["@odata.etag"] != event["@odata.etag"] and current["changeKey"] != event["changeKey"]
    stale = {"If-Match": event["@odata.etag"]}
    error(graph.patch(path, json={"subject": "Two"}, headers=stale), 412, "ErrorIrresolvableConflict",
          "The send or update operation could not be performed because the change key passed in the request does "
          "not match the current change key for the item.")
    error(graph.delete(path, headers=stale), 412, "ErrorIrresolvableConflict")
    error(graph.patch(path, json={"subject": "Two"}, headers={"If-Match": current["changeKey"]}), 412,
          "ErrorIrresolvableConflict")  # the tag as Graph gives it, not the bare change key
    assert organizer_view(graph, event)["subject"] == "One"
    # An attendee's answer changes the organizer's item: the etag read before it is stale.
    ben_copy = copy_of(graph, BEN, event)
    graph.post(f"{events(BEN)}/{ben_copy['id']}/accept", json={})
    error(graph.patch(path, json={"subject": "Three"}, headers={"If-Match": current["@odata.etag"]}), 412,
          "ErrorIrresolvableConflict")
    ok(graph.patch(path, json={"subject": "Any"}, headers={"If-Match": "*"}), 200)
    latest = organizer_view(graph, event)
    assert graph.delete(path, headers={"If-Match": latest["@odata.etag"]}).status_code == 204


def test_outlook_respond_move_and_delete_fire_notifications(graph: Graph, hook: NotificationReceiver) -> None:
    event = create(graph)
    subscribe(graph, hook, ANN)
    subscribe(graph, hook, BEN)
    ben_copy = copy_of(graph, BEN, event)
    answered = ok(control(graph, "POST", f"/users/{BEN['mail']}/events/{ben_copy['id']}/respond",
                          json={"response": "accepted"}), 200)
    assert answered["id"] == ben_copy["id"] and answered["responseStatus"]["response"] == "accepted"
    assert status_of(organizer_view(graph, event), BEN)["response"] == "accepted"
    assert changes(hook, ANN, 1) == [("updated", event["id"])]
    assert changes(hook, BEN, 1) == [("updated", ben_copy["id"])]
    # The organizer drags it to another day in Outlook.
    moved = ok(control(graph, "PATCH", f"/users/{ANN['mail']}/events/{event['id']}", json={
        "start": {"dateTime": f"{day(3)}T10:00:00", "timeZone": "Europe/Paris"},
        "end": {"dateTime": f"{day(3)}T11:00:00", "timeZone": "Europe/Paris"}}), 200)
    assert moved["start"] == {"dateTime": f"{day(3)}T10:00:00.0000000", "timeZone": "Europe/Paris"}
    organizer = organizer_view(graph, event)
    assert organizer["start"]["dateTime"] == f"{day(3)}T09:00:00.0000000"  # UTC: Paris is +01:00 then
    assert status_of(organizer, BEN) == {"response": "none", "time": NO_RESPONSE}
    assert copy_of(graph, BEN, event)["start"]["dateTime"] == f"{day(3)}T09:00:00.0000000"
    assert changes(hook, ANN, 2)[1] == ("updated", event["id"])
    assert changes(hook, BEN, 2)[1] == ("updated", ben_copy["id"])
    # Then deletes it: the attendees' copies are cancelled.
    assert control(graph, "DELETE", f"/users/{ANN['mail']}/events/{event['id']}").status_code == 204
    error(graph.get(f"{events(ANN)}/{event['id']}"), 404, "ErrorItemNotFound")
    assert copy_of(graph, BEN, event)["isCancelled"] is True
    assert changes(hook, ANN, 3)[2] == ("deleted", event["id"])
    assert changes(hook, BEN, 3)[2] == ("updated", ben_copy["id"])


def test_outlook_actions_refuse_what_outlook_would(graph: Graph, hook: NotificationReceiver) -> None:
    event = create(graph)
    ben_copy = copy_of(graph, BEN, event)
    url = f"/users/{BEN['mail']}/events/{ben_copy['id']}"
    for bad in ({"response": "maybe"}, {}, {"response": "accepted", "comment": "x"}):
        error(control(graph, "POST", f"{url}/respond", json=bad), 400, "BadRequest")
    error(control(graph, "POST", f"/users/{ANN['mail']}/events/{event['id']}/respond",
                  json={"response": "accepted"}), 400, "ErrorCalendarIsOrganizerForAccept")
    # Only the organizer moves a meeting; only start, end and location.
    when = {"start": {"dateTime": f"{day(2)}T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{day(2)}T10:00:00", "timeZone": "UTC"}}
    error(control(graph, "PATCH", url, json=when), 400, "ErrorInvalidRequest")
    error(control(graph, "PATCH", f"/users/{ANN['mail']}/events/{event['id']}", json={"subject": "x"}), 400,
          "BadRequest")
    error(control(graph, "PATCH", f"/users/{ANN['mail']}/events/{event['id']}", json={
        "start": {"dateTime": f"{day(2)}T12:00:00", "timeZone": "UTC"}}), 400,
        "ErrorCalendarEndDateIsEarlierThanStartDate")
    error(control(graph, "POST", f"/users/nobody@fabrikam.example/events/{ben_copy['id']}/respond",
                  json={"response": "accepted"}), 404, "ErrorInvalidUser")
    error(control(graph, "DELETE", f"/users/{CAT['mail']}/events/{ben_copy['id']}"), 404, "ErrorItemNotFound")
    # An attendee deleting their copy tells the organizer nothing.
    subscribe(graph, hook, ANN)
    before = organizer_view(graph, event)
    assert control(graph, "DELETE", url).status_code == 204
    error(graph.get(f"{events(BEN)}/{ben_copy['id']}"), 404, "ErrorItemNotFound")
    after = organizer_view(graph, event)
    assert after["changeKey"] == before["changeKey"] and status_of(after, BEN)["response"] == "none"
    assert hook.quiet(0.5, f"/{ANN['mail']}") == []


def test_a_cancel_cancels_the_copies_and_notifies(graph: Graph, hook: NotificationReceiver) -> None:
    event = create(graph)
    subscribe(graph, hook, BEN)
    ben_copy = copy_of(graph, BEN, event)
    assert graph.post(f"{events(ANN)}/{event['id']}/cancel", json={"comment": "Sorry"}).status_code == 202
    assert copy_of(graph, BEN, event)["isCancelled"] is True
    assert changes(hook, BEN, 1) == [("updated", ben_copy["id"])]


def test_me_accept_with_a_delegated_token(local: RunningServer, hook: NotificationReceiver) -> None:
    local.sandbox.state.reset({**graph_seed(), "graph": FAST})
    local.sandbox.subscriptions.reset()
    session = requests.Session()
    session.trust_env = False
    session.verify = str(local.sandbox.pki.ca_bundle_path)
    ann = Graph(local.base_url, delegated_token(local, FABRIKAM, ANN), session)
    ben = ann.with_token(delegated_token(local, FABRIKAM, BEN))
    event = ok(ann.post("/me/events", json=meeting()), 201)
    [mine] = ok(ben.get("/me/events", params={"$filter": f"iCalUId eq '{event['iCalUId']}'"}), 200)["value"]
    assert ben.post(f"/me/events/{mine['id']}/accept", json={"comment": "ok"}).status_code == 202
    assert status_of(ok(ann.get(f"/me/events/{event['id']}"), 200), BEN)["response"] == "accepted"
    # Read-only delegated access cannot answer.
    reader = ann.with_token(delegated_token(local, FABRIKAM, CAT, scopes=("Calendars.Read",)))
    [cats] = ok(reader.get("/me/events", params={"$filter": f"iCalUId eq '{event['iCalUId']}'"}), 200)["value"]
    error(reader.post(f"/me/events/{cats['id']}/accept", json={}), 403, "ErrorAccessDenied")
