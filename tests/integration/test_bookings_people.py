"""People as the contract names them (API.md, Conventions): object id, user principal name or
e-mail address, where the UPN is not the mail.

Fay's sign-in name (UPN) is ffischer@<tenant>.onmicrosoft.example, her mailbox's primary SMTP
address fay.fischer@<domain>, and she also receives mail at fay@<domain> (a proxy address). Graph's
`/users/{x}` paths take only her object id or UPN; getSchedule and invitations take SMTP addresses.
In domain mode an organizer named by an address no path resolves is 422 `person_not_found`; a
delegated member is known by all three names from her ID token. And a member whose stored
refresh token is gone behind the service's back must reconnect: 409, never a 500."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from tests.support.consent_pages import admin_consent, connect_member, parse_page
from tests.support.days import at

DOMAIN = "c1c2c3c4-0000-4000-8000-0000000000e1"
DELEGATED = "c1c2c3c4-0000-4000-8000-0000000000e2"
NEW_YORK = "America/New_York"
WORKING_HOURS = {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                 "startTime": "08:00:00", "endTime": "17:00:00"}


def person(uid: int, mail: str, *, upn: str | None = None, proxies=(), events=(), admin=False):
    user = {"id": f"c1c2c3c4-0000-4000-8000-{uid:012d}", "mail": mail, "displayName": mail.split("@")[0],
            "timeZone": NEW_YORK, "isAdmin": admin, "workingHours": WORKING_HOURS,
            "events": [{"subject": "existing", "start": s, "end": e, "showAs": "busy"} for s, e in events]}
    if upn:
        user["userPrincipalName"] = upn
    if proxies:
        user["proxyAddresses"] = list(proxies)
    return user


def fay(uid: int, domain: str, tenant: str, events=()):
    return person(uid, f"fay.fischer@{domain}", upn=f"ffischer@{tenant}.onmicrosoft.example",
                  proxies=[f"smtp:fay@{domain}"], events=events)


# Domain mode (litware): Fay is busy 10:00-11:00 New York on DAY, Hal 12:00-13:00.
FAY = fay(41, "litware.example", "litware", events=[(at(0, "10:00:00-05:00"), at(0, "11:00:00-05:00"))])
FAY_ID, FAY_UPN, FAY_MAIL, FAY_PROXY = (FAY["id"], FAY["userPrincipalName"], FAY["mail"], "fay@litware.example")
GUS = "gus@litware.example"
HAL_MAIL, HAL_PROXY = "hal.hughes@litware.example", "hal@litware.example"
# Delegated mode (tailwind).
FAY2 = fay(51, "tailwind.example", "tailwind")
FAY2_ID, FAY2_UPN, FAY2_MAIL = FAY2["id"], FAY2["userPrincipalName"], FAY2["mail"]
IVY, JON = "ivy@tailwind.example", "jon@tailwind.example"

TENANTS = [
    {"tenantId": DOMAIN, "domain": "litware.example",
     "users": [person(40, GUS, admin=True), FAY,
               person(42, HAL_MAIL, proxies=[f"smtp:{HAL_PROXY}"],
                      events=[(at(0, "12:00:00-05:00"), at(0, "13:00:00-05:00"))])]},
    {"tenantId": DELEGATED, "domain": "tailwind.example",
     "users": [person(50, IVY, admin=True), FAY2, person(52, JON)]},
]


@pytest.fixture
def people(api, sandbox, short_write_window):
    sandbox.reset({"tenants": TENANTS})
    admin_consent(api, sandbox, DOMAIN, GUS)
    return api


@pytest.fixture
def delegated(people, sandbox):
    admin_consent(people, sandbox, DELEGATED, IVY, mode="delegated")
    return people


def book(api, tenant, key, clock="09:00", minutes=30, **body):
    hour, minute = (int(part) for part in clock.split(":"))
    end = hour * 60 + minute + minutes
    base = {"attendees": [GUS] if tenant == DOMAIN else [JON], "timeZone": NEW_YORK, "subject": "People",
            "start": at(0, f"{clock}:00-05:00"), "end": at(0, f"{end // 60:02d}:{end % 60:02d}:00-05:00")}
    return api.post(f"/tenants/{tenant}/bookings", json=base | body, headers={"Idempotency-Key": key})


def ask(api, tenant, **body):
    base = {"attendees": [GUS], "start": at(0, "09:00:00-05:00"), "end": at(0, "13:00:00-05:00"),
            "durationMinutes": 30, "timeZone": NEW_YORK, "slotStepMinutes": 30}
    return api.post(f"/tenants/{tenant}/availability", json=base | body)


def booked_events(sandbox, email):
    answer = sandbox.session().get(f"{sandbox.base_url}/_sandbox/users/{email}/events", timeout=10)
    assert answer.status_code == 200, answer.text
    return [e for e in answer.json()["value"] if e["subject"] != "existing"]


def creates(sandbox, since):
    return [e for e in sandbox.requests(since=since) if e["method"] == "POST" and e["path"].endswith("/events")]


def error_of(answer, status, code, target=None):
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code, error
    if target is not None:
        assert error.get("target") == target, error
    return error


# -- domain mode ---------------------------------------------------------------------------------

def test_an_organizer_named_by_upn_or_object_id_books_in_her_own_calendar(people, sandbox):
    since = sandbox.next_request_index()
    by_upn = book(people, DOMAIN, "upn-1", organizer=FAY_UPN.upper())
    assert by_upn.status_code == 201, by_upn.text
    assert by_upn.json()["organizer"] == FAY_UPN  # as the caller named her (lower-cased)
    assert by_upn.json()["attendees"] == [{"email": GUS, "response": "none"}]
    assert [unquote(e["path"]) for e in creates(sandbox, since)] == [f"/v1.0/users/{FAY_UPN}/events"]
    mine, invited = booked_events(sandbox, FAY_MAIL), booked_events(sandbox, GUS)
    assert len(mine) == 1 and mine[0]["isOrganizer"] is True
    assert [e["iCalUId"] for e in invited] == [mine[0]["iCalUId"]]

    # The re-check reads her schedule by her SMTP address: her own busy time (10-11) and the
    # meeting just booked (9-9:30) count, whichever name the caller uses.
    error_of(book(people, DOMAIN, "upn-2", "10:30", organizer=FAY_UPN), 409, "slot_unavailable", "organizer")
    error_of(book(people, DOMAIN, "oid-2", "09:15", organizer=FAY_ID.upper()), 409, "slot_unavailable",
             "organizer")

    since = sandbox.next_request_index()
    by_id = book(people, DOMAIN, "oid-1", "11:00", organizer=FAY_ID)
    assert by_id.status_code == 201, by_id.text
    assert by_id.json()["organizer"] == FAY_ID
    assert [unquote(e["path"]) for e in creates(sandbox, since)] == [f"/v1.0/users/{FAY_ID}/events"]
    assert len(booked_events(sandbox, FAY_MAIL)) == 2 and len(booked_events(sandbox, GUS)) == 2

    # Read back and cancel go to the same mailbox, however it was named.
    read = people.get(f"/tenants/{DOMAIN}/bookings/{by_upn.json()['bookingId']}")
    assert read.status_code == 200 and read.json()["status"] == "confirmed", read.text
    cancelled = people.delete(f"/tenants/{DOMAIN}/bookings/{by_id.json()['bookingId']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled", cancelled.text
    assert sorted(e["isCancelled"] for e in booked_events(sandbox, GUS)) == [False, True]


@pytest.mark.parametrize("name", [FAY_MAIL, FAY_MAIL.upper(), FAY_PROXY, "nobody@litware.example"])
def test_an_organizer_named_by_an_address_no_graph_path_takes_is_422(people, sandbox, name):
    since = sandbox.next_request_index()
    for answer in (book(people, DOMAIN, "mail-1", organizer=name), ask(people, DOMAIN, organizer=name)):
        error = error_of(answer, 422, "person_not_found", "organizer")
        assert "object id" in error["message"] and "user principal name" in error["message"], error
    assert creates(sandbox, since) == []
    assert booked_events(sandbox, FAY_MAIL) == [] and booked_events(sandbox, GUS) == []
    # Nothing happened in Graph, so the key is free: the same key, with her UPN, books.
    again = book(people, DOMAIN, "mail-1", organizer=FAY_UPN)
    assert again.status_code == 201, again.text
    assert len(booked_events(sandbox, FAY_MAIL)) == 1


@pytest.mark.parametrize("name", [FAY_UPN, FAY_ID])
def test_availability_with_the_organizer_named_by_upn_or_object_id(people, sandbox, name):
    """Fay is busy 10-11 and Hal (asked for by his proxy address) 12-13; each is listed as the
    caller named them."""
    answer = ask(people, DOMAIN, organizer=name, attendees=[GUS, HAL_PROXY])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["participants"] == [{"email": name, "status": "ok"}, {"email": GUS, "status": "ok"},
                                    {"email": HAL_PROXY, "status": "ok"}]
    assert [s["start"] for s in body["slots"]] == [at(0, f"{c}:00-05:00") for c in ("09:00", "09:30", "11:00",
                                                                                    "11:30")]


def test_an_attendee_named_by_a_proxy_address_is_invited(people, sandbox):
    answer = book(people, DOMAIN, "proxy-1", "14:00", organizer=FAY_UPN, attendees=[HAL_PROXY.upper()])
    assert answer.status_code == 201, answer.text
    assert answer.json()["attendees"] == [{"email": HAL_PROXY, "response": "none"}]
    mine, copies = booked_events(sandbox, FAY_MAIL), booked_events(sandbox, HAL_MAIL)
    assert len(mine) == 1 and [e["iCalUId"] for e in copies] == [mine[0]["iCalUId"]]
    assert copies[0]["isOrganizer"] is False
    read = people.get(f"/tenants/{DOMAIN}/bookings/{answer.json()['bookingId']}")
    assert read.status_code == 200, read.text
    assert read.json()["attendees"] == [{"email": HAL_PROXY, "response": "none"}]
    # Hal is busy 12-13: the re-check asks for his schedule by the proxy address too.
    error_of(book(people, DOMAIN, "proxy-2", "12:30", organizer=FAY_UPN, attendees=[HAL_PROXY]), 409,
             "slot_unavailable", "attendees")


# -- delegated mode ------------------------------------------------------------------------------

def connect_with_hint(api, sandbox, tenant, hint, expected_account):
    """A member connects with `loginHint` set; Microsoft's page must preselect her account (by
    UPN, as Microsoft's sign-in takes it, or any other name of hers)."""
    link = api.post(f"/tenants/{tenant}/consent",
                    json={"kind": "user", "returnUrl": "http://127.0.0.1:3000/me", "loginHint": hint})
    assert link.status_code == 201, link.text
    path = urlsplit(link.json()["redirectUrl"])
    to_microsoft = api.get(path.path.removeprefix("/api") + "?" + path.query)
    assert to_microsoft.status_code == 302, to_microsoft.text
    location = to_microsoft.headers["Location"]
    session = sandbox.session()
    page = session.get(location, allow_redirects=False)
    assert page.status_code == 200, page.text
    form, _ = parse_page(page.text)
    assert form.hidden.get("login_hint", "").lower() == hint.lower()
    assert form.selected == [expected_account]
    parts = urlsplit(location)
    answer = session.post(f"{parts.scheme}://{parts.netloc}{form.action}",
                          data=form.hidden | {"account": form.selected[0], "action": "accept"},
                          allow_redirects=False)
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    done = api.get(back.path.removeprefix("/api") + "?" + back.query)
    assert done.status_code == 200, done.text


def test_a_delegated_member_is_known_by_object_id_upn_and_mail(delegated, sandbox):
    error_of(book(delegated, DELEGATED, "dlg-0", organizer=FAY2_UPN), 409, "user_not_connected", "organizer")
    connect_with_hint(delegated, sandbox, DELEGATED, FAY2_UPN, FAY2_MAIL)
    for name in (FAY2_ID, FAY2_ID.upper(), FAY2_UPN, FAY2_UPN.upper(), FAY2_MAIL, FAY2_MAIL.upper()):
        member = delegated.get(f"/tenants/{DELEGATED}/users/{name}")
        assert member.status_code == 200, member.text
        assert member.json() | {"connectedAt": None, "lastRefreshAt": None} == {
            "userId": FAY2_ID, "email": FAY2_MAIL, "status": "connected", "connectedAt": None,
            "lastRefreshAt": None}, (name, member.json())
    assert delegated.get(f"/tenants/{DELEGATED}").json()["connectedUsers"] == 1

    since = sandbox.next_request_index()
    for key, clock, name in [("dlg-mail", "09:00", FAY2_MAIL), ("dlg-upn", "10:00", FAY2_UPN),
                             ("dlg-oid", "11:00", FAY2_ID.upper())]:
        answer = book(delegated, DELEGATED, key, clock, organizer=name)
        assert answer.status_code == 201, (name, answer.text)
        assert answer.json()["organizer"] == name.lower()
    assert [(e["path"], e["status"]) for e in creates(sandbox, since)] == [("/v1.0/me/events", 201)] * 3
    mine, invited = booked_events(sandbox, FAY2_MAIL), booked_events(sandbox, JON)
    assert len(mine) == 3 and sorted(e["iCalUId"] for e in invited) == sorted(e["iCalUId"] for e in mine)
    # One member, one calendar: a booking under another of her names sees the ones made before.
    error_of(book(delegated, DELEGATED, "dlg-again", "09:15", organizer=FAY2_UPN), 409, "slot_unavailable",
             "organizer")


def connected_member_row():
    from shared.clients import repositories

    user = repositories().member(DELEGATED, FAY2_ID)
    assert user is not None and user.status == "connected" and user.secretName and user.secretVersion
    return user


@pytest.mark.parametrize(("lost", "first"), [("deleted", "booking"), ("disabled", "availability")])
def test_a_member_whose_stored_token_is_lost_must_reconnect(delegated, sandbox, lost, first):
    """Her refresh token's secret is deleted (or its current version disabled) in Key Vault behind
    the service's back: bookings and availability with her as organizer are 409
    `user_not_connected` (never a 500), and she shows as `needs_reconnect` until she reconnects."""
    from shared.clients import secret_store

    connect_member(delegated, sandbox, DELEGATED, FAY2_MAIL)
    user = connected_member_row()
    if lost == "deleted":
        secret_store().delete(user.secretName)
    else:
        secret_store().disable(user.secretName, user.secretVersion)

    since = sandbox.next_request_index()
    calls = {"booking": lambda: book(delegated, DELEGATED, "lost-1", organizer=FAY2_UPN),
             "availability": lambda: ask(delegated, DELEGATED, organizer=FAY2_MAIL, attendees=[JON])}
    for what in (first, *(c for c in calls if c != first)):
        error_of(calls[what](), 409, "user_not_connected", "organizer")
    assert [e for e in sandbox.requests(since=since) if e["path"].startswith("/v1.0/")] == []  # no Graph call
    assert booked_events(sandbox, FAY2_MAIL) == []
    member = delegated.get(f"/tenants/{DELEGATED}/users/{FAY2_ID}")
    assert member.status_code == 200 and member.json()["status"] == "needs_reconnect", member.text
    tenant = delegated.get(f"/tenants/{DELEGATED}").json()
    assert (tenant["connectedUsers"], tenant["usersNeedingReconnect"]) == (0, 1)

    # She reconnects: a new token under a new name, and the key that failed books now.
    connect_member(delegated, sandbox, DELEGATED, FAY2_MAIL)
    assert connected_member_row().secretName != user.secretName
    again = book(delegated, DELEGATED, "lost-1", organizer=FAY2_UPN)
    assert again.status_code == 201, again.text
    assert len(booked_events(sandbox, FAY2_MAIL)) == 1


def invited_addresses(sandbox, organizer_mail):
    (event,) = booked_events(sandbox, organizer_mail)
    return sorted(a["emailAddress"]["address"].lower() for a in event["attendees"])


@pytest.mark.parametrize("name", [FAY_UPN, FAY_ID])
def test_an_organizer_named_by_upn_or_object_id_is_not_invited_to_her_own_meeting(people, sandbox, name):
    """Attendees are counted without the organizer (API.md, availability and bookings), whichever
    name the caller gave her: her primary SMTP address, which Graph names as her calendar's
    owner, is dropped from the attendees too. Alone, she leaves no one to invite: 400, nothing
    sent, and the key is free for the request put right."""
    since = sandbox.next_request_index()
    alone = book(people, DOMAIN, "self", organizer=name, attendees=[FAY_MAIL.upper()])
    error_of(alone, 400, "invalid_request", "attendees")
    assert creates(sandbox, since) == [] and booked_events(sandbox, FAY_MAIL) == []

    answer = book(people, DOMAIN, "self", organizer=name, attendees=[FAY_MAIL.upper(), GUS])
    assert answer.status_code == 201, answer.text
    assert answer.json()["attendees"] == [{"email": GUS, "response": "none"}]
    assert invited_addresses(sandbox, FAY_MAIL) == [GUS]
    stored = people.get(f"/tenants/{DOMAIN}/bookings/{answer.json()['bookingId']}").json()
    assert stored["attendees"] == [{"email": GUS, "response": "none"}]
    # Replayed with its key, the same booking; no second event.
    replay = book(people, DOMAIN, "self", organizer=name, attendees=[FAY_MAIL.upper(), GUS])
    assert replay.status_code == 200 and replay.json()["bookingId"] == answer.json()["bookingId"], replay.text
    assert len(creates(sandbox, since)) == 1


def test_a_delegated_member_is_not_invited_to_her_own_meeting(delegated, sandbox):
    connect_with_hint(delegated, sandbox, DELEGATED, FAY2_UPN, FAY2_MAIL)
    error_of(book(delegated, DELEGATED, "dlg-self", organizer=FAY2_ID, attendees=[FAY2_MAIL]), 400,
             "invalid_request", "attendees")
    answer = book(delegated, DELEGATED, "dlg-self", organizer=FAY2_UPN, attendees=[JON, FAY2_MAIL.upper()])
    assert answer.status_code == 201, answer.text
    assert answer.json()["attendees"] == [{"email": JON, "response": "none"}]
    assert invited_addresses(sandbox, FAY2_MAIL) == [JON]
