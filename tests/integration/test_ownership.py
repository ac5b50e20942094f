"""Who owns a tenant: claims that never block each other, ownership made only by a proven admin
consent, callbacks that cannot be forged, and a tenant's admin moving it to another organization.

Each organization is the web app acting for it (`api.acting_for`); each browser is a pair of
sessions (one on the service, one on the sandbox) with their own cookie jars."""

import threading
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.support.callers import caller_token
from tests.support.consent_pages import browse, click_through, follow, microsoft_browser, service_path

FABRIKAM = "2b9e56f8-499e-4153-949c-a7aeb479f07e"  # the app is consented here (seed); Ann is its admin
LITWARE = "7e1c2b3a-5d4f-4e6a-9b8c-0d1e2f3a4b5c"  # Dana (Global Administrator), Eve, Cam (Cloud App Admin)
RETURN = "http://127.0.0.1:3000/admin/integrations"
ANN = "ann@fabrikam.example"


@pytest.fixture
def org(api, host, sandbox):
    """`org("org-squat")`: a new browser-less web-app session acting for that organization (its own
    cookie jar, so it is also a browser of its own on the service)."""
    from tools.hosts import HostApi

    made = []

    def make(organization: str) -> HostApi:
        session = HostApi(host.base_url, {"Authorization": f"Bearer {caller_token(sandbox)}",
                                          "X-Organization-Id": organization})
        made.append(session)
        return session

    yield make
    for session in made:
        session.close()


def put(api, tenant, mode="domain", name=None):
    return api.put(f"/tenants/{tenant}", json={"mode": mode} | ({"organizationName": name} if name else {}))


def link_for(api, tenant):
    answer = api.post(f"/tenants/{tenant}/consent", json={"kind": "admin", "returnUrl": RETURN})
    assert answer.status_code == 201, answer.text
    return answer.json()


def open_link(api, link):
    answer = api.get(service_path(link["redirectUrl"]))
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def state_of(url):
    return parse_qs(urlsplit(url).query)["state"][0]


def consented(tenant, state):
    return "http://127.0.0.1:7071/api/consent/callback?" + urlencode(
        {"admin_consent": "True", "tenant": tenant, "state": state, "scope": "https://graph.microsoft.com/.default"})


def owner_row(tenant):
    from shared.clients import repositories

    return repositories().tenant(tenant)


def test_claims_never_block_and_each_organization_sees_only_its_own(org):
    squatter, rightful = org("org-squat"), org("org-42")
    first = put(squatter, FABRIKAM, name="Not Fabrikam")
    assert first.status_code == 201
    second = put(rightful, FABRIKAM, mode="delegated", name="Fabrikam on 10KC")
    assert second.status_code == 201  # the squatter's claim blocks nobody
    assert put(rightful, FABRIKAM, mode="delegated", name="Fabrikam on 10KC").status_code == 200
    mine, theirs = rightful.get(f"/tenants/{FABRIKAM}").json(), squatter.get(f"/tenants/{FABRIKAM}").json()
    assert (mine["organizationId"], mine["organizationName"], mine["mode"]) == ("org-42", "Fabrikam on 10KC",
                                                                              "delegated")
    assert (theirs["organizationId"], theirs["organizationName"], theirs["mode"]) == ("org-squat", "Not Fabrikam",
                                                                                    "domain")
    assert mine["status"] == theirs["status"] == "pending_consent"
    assert owner_row(FABRIKAM) is None  # nobody owns it until a consent is proven
    assert org("org-none").get(f"/tenants/{FABRIKAM}").status_code == 404


def test_the_squatter_loses_the_moment_the_real_admin_consents(org, sandbox):
    squatter, rightful = org("org-squat"), org("org-42")
    put(squatter, FABRIKAM, name="Not Fabrikam")
    squatter_link = link_for(squatter, FABRIKAM)
    put(rightful, FABRIKAM, name="Fabrikam on 10KC")
    answer = browse(rightful, microsoft_browser(sandbox), link_for(rightful, FABRIKAM)["redirectUrl"], ANN)
    assert answer.status_code == 200 and "Fabrikam on 10KC" in answer.text and "Not Fabrikam" not in answer.text
    assert rightful.get(f"/tenants/{FABRIKAM}").json()["status"] == "enabled"
    # The squatter's view ends: every route answers as for an unknown tenant, its PUT says why.
    for path in (f"/tenants/{FABRIKAM}", f"/tenants/{FABRIKAM}/consent/{squatter_link['consentRequestId']}",
                 f"/tenants/{FABRIKAM}/users"):
        gone = squatter.get(path)
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "tenant_not_found", path
    assert squatter.post(f"/tenants/{FABRIKAM}/consent",
                         json={"kind": "admin", "returnUrl": RETURN}).status_code == 404
    again = put(squatter, FABRIKAM, name="Not Fabrikam")
    assert again.status_code == 409 and again.json()["error"]["code"] == "tenant_owned_elsewhere"
    # A newcomer's claim is refused as well.
    assert put(org("org-late"), FABRIKAM).status_code == 409


def test_a_link_opened_before_another_organization_won_ends_in_409(org, sandbox):
    squatter, rightful = org("org-squat"), org("org-42")
    put(squatter, FABRIKAM, name="Squat")
    put(rightful, FABRIKAM, name="Fabrikam on 10KC")
    squat_link = link_for(squatter, FABRIKAM)
    to_microsoft = open_link(squatter, squat_link)  # opened before the ownership
    browse(rightful, microsoft_browser(sandbox), link_for(rightful, FABRIKAM)["redirectUrl"], ANN)
    microsoft = microsoft_browser(sandbox)
    answer = follow(squatter, microsoft, click_through(microsoft, to_microsoft, ANN), ANN)
    assert answer.status_code == 409 and "connected to another 10KC organization" in answer.text
    assert "consent=failed" in answer.text
    assert owner_row(FABRIKAM).organizationId == "org-42"


@pytest.mark.parametrize("mode", ["domain", "delegated"])
def test_hand_made_cookieless_replayed_and_other_browser_callbacks_change_nothing(org, sandbox, mode):
    """Fabrikam already has the app's consent, so an app-only token would prove 'someone consented':
    the squatter's own link, callbacks made by hand, and every trick with cookies and states leave
    the tenant unowned, and the real admin then completes the same link's consent."""
    squatter, rightful = org("org-squat"), org("org-42")
    put(squatter, FABRIKAM, mode=mode)
    put(rightful, FABRIKAM, mode=mode, name="Fabrikam on 10KC")
    rightful_link = link_for(rightful, FABRIKAM)
    real_location = open_link(rightful, rightful_link)  # the real admin's browser

    # The squatter holds the rightful link too (say, forwarded): it opens it in its own browser.
    attacker = org("org-42")  # the web app's session, but its own cookie jar: another browser
    stolen_location = open_link(attacker, rightful_link)
    # Hand-made callbacks from a client without the cookie: refused, and nothing is used up.
    for location in (real_location, stolen_location):
        bare = org("org-none").get(service_path(consented(FABRIKAM, state_of(location))))
        assert bare.status_code == 400 and "not valid" in bare.text
    other_browser = attacker.get(service_path(consented(FABRIKAM, state_of(real_location))))
    assert other_browser.status_code == 400  # the real admin's state with the attacker's cookie
    # The attacker's own state, answered by hand: it passes the cookie, then must sign in as an
    # admin of Fabrikam; its browser has no session there, and it cannot be Ann: it gives up.
    attacker_microsoft = microsoft_browser(sandbox)
    to_sign_in = attacker.get(service_path(consented(FABRIKAM, state_of(stolen_location))))
    assert to_sign_in.status_code == 302
    silent = attacker_microsoft.get(to_sign_in.headers["Location"], allow_redirects=False)
    assert "error=login_required" in silent.headers["Location"]
    again = attacker.get(service_path(silent.headers["Location"]))
    cancelled = click_through(attacker_microsoft, again.headers["Location"], ANN, "cancel")
    assert attacker.get(service_path(cancelled)).status_code == 403
    # The squatter's own link, with hand-made callbacks, fares no better.
    squat_location = open_link(squatter, link_for(squatter, FABRIKAM))
    squat_sign_in = squatter.get(service_path(consented(FABRIKAM, state_of(squat_location))))
    squat_microsoft = microsoft_browser(sandbox)
    silent = squat_microsoft.get(squat_sign_in.headers["Location"], allow_redirects=False)
    assert "error=login_required" in silent.headers["Location"]
    replay = squatter.get(service_path(consented(FABRIKAM, state_of(squat_location))))
    assert replay.status_code == 400  # a state is used once
    assert owner_row(FABRIKAM) is None
    assert squatter.get(f"/tenants/{FABRIKAM}").json()["status"] == "pending_consent"

    # The rightful link was used up by the attacker's browser (its callback had a valid cookie), so
    # the real admin starts again from 10KC, and wins.
    answer = browse(rightful, microsoft_browser(sandbox), link_for(rightful, FABRIKAM)["redirectUrl"], ANN)
    assert answer.status_code == 200, answer.text
    assert owner_row(FABRIKAM).organizationId == "org-42"
    assert squatter.get(f"/tenants/{FABRIKAM}").status_code == 404


def test_a_callback_without_the_cookie_does_not_use_the_request_up(org, sandbox):
    rightful = org("org-42")
    put(rightful, FABRIKAM)
    link = link_for(rightful, FABRIKAM)
    location = open_link(rightful, link)
    microsoft = microsoft_browser(sandbox)
    back = click_through(microsoft, location, ANN)
    # Someone who saw the answer's URL (a proxy log, say) replays it from a cookie-less client first.
    assert org("org-none").get(service_path(back)).status_code == 400
    to_sign_in = rightful.get(service_path(back))
    assert to_sign_in.status_code == 302
    # The sign-in's callback is bound to the same browser.
    silent = microsoft.get(to_sign_in.headers["Location"], allow_redirects=False)
    assert "code=" in silent.headers["Location"]
    assert org("org-none").get(service_path(silent.headers["Location"])).status_code == 400
    answer = rightful.get(service_path(silent.headers["Location"]))
    assert answer.status_code == 200, answer.text
    assert rightful.get(f"/tenants/{FABRIKAM}/consent/{link['consentRequestId']}").json()["status"] == "completed"


def test_two_organizations_completing_consent_in_a_race_make_exactly_one_owner(org, sandbox):
    orgs = [org(f"org-race-{n}") for n in range(2)]
    microsofts = [microsoft_browser(sandbox) for _ in orgs]
    sign_ins = []
    for api, microsoft in zip(orgs, microsofts, strict=True):
        put(api, FABRIKAM)
        location = open_link(api, link_for(api, FABRIKAM))
        to_sign_in = api.get(service_path(click_through(microsoft, location, ANN)))
        silent = microsoft.get(to_sign_in.headers["Location"], allow_redirects=False)
        sign_ins.append(service_path(silent.headers["Location"]))
    answers: list = [None, None]
    gate = threading.Barrier(2)

    def finish(index: int) -> None:
        gate.wait()
        answers[index] = orgs[index].get(sign_ins[index])

    threads = [threading.Thread(target=finish, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 409], [a.text for a in answers]
    winner = next(n for n in range(2) if answers[n].status_code == 200)
    assert owner_row(FABRIKAM).organizationId == f"org-race-{winner}"
    assert orgs[1 - winner].get(f"/tenants/{FABRIKAM}").status_code == 404
    assert orgs[winner].get(f"/tenants/{FABRIKAM}").json()["status"] == "enabled"


def test_the_tenants_admin_moves_it_to_another_organization(org, sandbox):
    from shared.clients import repositories

    first, chosen = org("org-first"), org("org-chosen")
    put(chosen, FABRIKAM, mode="delegated", name="Chosen")  # its claim, before any ownership
    chosen_link = link_for(chosen, FABRIKAM)
    put(first, FABRIKAM, mode="delegated", name="First")
    browse(first, microsoft_browser(sandbox), link_for(first, FABRIKAM)["redirectUrl"], ANN)
    member = first.post(f"/tenants/{FABRIKAM}/consent",
                        json={"kind": "user", "returnUrl": RETURN, "loginHint": ANN}).json()
    assert browse(first, microsoft_browser(sandbox), member["redirectUrl"], ANN).status_code == 200
    assert first.get(f"/tenants/{FABRIKAM}/users/{ANN}").json()["status"] == "connected"
    refs = list(repositories().secret_refs(FABRIKAM))
    assert len(refs) == 1
    assert chosen.get(f"/tenants/{FABRIKAM}").status_code == 404  # its claim ended with the ownership

    # The tenant's admin opens the chosen organization's link, after the ownership, and proves it.
    answer = browse(chosen, microsoft_browser(sandbox), chosen_link["redirectUrl"], ANN)
    assert answer.status_code == 200 and "Chosen" in answer.text
    view = chosen.get(f"/tenants/{FABRIKAM}").json()
    assert (view["organizationId"], view["organizationName"], view["status"]) == ("org-chosen", "Chosen", "enabled")
    assert view["connectedUsers"] == 0
    assert first.get(f"/tenants/{FABRIKAM}").status_code == 404  # the previous owner's view ended
    assert put(first, FABRIKAM, mode="delegated").status_code == 409
    # The previous owner's stored tokens are deleted, and its members are not the new owner's.
    assert [r for r in repositories().secret_refs(FABRIKAM)] == []
    assert chosen.get(f"/tenants/{FABRIKAM}/users").json() == {"users": [], "next": None}


def test_a_disconnected_tenant_stays_with_its_owner(org, sandbox):
    owner, other = org("org-42"), org("org-other")
    put(owner, FABRIKAM)
    browse(owner, microsoft_browser(sandbox), link_for(owner, FABRIKAM)["redirectUrl"], ANN)
    assert owner.delete(f"/tenants/{FABRIKAM}").status_code == 204
    assert owner.get(f"/tenants/{FABRIKAM}").json()["status"] == "disabled"
    assert put(other, FABRIKAM).status_code == 409
    answer = browse(owner, microsoft_browser(sandbox), link_for(owner, FABRIKAM)["redirectUrl"], ANN)
    assert answer.status_code == 200
    assert owner.get(f"/tenants/{FABRIKAM}").json()["status"] == "enabled"


def test_a_claim_can_be_disconnected_and_connected_again(org, sandbox):
    owner = org("org-42")
    put(owner, FABRIKAM)
    assert owner.delete(f"/tenants/{FABRIKAM}").status_code == 204
    assert owner.delete(f"/tenants/{FABRIKAM}").status_code == 204
    assert owner.get(f"/tenants/{FABRIKAM}").json()["status"] == "disabled"
    browse(owner, microsoft_browser(sandbox), link_for(owner, FABRIKAM)["redirectUrl"], ANN)
    assert owner.get(f"/tenants/{FABRIKAM}").json()["status"] == "enabled"


def test_a_moved_tenant_does_not_show_the_previous_owners_bookings_or_keys(org, sandbox):
    from tests.support.days import at

    first, chosen = org("org-first"), org("org-chosen")
    put(chosen, FABRIKAM)
    chosen_link = link_for(chosen, FABRIKAM)
    put(first, FABRIKAM)
    browse(first, microsoft_browser(sandbox), link_for(first, FABRIKAM)["redirectUrl"], ANN)
    body = {"organizer": ANN, "attendees": ["guest@fabrikam.example"], "start": at(1, "14:00:00-05:00"),
            "end": at(1, "14:30:00-05:00"), "timeZone": "America/New_York", "subject": "Intro"}
    booked = first.post(f"/tenants/{FABRIKAM}/bookings", json=body, headers={"Idempotency-Key": "same-key"})
    assert booked.status_code == 201, booked.text
    booking_id = booked.json()["bookingId"]

    assert browse(chosen, microsoft_browser(sandbox), chosen_link["redirectUrl"], ANN).status_code == 200
    hidden = chosen.get(f"/tenants/{FABRIKAM}/bookings/{booking_id}")
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "booking_not_found"
    assert chosen.delete(f"/tenants/{FABRIKAM}/bookings/{booking_id}").status_code == 404
    # The same Idempotency-Key is the new owner's own: a new booking, not the previous owner's.
    body |= {"start": at(1, "15:00:00-05:00"), "end": at(1, "15:30:00-05:00")}
    mine = chosen.post(f"/tenants/{FABRIKAM}/bookings", json=body, headers={"Idempotency-Key": "same-key"})
    assert mine.status_code == 201, mine.text
    assert mine.json()["bookingId"] != booking_id
