"""The consent flow through the HTTP API and the sandbox's real pages: the redirect's cookie, the
callback of Microsoft's consent page, then the admin's own sign-in (prompt=none, then once
select_account) proven by the ID token's `tid` and `wids`. Where a test plays Microsoft's redirect
back by hand, it makes it the way the identity platform does (and the way an attacker holding a
link can)."""

from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from tests.support.consent_pages import browse, click_through, follow, microsoft_browser, service_path

FABRIKAM = "2b9e56f8-499e-4153-949c-a7aeb479f07e"  # consented to the app in the sandbox seed; Ann is its admin
CONTOSO = "520e6fd5-c619-4c0f-b927-0af414daa899"  # not consented; Bob, no admin role, may accept in the sandbox
NORTHWIND = "f3278773-52f3-496a-b4a0-f958ba221f03"
LITWARE = "7e1c2b3a-5d4f-4e6a-9b8c-0d1e2f3a4b5c"  # not consented: Dana (Global Admin), Eve, Cam (Cloud App Admin)
RETURN = "http://127.0.0.1:3000/admin/integrations"
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
}


def register(api, tenant, mode="domain", name="Fabrikam on 10KC"):
    answer = api.put(f"/tenants/{tenant}", json={"mode": mode, "organizationName": name})
    assert answer.status_code in (200, 201), answer.text


def consent_link(api, tenant, kind="admin", return_url=RETURN):
    answer = api.post(f"/tenants/{tenant}/consent", json={"kind": kind, "returnUrl": return_url})
    assert answer.status_code == 201, answer.text
    return answer.json()


def open_link(api, link):
    """The browser opening `redirectUrl`: our 302 to Microsoft (setting our cookie in `api`'s
    jar), whose query we return."""
    answer = api.get(service_path(link["redirectUrl"]))
    assert answer.status_code == 302, answer.text
    for name, value in PAGE_HEADERS.items():
        assert answer.headers[name] == value
    location = urlsplit(answer.headers["Location"])
    return location, {k: v[0] for k, v in parse_qs(location.query).items()}


def callback(api, **params):
    return api.get("/consent/callback?" + urlencode(params))


def consented(tenant, state):
    """Microsoft's answer to a granted admin consent, as a URL of our callback."""
    return "http://127.0.0.1:7071/api/consent/callback?" + urlencode(
        {"admin_consent": "True", "tenant": tenant, "state": state, "scope": "https://graph.microsoft.com/.default"})


def assert_page(answer, status, *phrases):
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("text/html")
    for name, value in PAGE_HEADERS.items():
        assert answer.headers[name] == value
    for phrase in phrases:
        assert phrase in answer.text


def status_of(api, tenant):
    return api.get(f"/tenants/{tenant}").json()["status"]


def outcome(api, tenant, link):
    answer = api.get(f"/tenants/{tenant}/consent/{link['consentRequestId']}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def back_link(answer):
    """The page's link back to the web app, as a dict of its query."""
    href = answer.text.split('<a href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert href.startswith(RETURN + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(href).query).items()}


def test_consent_link_shape(api, app_env):
    register(api, FABRIKAM)
    link = consent_link(api, FABRIKAM)
    assert link["redirectUrl"].startswith("http://127.0.0.1:7071/api/consent/redirect?request=")
    assert link["expiresAt"].endswith("Z")
    assert len(link["consentRequestId"]) >= 32


def test_the_redirect_binds_the_browser_with_a_cookie_of_our_own(api):
    register(api, FABRIKAM)
    answer = api.get(service_path(consent_link(api, FABRIKAM)["redirectUrl"]))
    assert answer.status_code == 302
    cookie = answer.headers["Set-Cookie"]
    name, value = cookie.split(";", 1)[0].split("=", 1)
    assert name == "tenkc_consent" and len(value) >= 40
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path", "max-age", "samesite"} <= attributes
    assert "Path=/api/consent" in cookie and "SameSite=Lax" in cookie
    assert "secure" not in attributes  # PUBLIC_BASE_URL is http on loopback here
    assert value not in answer.headers["Location"]


def test_domain_admin_consent_is_proven_by_the_admins_sign_in(api, sandbox):
    register(api, FABRIKAM)
    link = consent_link(api, FABRIKAM)
    assert outcome(api, FABRIKAM, link) == {"consentRequestId": link["consentRequestId"], "kind": "admin",
                                            "status": "pending", "completedAt": None, "reason": None}
    location, query = open_link(api, link)
    assert f"{location.scheme}://{location.netloc}" == sandbox.base_url
    assert location.path == f"/{FABRIKAM}/v2.0/adminconsent"
    assert query["scope"] == "https://graph.microsoft.com/.default"
    assert query["redirect_uri"] == "http://127.0.0.1:7071/api/consent/callback"
    assert len(query["state"]) >= 40
    microsoft = microsoft_browser(sandbox)
    back = click_through(microsoft, location.geturl(), "ann@fabrikam.example")

    # Microsoft's consent alone proves nothing: the browser is sent on to the admin's sign-in.
    to_sign_in = api.get(service_path(back))
    assert to_sign_in.status_code == 302, to_sign_in.text
    sign_in = urlsplit(to_sign_in.headers["Location"])
    asked = {k: v[0] for k, v in parse_qs(sign_in.query).items()}
    assert sign_in.path == f"/{FABRIKAM}/oauth2/v2.0/authorize"
    assert asked["prompt"] == "none" and asked["response_type"] == "code"
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) >= 43
    assert asked["nonce"] and asked["state"] != query["state"]
    assert set(asked["scope"].split()) <= {"openid", "profile", "offline_access"}
    assert status_of(api, FABRIKAM) == "pending_consent"

    since = sandbox.next_request_index()
    answer = follow_from(api, microsoft, to_sign_in)
    assert_page(answer, 200, "Calendar integration is now enabled", "Fabrikam on 10KC")
    assert back_link(answer) == {"consent": "completed", "tenantId": FABRIKAM,
                                 "consentRequestId": link["consentRequestId"]}
    assert query["state"] not in answer.text
    logged = sandbox.requests(since=since)
    assert not any(e["path"].endswith("/authorize") and e["status"] == 200 for e in logged)  # silent: no page
    assert len([e for e in logged if e["path"].endswith("/oauth2/v2.0/token")]) == 2  # the code, the app proof
    view = api.get(f"/tenants/{FABRIKAM}").json()
    assert view["status"] == "enabled" and view["consentedAt"] and view["connectedUsers"] == 0
    done = outcome(api, FABRIKAM, link)
    assert done["status"] == "completed" and done["completedAt"].endswith("Z") and done["reason"] is None
    # The sign-in's tokens are used for nothing else: no member connected, no secret kept.
    assert api.get(f"/tenants/{FABRIKAM}/users").json() == {"users": [], "next": None}
    assert api.get(f"/tenants/{FABRIKAM}/users/ann@fabrikam.example").json()["status"] == "not_connected"

    # Every state is single-use, and the request is used up.
    assert_page(api.get(service_path(back)), 400, "not valid")
    assert_page(api.get(service_path(link["redirectUrl"])), 410, "expired")


def follow_from(api, microsoft, to_sign_in, account="ann@fabrikam.example"):
    """Follow the service's redirect to the admin's sign-in through to the service's page."""
    sign_in = microsoft.get(to_sign_in.headers["Location"], allow_redirects=False)
    if sign_in.status_code == 302:
        return follow(api, microsoft, sign_in.headers["Location"], account)
    return follow(api, microsoft, click_through(microsoft, to_sign_in.headers["Location"], account), account)


def test_a_browser_without_a_session_is_asked_once_to_pick_the_account(api, sandbox):
    """prompt=none answers login_required in a browser that has no sign-in session (here Microsoft's
    answer is replayed by hand, so the sandbox never saw the admin): then select_account."""
    register(api, FABRIKAM)
    _, query = open_link(api, consent_link(api, FABRIKAM))
    microsoft = microsoft_browser(sandbox)
    first = api.get(service_path(consented(FABRIKAM, query["state"])))
    assert first.status_code == 302
    silent = microsoft.get(first.headers["Location"], allow_redirects=False)
    assert silent.status_code == 302
    assert parse_qs(urlsplit(silent.headers["Location"]).query)["error"] == ["login_required"]
    again = api.get(service_path(silent.headers["Location"]))
    assert again.status_code == 302
    assert parse_qs(urlsplit(again.headers["Location"]).query)["prompt"] == ["select_account"]
    answer = follow(api, microsoft, click_through(microsoft, again.headers["Location"], "ann@fabrikam.example"),
                    "ann@fabrikam.example")
    assert_page(answer, 200, "enabled")
    assert status_of(api, FABRIKAM) == "enabled"


def test_when_the_second_sign_in_fails_too_the_page_is_403(api, sandbox):
    register(api, FABRIKAM)
    link = consent_link(api, FABRIKAM)
    _, query = open_link(api, link)
    microsoft = microsoft_browser(sandbox)
    first = api.get(service_path(consented(FABRIKAM, query["state"])))
    silent = microsoft.get(first.headers["Location"], allow_redirects=False)
    again = api.get(service_path(silent.headers["Location"]))
    cancelled = click_through(microsoft, again.headers["Location"], "ann@fabrikam.example", "cancel")
    answer = api.get(service_path(cancelled))
    assert_page(answer, 403, "not granted")
    assert back_link(answer)["consent"] == "declined"
    assert outcome(api, FABRIKAM, link)["reason"] == "access_denied"
    assert status_of(api, FABRIKAM) == "pending_consent"


def test_a_sign_in_by_someone_who_is_not_an_admin_is_403_not_an_admin(api, sandbox):
    register(api, CONTOSO, name="Contoso")
    link = consent_link(api, CONTOSO)
    since = sandbox.next_request_index()
    answer = browse(api, microsoft_browser(sandbox), link["redirectUrl"], "bob@contoso.example")
    assert_page(answer, 403, "not an administrator", "Contoso")
    assert back_link(answer)["consent"] == "failed"
    assert outcome(api, CONTOSO, link)["status"] == "failed"
    assert outcome(api, CONTOSO, link)["reason"] == "not_an_admin"
    assert status_of(api, CONTOSO) == "pending_consent"
    # Refused before any app-only token was asked for.
    tokens = [e for e in sandbox.requests(since=since) if e["path"].endswith("/oauth2/v2.0/token")]
    assert len(tokens) == 1


def test_a_cloud_application_administrator_proves_delegated_consent_but_not_domain(api, sandbox):
    register(api, LITWARE, mode="delegated", name="Litware")
    answer = browse(api, microsoft_browser(sandbox), consent_link(api, LITWARE)["redirectUrl"], "cam@litware.example")
    assert_page(answer, 200, "enabled", "Litware")
    assert status_of(api, LITWARE) == "enabled"
    register(api, LITWARE, mode="domain", name="Litware")  # a new mode needs its own consent
    link = consent_link(api, LITWARE)
    _, query = open_link(api, link)
    # Even with Microsoft's answer made by hand, Cam's sign-in cannot prove a domain-wide consent.
    answer = follow(api, microsoft_browser(sandbox), consented(LITWARE, query["state"]), "cam@litware.example")
    assert_page(answer, 403, "not an administrator")
    assert outcome(api, LITWARE, link)["reason"] == "not_an_admin"
    assert status_of(api, LITWARE) == "pending_consent"


def test_opening_the_link_twice_mints_two_states_and_only_one_wins(api, sandbox):
    register(api, FABRIKAM)
    link = consent_link(api, FABRIKAM)
    _, first = open_link(api, link)
    _, second = open_link(api, link)  # a link scanner, or a reload: the cookie now binds the second
    assert first["state"] != second["state"]
    microsoft = microsoft_browser(sandbox)
    answer = follow(api, microsoft, consented(FABRIKAM, second["state"]), "ann@fabrikam.example")
    assert_page(answer, 200, "enabled")
    late = api.get(service_path(consented(FABRIKAM, first["state"])))
    assert late.status_code == 400  # not this browser's binding any more (and the request is used)


def test_cancel_changes_nothing_and_uses_the_link_up(api, sandbox):
    register(api, FABRIKAM)
    link = consent_link(api, FABRIKAM)
    location, _query = open_link(api, link)
    back = click_through(microsoft_browser(sandbox), location.geturl(), "ann@fabrikam.example", "cancel")
    answer = api.get(service_path(back))
    assert_page(answer, 403, "not granted", "AADSTS65004", RETURN)
    assert "User declined" not in answer.text
    assert back_link(answer) == {"consent": "declined", "tenantId": FABRIKAM,
                                 "consentRequestId": link["consentRequestId"]}
    assert outcome(api, FABRIKAM, link)["status"] == "declined"
    assert status_of(api, FABRIKAM) == "pending_consent"
    assert_page(api.get(service_path(link["redirectUrl"])), 410, "expired")
    answer = browse(api, microsoft_browser(sandbox), consent_link(api, FABRIKAM)["redirectUrl"],
                    "ann@fabrikam.example")
    assert_page(answer, 200, "enabled")


@pytest.mark.parametrize(("error", "status"), [("consent_required", 403), ("interaction_required", 403),
                                               ("server_error", 502), ("temporarily_unavailable", 502)])
def test_microsoft_errors_map_to_403_or_502(api, error, status):
    register(api, FABRIKAM)
    link = consent_link(api, FABRIKAM)
    _, query = open_link(api, link)
    answer = callback(api, error=error, error_description="AADSTS50020: something <b>raw</b>", state=query["state"])
    assert_page(answer, status, "AADSTS50020")
    assert "<b>raw" not in answer.text
    assert outcome(api, FABRIKAM, link)["status"] == ("declined" if status == 403 else "failed")
    assert status_of(api, FABRIKAM) == "pending_consent"


def test_forged_missing_or_foreign_state_is_400_without_microsofts_text(api):
    register(api, FABRIKAM)
    open_link(api, consent_link(api, FABRIKAM))  # the browser has a cookie: still no state of ours
    for params in ({"admin_consent": "True", "tenant": FABRIKAM, "state": "forged"},
                   {"admin_consent": "True", "tenant": FABRIKAM},
                   {"error": "access_denied", "error_description": "AADSTS65004: declined", "state": "x" * 600}):
        answer = callback(api, **params)
        assert_page(answer, 400, "not valid")
        assert "AADSTS" not in answer.text
    assert status_of(api, FABRIKAM) == "pending_consent"


def test_consent_for_another_tenant_is_403(api):
    register(api, FABRIKAM)
    link = consent_link(api, FABRIKAM)
    _, query = open_link(api, link)
    answer = callback(api, admin_consent="True", tenant=CONTOSO, state=query["state"])
    assert_page(answer, 403, "another organization")
    assert outcome(api, FABRIKAM, link)["reason"] == "wrong_tenant"
    assert status_of(api, FABRIKAM) == "pending_consent"


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
    assert outcome(api, FABRIKAM, link)["status"] == "expired"
    assert_page(callback(api, admin_consent="True", tenant=FABRIKAM, state=query["state"]), 410, "expired")
    answer = api.get(service_path(link["redirectUrl"]))
    assert_page(answer, 410, "expired")
    assert back_link(answer)["consent"] == "expired"
    assert status_of(api, FABRIKAM) == "pending_consent"


def test_unknown_request_at_the_redirect_is_404_page(api):
    assert_page(api.get("/consent/redirect?request=nope"), 404, "does not exist")
    assert_page(api.get("/consent/redirect"), 404, "does not exist")


def test_consent_that_cannot_be_proved_is_502_and_changes_nothing(api, sandbox):
    """A hand-made 'consented' answer for a tenant where the app has no admin consent: the admin's
    sign-in passes (and, as at Microsoft, gives the app a service principal there), the app-only
    proof does not: its token has no calendar role."""
    from consent.routes import consent_service

    register(api, LITWARE, name="Litware")
    consent_service().propagation_wait = 1.5
    link = consent_link(api, LITWARE)
    _, query = open_link(api, link)
    answer = follow(api, microsoft_browser(sandbox), consented(LITWARE, query["state"]), "dana@litware.example")
    assert_page(answer, 502, "could not complete")
    assert outcome(api, LITWARE, link) | {"completedAt": None} == {
        "consentRequestId": link["consentRequestId"], "kind": "admin", "status": "failed", "completedAt": None,
        "reason": "upstream_error"}
    assert status_of(api, LITWARE) == "pending_consent"
    assert_page(api.get(service_path(link["redirectUrl"])), 410, "expired")


def test_delegated_admin_consent_names_scopes_and_is_proven_by_the_sign_in_alone(api, sandbox):
    register(api, FABRIKAM, mode="delegated")
    location, query = open_link(api, consent_link(api, FABRIKAM))
    scopes = query["scope"].split(" ")
    assert "https://graph.microsoft.com/Calendars.ReadWrite" in scopes
    assert not any(s.endswith("/.default") for s in scopes)
    microsoft = microsoft_browser(sandbox)
    back = click_through(microsoft, location.geturl(), "ann@fabrikam.example")
    since = sandbox.next_request_index()
    answer = follow(api, microsoft, back, "ann@fabrikam.example")
    assert_page(answer, 200, "enabled", "Fabrikam")
    tokens = [e for e in sandbox.requests(since=since) if e["path"].endswith("/oauth2/v2.0/token")]
    assert len(tokens) == 1  # the sign-in's code; no app-only proof in delegated mode
    assert status_of(api, FABRIKAM) == "enabled"
    # The admin's sign-in connected nobody.
    assert api.get(f"/tenants/{FABRIKAM}").json()["connectedUsers"] == 0


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


def test_the_outcome_is_added_to_the_return_urls_own_query(api, sandbox):
    register(api, FABRIKAM)
    link = consent_link(api, FABRIKAM, return_url=RETURN + "?tab=calendar&consent=stale#top")
    answer = browse(api, microsoft_browser(sandbox), link["redirectUrl"], "ann@fabrikam.example")
    href = answer.text.split('<a href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    parts = urlsplit(href)
    assert parts.fragment == "top"
    assert parse_qs(parts.query) == {"tab": ["calendar"], "consent": ["completed"], "tenantId": [FABRIKAM],
                                     "consentRequestId": [link["consentRequestId"]]}


def test_consent_status_route_rules(api):
    register(api, FABRIKAM)
    link = consent_link(api, FABRIKAM)
    for request_id, status, target in (("nope", 404, "consentRequestId"), ("bad id!", 400, "consentRequestId")):
        answer = api.get(f"/tenants/{FABRIKAM}/consent/{request_id}")
        assert answer.status_code == status
        assert answer.json()["error"]["target"] == target
    # Another organization's request, and another tenant's, are unknown.
    register(api, CONTOSO, name="Contoso")
    assert api.get(f"/tenants/{CONTOSO}/consent/{link['consentRequestId']}").status_code == 404
    other = api.acting_for("org-7")
    register(other, FABRIKAM, name="Seven")
    answer = other.get(f"/tenants/{FABRIKAM}/consent/{link['consentRequestId']}")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert api.post(f"/tenants/{FABRIKAM}/consent/{link['consentRequestId']}").status_code == 405


def test_pages_escape_the_organization_name(api, sandbox):
    register(api, FABRIKAM, name='<img src=x onerror="alert(1)">')
    answer = browse(api, microsoft_browser(sandbox), consent_link(api, FABRIKAM)["redirectUrl"],
                    "ann@fabrikam.example")
    assert answer.status_code == 200
    assert "<img" not in answer.text
    assert "&lt;img" in answer.text
