"""The sandbox's consent pages (admin consent and the authorize endpoint), driven as a browser
would over HTTPS with ``requests``: GET the page, parse its form, POST it with an account and a
button, and read the 302's ``Location`` without following it.

Microsoft's documented behaviour they follow (see sandbox/consent.py for the details):
- https://learn.microsoft.com/en-us/entra/identity-platform/v2-admin-consent
- https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow
- https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes
- https://learn.microsoft.com/en-us/entra/identity/enterprise-apps/application-sign-in-unexpected-user-consent-error
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import msal
import pytest
import requests

from sandbox.testing import SandboxProcess
from tests.conftest import SANDBOX_SEED
from tests.support.consent_pages import ConsentForm, parse_page

pytestmark = pytest.mark.integration

BASE_SEED: dict[str, Any] = json.loads(SANDBOX_SEED.read_text())
APP = copy.deepcopy(BASE_SEED["apps"][0])
CLIENT_ID, SECRET = APP["clientId"], APP["clientSecret"]
REDIRECT_URI = APP["redirectUris"][0]
GRAPH_DEFAULT = "https://graph.microsoft.com/.default"
DELEGATED_SCOPES = "https://graph.microsoft.com/Calendars.ReadWrite offline_access openid profile User.Read"

CONTOSO = {  # one admin, one user; nothing consented
    "tenantId": "a3c5c6f1-0f6e-4d55-9d39-6a8c2f1d0c01", "domain": "contoso.example", "displayName": "Contoso",
    "users": [
        {"id": "0b1e0c5e-1111-4c1a-9e55-000000000001", "mail": "ada@contoso.example", "displayName": "Ada Admin",
         "isAdmin": True},
        {"id": "0b1e0c5e-1111-4c1a-9e55-000000000002", "mail": "bob@contoso.example", "displayName": "Bob User"},
    ]}
FABRIKAM = {  # no admin at all: anyone may grant admin consent (SANDBOX.md)
    "tenantId": "b7d1e2f3-2a4b-4c6d-8e9f-0a1b2c3d4e02", "domain": "fabrikam.example", "displayName": "Fabrikam",
    "users": [{"id": "0b1e0c5e-2222-4c1a-9e55-000000000003", "mail": "fay@fabrikam.example",
               "displayName": "Fay"}]}
NORTHWIND = {  # user consent turned off by its admin
    "tenantId": "c9e8d7c6-3b5a-4d7e-9f01-1a2b3c4d5e03", "domain": "northwind.example", "displayName": "Northwind",
    "allowUserConsent": False,
    "users": [
        {"id": "0b1e0c5e-3333-4c1a-9e55-000000000004", "mail": "nina@northwind.example", "displayName": "Nina Admin",
         "isAdmin": True},
        {"id": "0b1e0c5e-3333-4c1a-9e55-000000000005", "mail": "ned@northwind.example", "displayName": "Ned User"},
    ]}
SEED: dict[str, Any] = {"apps": [APP], "tenants": [CONTOSO, FABRIKAM, NORTHWIND]}


# -- helpers (also used by test_sandbox_tokens.py) ---------------------------------------------------

def open_page(session: requests.Session, url: str) -> tuple[ConsentForm, str]:
    response = session.get(url, allow_redirects=False)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/html")
    return parse_page(response.text)


def submit(session: requests.Session, base_url: str, form: ConsentForm, action: str,
           account: str | None = None) -> requests.Response:
    """POST the form as a browser would: hidden inputs, the chosen account, the clicked button."""
    data = dict(form.hidden)
    data["account"] = account if account is not None else (form.selected or form.options)[0]
    data["action"] = action
    return session.post(base_url + form.action, data=data, allow_redirects=False)


def redirect_query(response: requests.Response, redirect_uri: str = REDIRECT_URI) -> dict[str, str]:
    """The query of a 302 to ``redirect_uri`` (asserting it goes there, and only there)."""
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.split("?", 1)[0] == redirect_uri
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query, keep_blank_values=True).items()}


def consent_url(base_url: str, tenant: str, **params: str) -> str:
    return f"{base_url}/{tenant}/v2.0/adminconsent?{urlencode(params)}"


def authorize_url(base_url: str, tenant: str, **params: str) -> str:
    return f"{base_url}/{tenant}/oauth2/v2.0/authorize?{urlencode(params)}"


def msal_app(sandbox: SandboxProcess, tenant: str, credential: Any = SECRET) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(CLIENT_ID, client_credential=credential,
                                              authority=f"{sandbox.base_url}/{tenant}", instance_discovery=False)


def client_credentials(sandbox: SandboxProcess, tenant: str) -> dict[str, Any]:
    return msal_app(sandbox, tenant).acquire_token_for_client([GRAPH_DEFAULT])


def roles_of(result: dict[str, Any]) -> list[str]:
    import jwt

    return jwt.decode(result["access_token"], options={"verify_signature": False}).get("roles", [])


@pytest.fixture
def sbx(sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> SandboxProcess:
    """The session sandbox in this module's known state, trusted by requests (and so MSAL)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_bundle))
    sandbox.reset(SEED)
    return sandbox


# -- admin consent ----------------------------------------------------------------------------------

def test_admin_consent_page_has_one_form_two_buttons_and_the_tenants_accounts(sbx: SandboxProcess) -> None:
    params = {"client_id": CLIENT_ID, "scope": GRAPH_DEFAULT, "redirect_uri": REDIRECT_URI, "state": "s-1"}
    response = sbx.session().get(consent_url(sbx.base_url, CONTOSO["domain"], **params))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "Location" not in response.headers
    form, text = parse_page(response.text)
    assert form.forms == 1
    assert (form.method, form.action) == ("post", f"/{CONTOSO['domain']}/v2.0/adminconsent")
    assert form.hidden == params
    assert form.other_inputs == []
    assert form.select_name == "account"
    assert form.options == ["ada@contoso.example", "bob@contoso.example"]
    assert form.buttons == [{"name": "action", "value": "accept", "type": "submit", "label": "Accept"},
                            {"name": "action", "value": "cancel", "type": "submit", "label": "Cancel"}]
    assert APP["displayName"] in text
    assert "Calendars.ReadWrite (application permission" in text
    assert "User.Read (delegated permission" in text


def test_admin_consent_default_grants_the_static_permissions(sbx: SandboxProcess) -> None:
    assert client_credentials(sbx, CONTOSO["tenantId"])["error_codes"] == [700016]
    form, _ = open_page(sbx.session(), consent_url(sbx.base_url, CONTOSO["tenantId"], client_id=CLIENT_ID,
                                                   scope=GRAPH_DEFAULT, redirect_uri=REDIRECT_URI, state="xyz"))
    query = redirect_query(submit(sbx.session(), sbx.base_url, form, "accept", "ada@contoso.example"))
    # v2-admin-consent "Successful response": admin_consent, tenant (GUID), scope, state.
    assert query == {"admin_consent": "True", "tenant": CONTOSO["tenantId"], "state": "xyz",
                     "scope": "https://graph.microsoft.com/Calendars.ReadWrite https://graph.microsoft.com/User.Read"}
    result = client_credentials(sbx, CONTOSO["tenantId"])
    assert roles_of(result) == ["Calendars.ReadWrite"]


def test_admin_consent_with_named_scopes_grants_them_delegated_tenant_wide(sbx: SandboxProcess) -> None:
    form, text = open_page(sbx.session(), consent_url(sbx.base_url, CONTOSO["domain"], client_id=CLIENT_ID,
                                                      scope=DELEGATED_SCOPES, redirect_uri=REDIRECT_URI, state="n"))
    assert "application permission" not in text
    query = redirect_query(submit(sbx.session(), sbx.base_url, form, "accept", "ada@contoso.example"))
    assert query["admin_consent"] == "True" and query["tenant"] == CONTOSO["tenantId"]
    assert query["scope"].split() == ["https://graph.microsoft.com/Calendars.ReadWrite",
                                      "https://graph.microsoft.com/User.Read", "offline_access", "openid",
                                      "profile"]
    # The service principal now exists, without application permissions.
    result = client_credentials(sbx, CONTOSO["tenantId"])
    assert "access_token" in result, result
    assert roles_of(result) == []


@pytest.mark.parametrize("segment", ["organizations", "common"])
def test_organizations_offers_every_tenants_accounts_and_grants_in_the_chosen_accounts_tenant(
        sbx: SandboxProcess, segment: str) -> None:
    form, _ = open_page(sbx.session(), consent_url(sbx.base_url, segment, client_id=CLIENT_ID, scope=GRAPH_DEFAULT,
                                                   redirect_uri=REDIRECT_URI, state="o"))
    assert set(form.options) == {u["mail"] for t in SEED["tenants"] for u in t["users"]}
    query = redirect_query(submit(sbx.session(), sbx.base_url, form, "accept", "fay@fabrikam.example"))
    assert query["tenant"] == FABRIKAM["tenantId"]
    assert roles_of(client_credentials(sbx, FABRIKAM["domain"])) == ["Calendars.ReadWrite"]
    assert client_credentials(sbx, CONTOSO["domain"])["error_codes"] == [700016]


def test_admin_consent_cancel_is_access_denied_65004_beside_admin_consent_true(sbx: SandboxProcess) -> None:
    form, _ = open_page(sbx.session(), consent_url(sbx.base_url, CONTOSO["tenantId"], client_id=CLIENT_ID,
                                                   scope=GRAPH_DEFAULT, redirect_uri=REDIRECT_URI, state="c"))
    response = submit(sbx.session(), sbx.base_url, form, "cancel")
    query = redirect_query(response)
    assert list(query) == ["admin_consent", "error", "error_description", "state"]
    assert (query["admin_consent"], query["error"], query["state"]) == ("True", "access_denied", "c")
    assert query["error_description"].startswith("AADSTS65004: User declined to consent to access the app.\r\n"
                                                 "Trace ID: ")
    assert client_credentials(sbx, CONTOSO["tenantId"])["error_codes"] == [700016]


def test_admin_consent_by_a_non_admin_is_refused_90094(sbx: SandboxProcess) -> None:
    # AADSTS90094 AdminConsentRequired, learn.microsoft.com/entra/identity/enterprise-apps/
    # application-sign-in-unexpected-user-consent-error
    form, _ = open_page(sbx.session(), consent_url(sbx.base_url, CONTOSO["tenantId"], client_id=CLIENT_ID,
                                                   scope=GRAPH_DEFAULT, redirect_uri=REDIRECT_URI, state="na"))
    query = redirect_query(submit(sbx.session(), sbx.base_url, form, "accept", "bob@contoso.example"))
    assert (query["admin_consent"], query["error"], query["state"]) == ("True", "access_denied", "na")
    assert query["error_description"].startswith("AADSTS90094: ")
    assert "tenant" not in query and "scope" not in query
    assert client_credentials(sbx, CONTOSO["tenantId"])["error_codes"] == [700016]


def test_without_any_admin_anyone_may_grant_admin_consent(sbx: SandboxProcess) -> None:
    form, _ = open_page(sbx.session(), consent_url(sbx.base_url, FABRIKAM["domain"], client_id=CLIENT_ID,
                                                   scope=GRAPH_DEFAULT, redirect_uri=REDIRECT_URI))
    query = redirect_query(submit(sbx.session(), sbx.base_url, form, "accept", "fay@fabrikam.example"))
    assert query["admin_consent"] == "True" and "state" not in query and "error" not in query


# -- errors before any page: a 400 page, never a redirect ---------------------------------------------

def assert_error_page(response: requests.Response, code: int) -> None:
    assert response.status_code == 400, response.text
    assert "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")
    form, text = parse_page(response.text)
    assert form.forms == 0
    assert f"AADSTS{code}: " in text


def test_unregistered_redirect_uri_gets_an_error_page_and_no_redirect_50011(sbx: SandboxProcess) -> None:
    evil = "https://evil.example/callback"
    for url in (consent_url(sbx.base_url, CONTOSO["tenantId"], client_id=CLIENT_ID, scope=GRAPH_DEFAULT,
                            redirect_uri=evil, state="e"),
                authorize_url(sbx.base_url, CONTOSO["tenantId"], client_id=CLIENT_ID, response_type="code",
                              scope="openid User.Read", redirect_uri=REDIRECT_URI + "/", state="e")):
        assert_error_page(sbx.session().get(url, allow_redirects=False), 50011)
    # A forged POST of the form fares no better, and grants nothing.
    forged = {"client_id": CLIENT_ID, "scope": GRAPH_DEFAULT, "redirect_uri": evil, "state": "e",
              "account": "ada@contoso.example", "action": "accept"}
    response = sbx.session().post(f"{sbx.base_url}/{CONTOSO['tenantId']}/v2.0/adminconsent", data=forged,
                                  allow_redirects=False)
    assert_error_page(response, 50011)
    assert client_credentials(sbx, CONTOSO["tenantId"])["error_codes"] == [700016]


ADMIN_OK = {"client_id": CLIENT_ID, "scope": GRAPH_DEFAULT, "redirect_uri": REDIRECT_URI, "state": "s"}
AUTHZ_OK = {"client_id": CLIENT_ID, "response_type": "code", "redirect_uri": REDIRECT_URI,
            "scope": "https://graph.microsoft.com/Calendars.ReadWrite openid offline_access", "state": "s",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256"}


@pytest.mark.parametrize(("kind", "tenant", "change", "code"), [
    ("admin", "nowhere.example", {}, 90002),
    ("admin", "contoso.example", {"client_id": "00000000-1111-2222-3333-444444444444"}, 700016),
    ("admin", "contoso.example", {"client_id": None}, 900144),
    ("admin", "contoso.example", {"redirect_uri": None}, 900971),
    ("admin", "contoso.example", {"scope": None}, 900144),
    ("admin", "contoso.example", {"scope": "https://vault.azure.net/.default"}, 70011),
    ("admin", "contoso.example", {"scope": "https://graph.microsoft.com/Mail.Send"}, 70011),
    ("admin", "contoso.example", {"scope": "https://graph.microsoft.com/.default User.Read"}, 70011),
    ("authorize", "nowhere.example", {}, 90002),
    ("authorize", "contoso.example", {"response_type": None}, 900144),
    ("authorize", "contoso.example", {"response_type": "token"}, 70005),
    ("authorize", "contoso.example", {"response_mode": "fragment"}, 70007),
    ("authorize", "contoso.example", {"code_challenge": None}, 900144),  # a method without a challenge
    ("authorize", "contoso.example", {"code_challenge": "too-short"}, 501491),
    ("authorize", "contoso.example", {"code_challenge_method": "S512"}, 90100),
    ("authorize", "contoso.example", {"client_id": "00000000-1111-2222-3333-444444444444"}, 700016),
])
def test_bad_requests_get_an_error_page(sbx: SandboxProcess, kind: str, tenant: str, change: dict[str, Any],
                                        code: int) -> None:
    params = {**(ADMIN_OK if kind == "admin" else AUTHZ_OK), **change}
    params = {k: v for k, v in params.items() if v is not None}
    build = consent_url if kind == "admin" else authorize_url
    assert_error_page(sbx.session().get(build(sbx.base_url, tenant, **params), allow_redirects=False), code)


def test_pkce_is_optional_as_for_confidential_clients(sbx: SandboxProcess) -> None:
    # v2-oauth2-auth-code-flow: code_challenge is "recommended" for confidential clients.
    params = {k: v for k, v in AUTHZ_OK.items() if not k.startswith("code_challenge")}
    form, _ = open_page(sbx.session(), authorize_url(sbx.base_url, CONTOSO["domain"], **params))
    assert "code" in redirect_query(submit(sbx.session(), sbx.base_url, form, "accept", "bob@contoso.example"))


def test_account_from_another_tenant_is_refused_50034(sbx: SandboxProcess) -> None:
    form, _ = open_page(sbx.session(), authorize_url(sbx.base_url, CONTOSO["domain"], **AUTHZ_OK))
    assert_error_page(submit(sbx.session(), sbx.base_url, form, "accept", "fay@fabrikam.example"), 50034)


def test_page_escapes_what_it_echoes(sbx: SandboxProcess) -> None:
    state = '"><script>alert(1)</script>'
    response = sbx.session().get(consent_url(sbx.base_url, CONTOSO["domain"], **{**ADMIN_OK, "state": state}))
    assert "<script>" not in response.text
    form, _ = parse_page(response.text)
    assert form.hidden["state"] == state
    assert redirect_query(submit(sbx.session(), sbx.base_url, form, "cancel"))["state"] == state


# -- authorize (user consent) ---------------------------------------------------------------------------

def test_authorize_page_selects_the_login_hint_and_accept_answers_a_code(sbx: SandboxProcess) -> None:
    url = authorize_url(sbx.base_url, CONTOSO["tenantId"], **AUTHZ_OK, login_hint="bob@contoso.example",
                        nonce="n-0S6_WzA2Mj", prompt="select_account")
    form, text = open_page(sbx.session(), url)
    assert form.forms == 1 and form.other_inputs == [] and len(form.buttons) == 2
    assert form.options == ["ada@contoso.example", "bob@contoso.example"]
    assert form.selected == ["bob@contoso.example"]
    assert form.hidden["nonce"] == "n-0S6_WzA2Mj" and form.hidden["login_hint"] == "bob@contoso.example"
    assert "Calendars.ReadWrite (delegated permission" in text
    response = submit(sbx.session(), sbx.base_url, form, "accept")
    query = redirect_query(response)
    assert list(query) == ["code", "state"] and query["state"] == "s" and len(query["code"]) > 40
    # User consent creates the service principal, with no application permission.
    assert roles_of(client_credentials(sbx, CONTOSO["tenantId"])) == []


def test_authorize_cancel_is_access_denied_without_admin_consent(sbx: SandboxProcess) -> None:
    form, _ = open_page(sbx.session(), authorize_url(sbx.base_url, CONTOSO["domain"], **AUTHZ_OK))
    query = redirect_query(submit(sbx.session(), sbx.base_url, form, "cancel"))
    assert list(query) == ["error", "error_description", "state"]
    assert query["error"] == "access_denied"
    assert query["error_description"].startswith("AADSTS65004: ")


def test_tenant_without_user_consent_refuses_users_90093_until_an_admin_consents(sbx: SandboxProcess) -> None:
    url = authorize_url(sbx.base_url, NORTHWIND["domain"], **AUTHZ_OK)
    form, _ = open_page(sbx.session(), url)
    query = redirect_query(submit(sbx.session(), sbx.base_url, form, "accept", "ned@northwind.example"))
    assert query["error"] == "access_denied" and query["error_description"].startswith("AADSTS90093: ")
    assert "admin_consent" not in query
    # An admin may still consent for themselves...
    assert "code" in redirect_query(submit(sbx.session(), sbx.base_url, form, "accept", "nina@northwind.example"))
    # ...and once the admin granted the scopes tenant-wide, users need no consent of their own.
    admin_form, _ = open_page(sbx.session(), consent_url(sbx.base_url, NORTHWIND["domain"], client_id=CLIENT_ID,
                                                         scope=DELEGATED_SCOPES, redirect_uri=REDIRECT_URI))
    redirect_query(submit(sbx.session(), sbx.base_url, admin_form, "accept", "nina@northwind.example"))
    assert "code" in redirect_query(submit(sbx.session(), sbx.base_url, form, "accept", "ned@northwind.example"))


def test_revoke_control_withdraws_consent(sbx: SandboxProcess) -> None:
    form, _ = open_page(sbx.session(), consent_url(sbx.base_url, CONTOSO["tenantId"], **ADMIN_OK))
    redirect_query(submit(sbx.session(), sbx.base_url, form, "accept", "ada@contoso.example"))
    assert roles_of(client_credentials(sbx, CONTOSO["tenantId"])) == ["Calendars.ReadWrite"]
    response = sbx.session().post(f"{sbx.base_url}/_sandbox/tenants/{CONTOSO['domain']}/revoke",
                                  json={"clientId": CLIENT_ID})
    assert response.status_code == 200, response.text
    assert response.json() == {"tenantId": CONTOSO["tenantId"], "revokedClientIds": [CLIENT_ID],
                               "refreshTokensRevoked": 0}
    # A new app instance: MSAL would serve the cached token otherwise.
    assert client_credentials(sbx, CONTOSO["tenantId"])["error_codes"] == [700016]
    assert sbx.session().post(f"{sbx.base_url}/_sandbox/tenants/nowhere.example/revoke").status_code == 404
    bad = sbx.session().post(f"{sbx.base_url}/_sandbox/tenants/{CONTOSO['domain']}/revoke", json={"clientId": 1})
    assert bad.status_code == 400
