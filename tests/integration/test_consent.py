"""The consent flow through the HTTP API, with Microsoft's redirects back to the callback made
the way the identity platform makes them (the browser tests click through the real pages)."""

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

FABRIKAM = "2b9e56f8-499e-4153-949c-a7aeb479f07e"  # consented to the app in the sandbox seed
CONTOSO = "520e6fd5-c619-4c0f-b927-0af414daa899"  # not consented
NORTHWIND = "f3278773-52f3-496a-b4a0-f958ba221f03"
RETURN = "http://127.0.0.1:3000/admin/integrations"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
}


def register(api, tenant, mode="domain", name="Fabrikam on 10KC"):
    answer = api.put(f"/tenants/{tenant}", json={"organizationId": "org-42", "mode": mode, "organizationName": name})
    assert answer.status_code in (200, 201), answer.text


def consent_link(api, tenant, kind="admin", return_url=RETURN):
    answer = api.post(f"/tenants/{tenant}/consent", json={"kind": kind, "returnUrl": return_url})
    assert answer.status_code == 201, answer.text
    return answer.json()


def open_link(api, link):
    """The browser opening `redirectUrl`: our 302 to Microsoft, whose query we return."""
    path = urlsplit(link["redirectUrl"])
    answer = api.get(path.path.removeprefix("/api") + "?" + path.query)
    assert answer.status_code == 302, answer.text
    for name, value in PAGE_HEADERS.items():
        assert answer.headers[name] == value
    location = urlsplit(answer.headers["Location"])
    return location, {k: v[0] for k, v in parse_qs(location.query).items()}


def callback(api, **params):
    return api.get("/consent/callback?" + urlencode(params))


def assert_page(answer, status, *phrases):
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("text/html")
    for name, value in PAGE_HEADERS.items():
        assert answer.headers[name] == value
    for phrase in phrases:
        assert phrase in answer.text


def test_consent_link_shape(api, app_env):
    register(api, FABRIKAM)
    link = consent_link(api, FABRIKAM)
    assert link["redirectUrl"].startswith("http://127.0.0.1:7071/api/consent/redirect?request=")
    assert link["expiresAt"].endswith("Z")
    assert len(link["consentRequestId"]) >= 32


def test_domain_admin_consent_enables_the_tenant(api, sandbox):
    register(api, FABRIKAM)
    link = consent_link(api, FABRIKAM)
    location, query = open_link(api, link)
    assert f"{location.scheme}://{location.netloc}" == sandbox.base_url
    assert location.path == f"/{FABRIKAM}/v2.0/adminconsent"
    assert query["scope"] == "https://graph.microsoft.com/.default"
    assert query["redirect_uri"] == "http://127.0.0.1:7071/api/consent/callback"
    assert len(query["state"]) >= 40

    since = sandbox.next_request_index()
    answer = callback(api, admin_consent="True", tenant=FABRIKAM, state=query["state"],
                      scope="https://graph.microsoft.com/.default")
    assert_page(answer, 200, "Calendar integration is now enabled", "Fabrikam on 10KC", RETURN)
    assert query["state"] not in answer.text
    tokens = [e for e in sandbox.requests(since=since) if e["path"].endswith("/oauth2/v2.0/token")]
    assert len(tokens) == 1  # proved with a fresh app-only token
    view = api.get(f"/tenants/{FABRIKAM}").json()
    assert view["status"] == "enabled"
    assert view["consentedAt"]

    # The state is single-use, and the request is used up.
    replay = callback(api, admin_consent="True", tenant=FABRIKAM, state=query["state"])
    assert_page(replay, 400, "not valid")
    path = urlsplit(link["redirectUrl"])
    again = api.get(path.path.removeprefix("/api") + "?" + path.query)
    assert_page(again, 410, "expired")


def test_opening_the_link_twice_mints_two_states_and_only_one_wins(api):
    register(api, FABRIKAM)
    link = consent_link(api, FABRIKAM)
    _, first = open_link(api, link)
    _, second = open_link(api, link)  # a link scanner, or a reload
    assert first["state"] != second["state"]
    assert callback(api, admin_consent="True", tenant=FABRIKAM, state=second["state"]).status_code == 200
    late = callback(api, admin_consent="True", tenant=FABRIKAM, state=first["state"])
    assert_page(late, 410, "expired")


def test_cancel_changes_nothing_and_uses_the_link_up(api):
    register(api, FABRIKAM)
    link = consent_link(api, FABRIKAM)
    _, query = open_link(api, link)
    _, second = open_link(api, link)  # another tab, opened before the admin cancelled
    answer = callback(api, admin_consent="True", error="access_denied", state=query["state"],
                      error_description="AADSTS65004: User declined to consent to access the app. <b>raw</b>")
    assert_page(answer, 403, "not granted", "AADSTS65004", RETURN)
    assert "User declined" not in answer.text and "<b>raw" not in answer.text
    assert api.get(f"/tenants/{FABRIKAM}").json()["status"] == "pending_consent"
    # The first callback with a valid state used the request up: start again from 10KC.
    assert_page(callback(api, admin_consent="True", tenant=FABRIKAM, state=second["state"]), 410, "expired")
    path = urlsplit(link["redirectUrl"])
    assert_page(api.get(path.path.removeprefix("/api") + "?" + path.query), 410, "expired")
    _, fresh = open_link(api, consent_link(api, FABRIKAM))
    assert callback(api, admin_consent="True", tenant=FABRIKAM, state=fresh["state"]).status_code == 200


@pytest.mark.parametrize(("error", "status"), [("consent_required", 403), ("interaction_required", 403),
                                               ("server_error", 502), ("temporarily_unavailable", 502)])
def test_microsoft_errors_map_to_403_or_502(api, error, status):
    register(api, FABRIKAM)
    _, query = open_link(api, consent_link(api, FABRIKAM))
    answer = callback(api, error=error, error_description="AADSTS50020: something", state=query["state"])
    assert_page(answer, status, "AADSTS50020")
    assert api.get(f"/tenants/{FABRIKAM}").json()["status"] == "pending_consent"


def test_forged_missing_or_foreign_state_is_400_without_microsofts_text(api):
    register(api, FABRIKAM)
    for params in ({"admin_consent": "True", "tenant": FABRIKAM, "state": "forged"},
                   {"admin_consent": "True", "tenant": FABRIKAM},
                   {"error": "access_denied", "error_description": "AADSTS65004: declined", "state": "x" * 600}):
        answer = callback(api, **params)
        assert_page(answer, 400, "not valid")
        assert "AADSTS" not in answer.text
    assert api.get(f"/tenants/{FABRIKAM}").json()["status"] == "pending_consent"


def test_consent_for_another_tenant_is_403(api):
    register(api, FABRIKAM)
    _, query = open_link(api, consent_link(api, FABRIKAM))
    answer = callback(api, admin_consent="True", tenant=CONTOSO, state=query["state"])
    assert_page(answer, 403, "another organization")
    assert api.get(f"/tenants/{FABRIKAM}").json()["status"] == "pending_consent"


def test_expired_request_is_410_at_the_redirect_and_the_callback(api):
    register(api, FABRIKAM)
    link = consent_link(api, FABRIKAM)
    _, query = open_link(api, link)
    from shared.clients import repositories
    from shared.storage import ConsentRequest, encode_key

    def expire(request: ConsentRequest) -> ConsentRequest:
        request.expiresAt -= timedelta(minutes=16)
        return request

    repositories().store.modify(ConsentRequest, encode_key(link["consentRequestId"]), "request", expire)
    assert_page(callback(api, admin_consent="True", tenant=FABRIKAM, state=query["state"]), 410, "expired")
    path = urlsplit(link["redirectUrl"])
    assert_page(api.get(path.path.removeprefix("/api") + "?" + path.query), 410, "expired")
    assert api.get(f"/tenants/{FABRIKAM}").json()["status"] == "pending_consent"


def test_unknown_request_at_the_redirect_is_404_page(api):
    assert_page(api.get("/consent/redirect?request=nope"), 404, "does not exist")
    assert_page(api.get("/consent/redirect"), 404, "does not exist")


def test_consent_that_cannot_be_proved_is_502_and_changes_nothing(api):
    from consent.routes import consent_service

    register(api, CONTOSO, name="Contoso")
    consent_service().propagation_wait = 1.5
    link = consent_link(api, CONTOSO)
    _, query = open_link(api, link)
    answer = callback(api, admin_consent="True", tenant=CONTOSO, state=query["state"])
    assert_page(answer, 502, "could not complete", "AADSTS700016")
    assert api.get(f"/tenants/{CONTOSO}").json()["status"] == "pending_consent"
    path = urlsplit(link["redirectUrl"])
    assert_page(api.get(path.path.removeprefix("/api") + "?" + path.query), 410, "expired")


def test_delegated_admin_consent_names_scopes_never_default(api, sandbox):
    register(api, NORTHWIND, mode="delegated", name="Northwind")
    _, query = open_link(api, consent_link(api, NORTHWIND))
    scopes = query["scope"].split(" ")
    assert "https://graph.microsoft.com/Calendars.ReadWrite" in scopes
    assert not any(s.endswith("/.default") for s in scopes)
    since = sandbox.next_request_index()
    answer = callback(api, admin_consent="True", tenant=NORTHWIND, state=query["state"], scope=query["scope"])
    assert_page(answer, 200, "enabled", "Northwind")
    assert not sandbox.requests(since=since)  # nothing to prove with an app token in delegated mode
    assert api.get(f"/tenants/{NORTHWIND}").json()["status"] == "enabled"


def test_member_consent_rules(api):
    register(api, FABRIKAM)
    answer = api.post(f"/tenants/{FABRIKAM}/consent", json={"kind": "user", "returnUrl": RETURN})
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "wrong_mode"
    register(api, NORTHWIND, mode="delegated")
    answer = api.post(f"/tenants/{NORTHWIND}/consent", json={"kind": "user", "returnUrl": RETURN})
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "tenant_not_enabled"


@pytest.mark.parametrize(
    "return_url",
    ["https://evil.example/admin", "http://app.10kc.example/x", "https://127.0.0.1:3000/x", "/admin/integrations",
     "http://user:pw@127.0.0.1:3000/x", "http://127.0.0.1:3000\\@evil.example", "http://127.0.0.1:3000/a\tb",
     "http://127.0.0.1:3000/" + "a" * 2048, "javascript:alert(1)", "http://127.0.0.1:99999/x", "", 42, None],
)
def test_return_url_must_be_on_an_allowed_origin(api, return_url):
    register(api, FABRIKAM)
    answer = api.post(f"/tenants/{FABRIKAM}/consent", json={"kind": "admin", "returnUrl": return_url})
    assert answer.status_code == 400
    assert answer.json()["error"]["target"] == "returnUrl"


@pytest.mark.parametrize(("body", "target"), [({"kind": "owner", "returnUrl": RETURN}, "kind"),
                                              ({"returnUrl": RETURN}, "kind"),
                                              ({"kind": "admin", "returnUrl": RETURN, "loginHint": "x"}, "loginHint"),
                                              ({"kind": "admin", "returnUrl": RETURN, "extra": True}, "extra")])
def test_bad_consent_bodies(api, body, target):
    register(api, FABRIKAM)
    answer = api.post(f"/tenants/{FABRIKAM}/consent", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"]["target"] == target


def test_pages_escape_the_organization_name(api):
    register(api, FABRIKAM, name='<img src=x onerror="alert(1)">')
    _, query = open_link(api, consent_link(api, FABRIKAM))
    answer = callback(api, admin_consent="True", tenant=FABRIKAM, state=query["state"])
    assert answer.status_code == 200
    assert "<img" not in answer.text
    assert "&lt;img" in answer.text
    assert re.search(r"<title>[^<]+</title>", answer.text)
