"""People in the sandbox: a user's object id, userPrincipalName (UPN), mail and proxy addresses,
and which of them each place takes (SANDBOX.md "Additions for callers, identities and Outlook's
own behaviour").

What Microsoft documents and the sandbox follows (see sandbox/graph/auth.py, store.py, schedule.py):
- Graph paths are ``/users/{id | userPrincipalName}``
  (https://learn.microsoft.com/en-us/graph/api/user-get): any other address there, the mail when
  it differs from the UPN or a proxy address, is 404 ``ErrorInvalidUser`` "The requested user
  '<x>' is invalid." on every route.
- getSchedule's ``schedules`` are SMTP addresses
  (https://learn.microsoft.com/en-us/graph/api/calendar-getschedule): any of the user's SMTP
  addresses resolves; the UPN (when not also an SMTP address) and the object id do not (the
  sandbox's harsher reading): they get the per-schedule error 5009. Attendees likewise.
- ID tokens: ``preferred_username`` is the UPN, ``email`` the mail
  (https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference).
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import quote

import jwt
import msal
import pytest
import requests

from sandbox.seed import SeedError, validate_seed
from sandbox.testing import SandboxProcess
from tests.integration.test_sandbox_consent import REDIRECT_URI, open_page, redirect_query, submit
from tests.support.days import day
from tests.support.graph_schema import graph_schema
from tests.support.sandbox_graph import (
    ANN,
    BEN,
    CLIENT_ID,
    FABRIKAM,
    FAY,
    FAY_PROXY,
    FAY_UPN,
    GRAPH,
    SECRET,
    Graph,
    error,
    graph_seed,
    ok,
    window,
)

pytestmark = [pytest.mark.integration,
              # The sandbox answers response_mode=query only (SANDBOX.md); MSAL recommends form_post.
              pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended:UserWarning")]

FAY_MAIL = FAY["mail"]
NOT_PATH_NAMES = [FAY_MAIL, FAY_PROXY, FAY_MAIL.upper(), "smtp:" + FAY_PROXY]
CALENDARS = [f"{GRAPH}/Calendars.ReadWrite"]


def meeting(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"subject": "People check",
                            "start": {"dateTime": f"{day(2)}T14:00:00", "timeZone": "UTC"},
                            "end": {"dateTime": f"{day(2)}T14:30:00", "timeZone": "UTC"}}
    body.update(extra)
    return body


@pytest.fixture(autouse=True)
def seeded(sandbox: SandboxProcess, graph: Graph) -> None:
    sandbox.reset(graph_seed())  # each test starts from the seeded calendars


def stored(graph: Graph, name: str) -> list[dict[str, Any]]:
    response = graph.session.get(f"{graph.base_url}/_sandbox/users/{quote(name)}/events", timeout=30)
    return ok(response, 200)["value"]


def fay_event_id(graph: Graph) -> str:
    events = ok(graph.get(f"/users/{FAY_UPN}/events"), 200, "graph.event", collection=True)["value"]
    [seeded_event] = [e for e in events if e["subject"] == "Fay busy"]
    return str(seeded_event["id"])


# -- Graph paths: id or UPN only --------------------------------------------------------------------

def test_paths_take_the_id_or_the_upn_in_any_case(graph: Graph) -> None:
    by_upn = ok(graph.get(f"/users/{FAY_UPN}/events"), 200, "graph.event", collection=True)
    by_id = ok(graph.get(f"/users/{FAY['id']}/calendar/events"), 200, "graph.event", collection=True)
    by_upper = ok(graph.get(f"/users/{FAY_UPN.upper()}/events"), 200, "graph.event", collection=True)
    assert [e["id"] for e in by_upn["value"]] == [e["id"] for e in by_id["value"]] == \
        [e["id"] for e in by_upper["value"]]
    assert [e["subject"] for e in by_upn["value"]] == ["Fay busy"]
    assert by_upn["@odata.context"].endswith(f"users('{FAY_UPN}')/events")


@pytest.mark.parametrize("name", NOT_PATH_NAMES)
def test_every_users_route_refuses_the_mail_and_proxy_addresses(graph: Graph, name: str) -> None:
    event_id = fay_event_id(graph)
    before = stored(graph, FAY_MAIL)
    message = f"The requested user '{name}' is invalid."
    base = f"/users/{quote(name)}"
    calls = [
        ("GET", f"{base}/events", None),
        ("GET", f"{base}/calendar/events", None),
        ("POST", f"{base}/events", meeting()),
        ("POST", f"{base}/calendar/events", meeting()),
        ("GET", f"{base}/events/{event_id}", None),
        ("PATCH", f"{base}/events/{event_id}", {"subject": "moved by mail"}),
        ("POST", f"{base}/events/{event_id}/cancel", {}),
        ("DELETE", f"{base}/events/{event_id}", None),
        ("GET", f"{base}/calendar", None),
        ("POST", f"{base}/calendar/getSchedule",
         {"schedules": [FAY_MAIL], **window(f"{day(0)}T00:00:00", f"{day(1)}T00:00:00")}),
    ]
    for method, path, body in calls:
        response = graph.request(method, path, json=body) if body is not None else graph.request(method, path)
        error(response, 404, "ErrorInvalidUser", message)
    # Nothing happened to her calendar.
    assert stored(graph, FAY_MAIL) == before
    # The same calls by UPN do reach her mailbox.
    ok(graph.get(f"/users/{FAY_UPN}/events/{event_id}"), 200, "graph.event")
    ok(graph.get(f"/users/{FAY_UPN}/calendar"), 200, "graph.calendar")


def test_batch_requests_resolve_paths_the_same_way(graph: Graph) -> None:
    body = {"requests": [{"id": "1", "method": "GET", "url": f"/users/{FAY_MAIL}/events"},
                         {"id": "2", "method": "GET", "url": f"/users/{FAY_UPN}/events"}]}
    answer = ok(graph.post("/$batch", json=body), 200)
    by_id = {r["id"]: r for r in answer["responses"]}
    assert by_id["1"]["status"] == 404 and by_id["1"]["body"]["error"]["code"] == "ErrorInvalidUser"
    assert by_id["2"]["status"] == 200
    graph_schema().check_collection(by_id["2"]["body"], "graph.event")


# -- schedules and attendees: SMTP addresses only -----------------------------------------------------

def test_schedules_resolve_by_any_smtp_address_not_by_upn_or_id(graph: Graph) -> None:
    names = [FAY_MAIL, FAY_PROXY, FAY_PROXY.upper(), FAY_UPN, FAY["id"]]
    answer = ok(graph.post(f"/users/{FAY_UPN}/calendar/getSchedule", json={
        "schedules": names, "availabilityViewInterval": 60,
        **window(f"{day(0)}T14:00:00", f"{day(0)}T17:00:00")}), 200, "graph.scheduleInformation", collection=True)
    by_name = {s["scheduleId"]: s for s in answer["value"]}
    assert [s["scheduleId"] for s in answer["value"]] == names  # echoed as sent, in order
    for name in (FAY_MAIL, FAY_PROXY, FAY_PROXY.upper()):
        assert by_name[name]["error"] is None
        assert by_name[name]["availabilityView"] == "020"  # "Fay busy" 15:00-16:00 UTC
        assert [i["subject"] for i in by_name[name]["scheduleItems"]] == ["Fay busy"]
    for name in (FAY_UPN, FAY["id"]):
        assert by_name[name]["error"] == {
            "message": f"Unable to resolve e-mail address {name} to an Active Directory object.",
            "responseCode": "5009"}
        assert "availabilityView" not in by_name[name]


def test_an_attendee_invited_by_a_proxy_address_gets_and_keeps_a_copy(graph: Graph) -> None:
    body = meeting(attendees=[{"emailAddress": {"address": FAY_PROXY}, "type": "required"},
                              {"emailAddress": {"address": BEN["mail"]}, "type": "required"}])
    event = ok(graph.post(f"/users/{ANN['mail']}/events", json=body), 201, "graph.event")
    # The organizer's item keeps the address as sent.
    assert [a["emailAddress"]["address"] for a in event["attendees"]] == [FAY_PROXY, BEN["mail"]]
    copies = [e for e in ok(graph.get(f"/users/{FAY_UPN}/events"), 200, "graph.event", collection=True)["value"]
              if e["iCalUId"] == event["iCalUId"]]
    assert len(copies) == 1 and not copies[0]["isOrganizer"] and copies[0]["showAs"] == "tentative"
    # It shows in her free/busy, asked by her mail.
    [info] = ok(graph.post(f"/users/{ANN['mail']}/calendar/getSchedule", json={
        "schedules": [FAY_MAIL], "availabilityViewInterval": 30,
        **window(f"{day(2)}T14:00:00", f"{day(2)}T15:00:00")}), 200, "graph.scheduleInformation",
        collection=True)["value"]
    assert info["availabilityView"] == "10"
    # An update that keeps her (by the proxy address) updates her copy, and does not cancel it.
    ok(graph.patch(f"/users/{ANN['mail']}/events/{event['id']}", json={"subject": "Renamed"}), 200, "graph.event")
    [copy_now] = [e for e in stored(graph, FAY_PROXY) if e["iCalUId"] == event["iCalUId"]]
    assert copy_now["subject"] == "Renamed" and copy_now["isCancelled"] is False
    # Dropping her from the attendees cancels her copy.
    ok(graph.patch(f"/users/{ANN['mail']}/events/{event['id']}", json={
        "attendees": [{"emailAddress": {"address": BEN["mail"]}, "type": "required"}]}), 200, "graph.event")
    [copy_now] = [e for e in stored(graph, FAY_MAIL) if e["iCalUId"] == event["iCalUId"]]
    assert copy_now["isCancelled"] is True


def test_an_attendee_named_by_the_upn_gets_no_copy(graph: Graph) -> None:
    body = meeting(attendees=[{"emailAddress": {"address": FAY_UPN}, "type": "required"}])
    event = ok(graph.post(f"/users/{ANN['mail']}/events", json=body), 201, "graph.event")
    assert not [e for e in stored(graph, FAY_MAIL) if e["iCalUId"] == event["iCalUId"]]


# -- control routes: any name of the user -------------------------------------------------------------

def test_control_routes_take_any_name_of_the_user(graph: Graph) -> None:
    for name in (FAY_MAIL, FAY_PROXY, FAY_UPN, FAY["id"], FAY_MAIL.upper()):
        assert [e["subject"] for e in stored(graph, name)] == ["Fay busy"], name
    revoked = ok(graph.session.post(f"{graph.base_url}/_sandbox/users/{FAY_UPN}/revoke", timeout=30), 200)
    assert revoked["userId"] == FAY["id"] and revoked["tenantId"] == FABRIKAM


# -- sign-in: preferred_username is the UPN, email the mail ---------------------------------------------

@pytest.fixture
def fay_signed_in(graph: Graph) -> tuple[msal.ConfidentialClientApplication, dict[str, Any]]:
    session = requests.Session()  # trusts REQUESTS_CA_BUNDLE, which the graph fixture points at the sandbox
    app = msal.ConfidentialClientApplication(CLIENT_ID, client_credential=SECRET,
                                             authority=f"{graph.base_url}/{FABRIKAM}", instance_discovery=False)
    flow = app.initiate_auth_code_flow(CALENDARS, redirect_uri=REDIRECT_URI, login_hint=FAY_UPN,
                                       response_mode="query")
    form, _ = open_page(session, flow["auth_uri"])
    assert form.selected == [FAY_MAIL]  # the page's accounts are e-mails; the UPN hint picks hers
    result = app.acquire_token_by_auth_code_flow(flow, redirect_query(submit(session, graph.base_url, form,
                                                                              "accept")))
    assert "access_token" in result, result
    return app, result


def test_id_token_names_the_upn_and_the_mail(fay_signed_in: tuple[msal.ConfidentialClientApplication,
                                                                   dict[str, Any]]) -> None:
    app, result = fay_signed_in
    claims = result["id_token_claims"]
    assert claims["oid"] == FAY["id"] and claims["tid"] == FABRIKAM
    assert claims["preferred_username"] == FAY_UPN
    assert claims["email"] == FAY_MAIL
    assert [a["username"] for a in app.get_accounts()] == [FAY_UPN]  # MSAL's username is the UPN
    access = jwt.decode(result["access_token"], options={"verify_signature": False})
    assert access["upn"] == FAY_UPN and access["unique_name"] == FAY_UPN and access["oid"] == FAY["id"]


def test_me_and_own_paths_with_a_signed_in_token(graph: Graph, fay_signed_in: tuple[Any, dict[str, Any]]) -> None:
    fay = graph.with_token(fay_signed_in[1]["access_token"])
    me = ok(fay.get("/me/events"), 200, "graph.event", collection=True)
    assert [e["subject"] for e in me["value"]] == ["Fay busy"]
    calendar = ok(fay.get("/me/calendar"), 200, "graph.calendar")
    assert calendar["owner"] == {"name": FAY["displayName"], "address": FAY_MAIL}
    ok(fay.get(f"/users/{FAY_UPN}/events"), 200, "graph.event", collection=True)
    error(fay.get(f"/users/{FAY_MAIL}/events"), 404, "ErrorInvalidUser",
          f"The requested user '{FAY_MAIL}' is invalid.")
    suggestions = {"attendees": [], "meetingDuration": "PT30M", "timeConstraint": {"activityDomain": "unrestricted",
                   "timeSlots": [{"start": {"dateTime": f"{day(3)}T14:00:00", "timeZone": "UTC"},
                                  "end": {"dateTime": f"{day(3)}T16:00:00", "timeZone": "UTC"}}]}}
    ok(fay.post(f"/users/{FAY_UPN}/findMeetingTimes", json=suggestions), 200, "graph.meetingTimeSuggestionsResult")
    error(fay.post(f"/users/{FAY_PROXY}/findMeetingTimes", json=suggestions), 404, "ErrorInvalidUser")


# -- the seed ------------------------------------------------------------------------------------------

def fabrikam_users(*users: dict[str, Any]) -> dict[str, Any]:
    seed = graph_seed()
    seed["tenants"][0]["users"] = [*seed["tenants"][0]["users"], *copy.deepcopy(list(users))]
    return seed


GUS = {"id": "8c7d6e5f-4a3b-4c2d-8e1f-1a2b3c4d5e6f", "mail": "gus@fabrikam.example", "displayName": "Gus"}


@pytest.mark.parametrize(("extra", "problem"), [
    ({**GUS, "userPrincipalName": FAY_UPN}, f"duplicate user id, userPrincipalName or SMTP address '{FAY_UPN}'"),
    ({**GUS, "proxyAddresses": ["smtp:" + FAY_MAIL]}, f"SMTP address '{FAY_MAIL}'"),
    ({**GUS, "userPrincipalName": FAY_PROXY.upper()}, f"SMTP address '{FAY_PROXY}'"),
    ({**GUS, "proxyAddresses": ["SMTP:" + ANN["mail"].upper()]}, f"SMTP address '{ANN['mail']}'"),
    ({**GUS, "proxyAddresses": ["X500:/o=ExchangeLabs/cn=gus"]}, "only SMTP addresses are modelled"),
    ({**GUS, "proxyAddresses": "gus2@fabrikam.example"}, "/proxyAddresses: must be a list"),
    ({**GUS, "userPrincipalName": "gus"}, "/userPrincipalName: must be an e-mail address"),
])
def test_a_name_used_twice_or_malformed_is_a_seed_error(sandbox: SandboxProcess, graph: Graph,
                                                        extra: dict[str, Any], problem: str) -> None:
    response = sandbox.session().post(f"{sandbox.base_url}/_sandbox/reset", json=fabrikam_users(extra))
    body = error(response, 400, "BadRequest")
    assert problem in body["message"], body["message"]
    # The failed reset changed nothing: Fay is still there, by her UPN.
    ok(graph.get(f"/users/{FAY_UPN}/events"), 200, "graph.event", collection=True)


def test_seed_normalises_names_and_groups_take_any_name() -> None:
    seed = {"tenants": [{"tenantId": FABRIKAM, "domain": "fabrikam.example",
                         "groups": [{"id": "72d67c36-c17b-4a80-8c6b-b677302e7aaf", "mail": "g@fabrikam.example",
                                     "members": ["GUS.Two@Fabrikam.Example", "fay.upn@fabrikam.example"]}],
                         "users": [{**GUS, "userPrincipalName": "Gus.UPN@Fabrikam.Example",
                                    "proxyAddresses": ["SMTP:Gus@Fabrikam.Example", "smtp:Gus.Two@fabrikam.example",
                                                       "gus.three@fabrikam.example", "gus.two@FABRIKAM.example"]},
                                   {**FAY, "userPrincipalName": "fay.upn@fabrikam.example", "events": []},
                                   {"id": "9d8e7f6a-5b4c-4d3e-8f2a-2b3c4d5e6f7a", "mail": "hal@fabrikam.example"}]}]}
    users = validate_seed(seed, require_home=False, current_app_ids=set())["tenants"][0]
    gus, fay, hal = users["users"]
    assert gus["userPrincipalName"] == "gus.upn@fabrikam.example"
    assert gus["proxyAddresses"] == ["gus.two@fabrikam.example", "gus.three@fabrikam.example"]  # mail dropped
    assert fay["proxyAddresses"] == [FAY_PROXY]
    assert hal["userPrincipalName"] == "hal@fabrikam.example" and hal["proxyAddresses"] == []  # defaults
    assert users["groups"][0]["members"] == [GUS["mail"], FAY_MAIL]
    with pytest.raises(SeedError, match="is not a user"):
        validate_seed({"tenants": [{**seed["tenants"][0], "groups": [
            {"id": "72d67c36-c17b-4a80-8c6b-b677302e7aaf", "mail": "g@fabrikam.example",
             "members": ["nobody@fabrikam.example"]}]}]}, require_home=False, current_app_ids=set())
