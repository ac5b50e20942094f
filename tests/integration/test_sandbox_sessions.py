"""The sandbox's sign-in sessions, ``prompt`` on ``/authorize``, ``wids`` in ID tokens and admin
consent by directory role, over real HTTPS against the sandbox process. Each test drives its own
browser (a ``requests`` session with its own cookie jar) through the consent pages.

Microsoft's documented behaviour they follow (see sandbox/consent.py, sandbox/sessions.py,
sandbox/identity.py and sandbox/grants.py for the details):
- https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow (``prompt``,
  ``login_required`` / ``interaction_required``)
- https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes (AADSTS50058,
  AADSTS65001, AADSTS90023, AADSTS90094)
- https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference (``wids``,
  ``groupMembershipClaims``)
- https://learn.microsoft.com/en-us/entra/identity/enterprise-apps/grant-admin-consent (who may grant)
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from sandbox.testing import SandboxProcess
from tests.conftest import SANDBOX_SEED
from tests.integration.test_sandbox_consent import (
    authorize_url,
    client_credentials,
    consent_url,
    open_page,
    redirect_query,
    roles_of,
    submit,
)
from tests.integration.test_sandbox_tokens import token_post, verified
from tests.support.consent_pages import parse_page

pytestmark = pytest.mark.integration

SEED: dict[str, Any] = json.loads(SANDBOX_SEED.read_text(encoding="utf-8"))
APP = SEED["apps"][0]
CLIENT_ID, SECRET, REDIRECT_URI = APP["clientId"], APP["clientSecret"], APP["redirectUris"][0]
TENANTS = {t["domain"]: t for t in SEED["tenants"]}
CONTOSO, LITWARE = TENANTS["contoso.example"], TENANTS["litware.example"]
USERS = {u["mail"].split("@")[0]: u for t in SEED["tenants"] for u in t["users"]}
DANA, EVE, CAM, BOB = USERS["dana"], USERS["eve"], USERS["cam"], USERS["bob"]
GRAPH = "https://graph.microsoft.com"
COOKIE = "sandbox_estsauth"
SERVICE_COOKIE = "tenkc_consent"
# Role template ids, from learn.microsoft.com/entra/identity/role-based-access-control/permissions-reference.
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
CLOUD_APP_ADMIN = "158c047a-c907-4556-b7ef-446551a6b5f7"
PRIVILEGED_ROLE_ADMIN = "e8611ab8-c189-46e8-94e1-60213ab1f814"
MEMBER_USER = "b79fbf4d-3ef9-4689-8143-76b194e85509"  # the built-in "User" role every member holds
SIGN_IN = "openid profile offline_access User.Read"


@pytest.fixture
def sbx(sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> SandboxProcess:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_bundle))
    sandbox.reset({"apps": SEED["apps"], "tenants": SEED["tenants"]})
    return sandbox


def browser(sbx: SandboxProcess) -> requests.Session:
    """A browser of its own: its own cookie jar, trusting the sandbox CA."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(sbx.ca_bundle)
    return session


def challenge_of(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorize_params(scope: str = SIGN_IN, **extra: str) -> dict[str, str]:
    return {"client_id": CLIENT_ID, "response_type": "code", "redirect_uri": REDIRECT_URI, "scope": scope,
            "state": "st-1", **extra}


def sign_in(sbx: SandboxProcess, session: requests.Session, tenant: str, account: str, *, scope: str = SIGN_IN,
            action: str = "accept", **extra: str) -> requests.Response:
    """Open the authorize page in this browser and press a button as ``account``."""
    form, _ = open_page(session, authorize_url(sbx.base_url, tenant, **authorize_params(scope, **extra)))
    return submit(session, sbx.base_url, form, action, account)


def silent(sbx: SandboxProcess, session: requests.Session, tenant: str, *, scope: str = SIGN_IN,
           **extra: str) -> requests.Response:
    """``/authorize`` with ``prompt=none`` (never followed)."""
    return session.get(authorize_url(sbx.base_url, tenant, **authorize_params(scope, prompt="none", **extra)),
                       allow_redirects=False)


def redeem(sbx: SandboxProcess, code: str, tenant: str, **form: str) -> requests.Response:
    return token_post(sbx.base_url, tenant, sbx.session(), grant_type="authorization_code", client_id=CLIENT_ID,
                      client_secret=SECRET, code=code, redirect_uri=REDIRECT_URI, **form)


def id_token_of(sbx: SandboxProcess, code: str, tenant_id: str, **form: str) -> dict[str, Any]:
    """Redeem a code and answer its ID token's claims, verified against the sandbox's JWKS."""
    answer = redeem(sbx, code, tenant_id, **form)
    assert answer.status_code == 200, answer.text
    return verified(sbx, answer.json()["id_token"], CLIENT_ID, f"{sbx.base_url}/{tenant_id}/v2.0")


def signed_in_id_token(sbx: SandboxProcess, user: dict[str, Any], tenant: dict[str, Any]) -> dict[str, Any]:
    """Sign ``user`` in through the authorize page and answer the ID token's claims."""
    query = redirect_query(sign_in(sbx, browser(sbx), tenant["domain"], user["mail"]))
    return id_token_of(sbx, query["code"], tenant["tenantId"])


def assert_error_redirect(response: requests.Response, error: str, code: int, state: str = "st-1") -> None:
    assert "Set-Cookie" not in response.headers
    query = redirect_query(response)
    assert list(query) == ["error", "error_description", "state"], query
    assert (query["error"], query["state"]) == (error, state)
    assert query["error_description"].startswith(f"AADSTS{code}: ")


# -- the session cookie ------------------------------------------------------------------------------

def test_accept_sets_a_session_cookie_and_cancel_does_not(sbx: SandboxProcess) -> None:
    session = browser(sbx)
    cancelled = sign_in(sbx, session, LITWARE["domain"], EVE["mail"], action="cancel")
    assert redirect_query(cancelled)["error"] == "access_denied"
    assert "Set-Cookie" not in cancelled.headers and not session.cookies
    accepted = sign_in(sbx, session, LITWARE["domain"], EVE["mail"])
    assert "code" in redirect_query(accepted)
    name_value, *attributes = [part.strip() for part in accepted.headers["Set-Cookie"].split(";")]
    name, _, value = name_value.partition("=")
    assert name == COOKIE != SERVICE_COOKIE
    assert sorted(attributes) == ["HttpOnly", "Path=/", "SameSite=None", "Secure"]
    assert len(value) >= 40  # opaque and random: neither the user's id nor a name
    for part in (EVE["id"], EVE["mail"], "eve", LITWARE["tenantId"]):
        assert part not in value
    assert session.cookies.get(COOKIE) == value
    # Each sign-in issues a new session id; admin consent's Accept signs in too.
    form, _ = open_page(session, consent_url(sbx.base_url, LITWARE["domain"], client_id=CLIENT_ID,
                                             scope=f"{GRAPH}/.default", redirect_uri=REDIRECT_URI))
    admin = submit(session, sbx.base_url, form, "accept", DANA["mail"])
    assert redirect_query(admin)["admin_consent"] == "True"
    assert admin.headers["Set-Cookie"].startswith(f"{COOKIE}=") and session.cookies.get(COOKIE) != value


# -- prompt=none ---------------------------------------------------------------------------------------

def test_prompt_none_with_a_session_answers_a_code_as_accept_would(sbx: SandboxProcess) -> None:
    session = browser(sbx)
    redirect_query(sign_in(sbx, session, LITWARE["tenantId"], EVE["mail"]))
    verifier = secrets.token_urlsafe(48)
    answer = silent(sbx, session, LITWARE["tenantId"], nonce="n-silent-1", code_challenge=challenge_of(verifier),
                    code_challenge_method="S256")
    query = redirect_query(answer)
    assert list(query) == ["code", "state"] and query["state"] == "st-1"
    claims = id_token_of(sbx, query["code"], LITWARE["tenantId"], code_verifier=verifier)
    assert (claims["nonce"], claims["tid"], claims["oid"]) == ("n-silent-1", LITWARE["tenantId"], EVE["id"])
    assert claims["wids"] == [MEMBER_USER]
    # The code is bound to the PKCE challenge, as a code from the page is.
    again = redirect_query(silent(sbx, session, LITWARE["domain"], code_challenge=challenge_of(verifier),
                                  code_challenge_method="S256"))
    wrong = redeem(sbx, again["code"], LITWARE["tenantId"], code_verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error_codes"] == [501481]
    # organizations finds the session's account in its own tenant.
    org = redirect_query(silent(sbx, session, "organizations"))
    assert id_token_of(sbx, org["code"], LITWARE["tenantId"])["oid"] == EVE["id"]


def test_prompt_none_without_a_session_is_login_required(sbx: SandboxProcess) -> None:
    session = browser(sbx)
    response = silent(sbx, session, LITWARE["domain"])
    assert response.headers["Location"].split("?")[0] == REDIRECT_URI and "<form" not in response.text
    assert_error_redirect(response, "login_required", 50058)
    # A cookie the sandbox never issued is no session either.
    session.cookies.set(COOKIE, secrets.token_urlsafe(32), domain=urlsplit(sbx.base_url).hostname)
    assert_error_redirect(silent(sbx, session, LITWARE["domain"], state="st-2"), "login_required", 50058, "st-2")


def test_prompt_none_with_another_tenants_account_is_login_required(sbx: SandboxProcess) -> None:
    session = browser(sbx)
    redirect_query(sign_in(sbx, session, CONTOSO["domain"], BOB["mail"]))
    assert_error_redirect(silent(sbx, session, LITWARE["domain"]), "login_required", 50058)
    assert "code" in redirect_query(silent(sbx, session, CONTOSO["domain"]))


def test_prompt_none_with_a_login_hint_for_someone_else_is_login_required(sbx: SandboxProcess) -> None:
    session = browser(sbx)
    redirect_query(sign_in(sbx, session, LITWARE["domain"], EVE["mail"]))
    assert_error_redirect(silent(sbx, session, LITWARE["domain"], login_hint=DANA["mail"]), "login_required", 50058)
    hinted = redirect_query(silent(sbx, session, LITWARE["domain"], login_hint=EVE["mail"].upper()))
    assert id_token_of(sbx, hinted["code"], LITWARE["tenantId"])["oid"] == EVE["id"]


def test_two_accounts_in_one_browser_need_a_login_hint(sbx: SandboxProcess) -> None:
    session = browser(sbx)
    redirect_query(sign_in(sbx, session, LITWARE["domain"], EVE["mail"]))
    redirect_query(sign_in(sbx, session, LITWARE["domain"], DANA["mail"]))
    assert_error_redirect(silent(sbx, session, LITWARE["domain"]), "login_required", 50058)
    for user in (EVE, DANA):
        query = redirect_query(silent(sbx, session, LITWARE["domain"], login_hint=user["id"]))
        assert id_token_of(sbx, query["code"], LITWARE["tenantId"])["oid"] == user["id"]


def test_prompt_none_when_consent_is_needed_is_interaction_required(sbx: SandboxProcess) -> None:
    session = browser(sbx)
    redirect_query(sign_in(sbx, session, LITWARE["domain"], EVE["mail"], scope="openid User.Read"))
    # Eve consented to User.Read only: Calendars.ReadWrite would need her consent.
    assert_error_redirect(silent(sbx, session, LITWARE["domain"], scope=f"openid {GRAPH}/Calendars.ReadWrite"),
                          "interaction_required", 65001)
    assert "code" in redirect_query(silent(sbx, session, LITWARE["domain"], scope="openid User.Read"))


def test_a_refused_admin_consent_still_signs_in_but_the_app_is_not_in_the_tenant(sbx: SandboxProcess) -> None:
    session = browser(sbx)
    form, _ = open_page(session, consent_url(sbx.base_url, LITWARE["domain"], client_id=CLIENT_ID,
                                             scope=f"{GRAPH}/.default", redirect_uri=REDIRECT_URI))
    refused = submit(session, sbx.base_url, form, "accept", CAM["mail"])
    assert redirect_query(refused)["error_description"].startswith("AADSTS90094: ")
    assert refused.headers["Set-Cookie"].startswith(f"{COOKIE}=")
    # Cam is signed in, but the app has no service principal in Litware: even openid needs consent.
    assert_error_redirect(silent(sbx, session, LITWARE["domain"], scope="openid"), "interaction_required", 65001)


@pytest.mark.parametrize("prompt", ["select_account", "login", "consent"])
def test_other_prompts_show_the_page_even_with_a_session(sbx: SandboxProcess, prompt: str) -> None:
    session = browser(sbx)
    redirect_query(sign_in(sbx, session, LITWARE["domain"], EVE["mail"]))
    page = session.get(authorize_url(sbx.base_url, LITWARE["domain"], **authorize_params(prompt=prompt)),
                       allow_redirects=False)
    assert page.status_code == 200, page.text
    form, _ = parse_page(page.text)
    assert form.forms == 1 and form.hidden["prompt"] == prompt
    assert "code" in redirect_query(submit(session, sbx.base_url, form, "accept", EVE["mail"]))


@pytest.mark.parametrize("prompt", ["admin_consent", "consent select_account", "create", "NONE", ""])
def test_unsupported_prompt_values_get_an_error_page_90023(sbx: SandboxProcess, prompt: str) -> None:
    session = browser(sbx)
    redirect_query(sign_in(sbx, session, LITWARE["domain"], EVE["mail"]))
    response = session.get(authorize_url(sbx.base_url, LITWARE["domain"], **authorize_params(prompt=prompt)),
                           allow_redirects=False)
    assert response.status_code == 400 and "Location" not in response.headers
    form, text = parse_page(response.text)
    assert form.forms == 0 and "AADSTS90023: Unsupported 'prompt' value." in text


def test_reset_and_revoked_sessions_end_sign_in(sbx: SandboxProcess) -> None:
    eve_browser, dana_browser = browser(sbx), browser(sbx)
    redirect_query(sign_in(sbx, eve_browser, LITWARE["domain"], EVE["mail"]))
    redirect_query(sign_in(sbx, dana_browser, LITWARE["domain"], DANA["mail"]))
    assert "code" in redirect_query(silent(sbx, eve_browser, LITWARE["domain"]))
    revoked = sbx.session().post(f"{sbx.base_url}/_sandbox/users/{EVE['mail']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["signInSessionsEnded"] == 1
    assert_error_redirect(silent(sbx, eve_browser, LITWARE["domain"]), "login_required", 50058)
    assert "code" in redirect_query(silent(sbx, dana_browser, LITWARE["domain"]))
    sbx.reset({"apps": SEED["apps"], "tenants": SEED["tenants"]})
    assert dana_browser.cookies.get(COOKIE)  # the browser still sends it; the sandbox forgot it
    assert_error_redirect(silent(sbx, dana_browser, LITWARE["domain"]), "login_required", 50058)


# -- wids ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("user", "wids"), [(DANA, [GLOBAL_ADMIN, MEMBER_USER]), (CAM, [CLOUD_APP_ADMIN, MEMBER_USER]),
                                            (EVE, [MEMBER_USER])])
def test_id_tokens_carry_the_users_directory_roles_in_wids(sbx: SandboxProcess, user: dict[str, Any],
                                                           wids: list[str]) -> None:
    claims = signed_in_id_token(sbx, user, LITWARE)
    assert claims["wids"] == wids
    assert "groups" not in claims  # DirectoryRole asks for roles only


def test_without_group_membership_claims_there_is_no_wids(sbx: SandboxProcess) -> None:
    plain = {k: v for k, v in copy.deepcopy(APP).items() if k != "groupMembershipClaims"}
    sbx.reset({"apps": [plain, *SEED["apps"][1:]], "tenants": SEED["tenants"]})
    assert "wids" not in signed_in_id_token(sbx, DANA, LITWARE)
    sbx.reset({"apps": [{**plain, "groupMembershipClaims": "None"}, *SEED["apps"][1:]], "tenants": SEED["tenants"]})
    assert "wids" not in signed_in_id_token(sbx, DANA, LITWARE)


def test_all_adds_the_users_groups(sbx: SandboxProcess) -> None:
    group = {"id": "5f0c1d2e-3a4b-4c5d-8e6f-7a8b9c0d1e2f", "mail": "planners@litware.example",
             "members": [CAM["mail"]]}
    tenants = [t if t is not LITWARE else {**LITWARE, "groups": [group]} for t in SEED["tenants"]]
    sbx.reset({"apps": [{**APP, "groupMembershipClaims": "All"}, *SEED["apps"][1:]], "tenants": tenants})
    cam = signed_in_id_token(sbx, CAM, LITWARE)
    assert (cam["wids"], cam["groups"]) == ([CLOUD_APP_ADMIN, MEMBER_USER], [group["id"]])
    assert "groups" not in signed_in_id_token(sbx, EVE, LITWARE)


@pytest.mark.parametrize(("where", "change", "fragment"), [
    ("user", {"roles": ["Cloud App Admin"]}, "/tenants/3/users/2/roles/0"),
    ("user", {"roles": ["00000000-0000-0000-0000-000000000001"]}, "/tenants/3/users/2/roles/0"),
    ("user", {"roles": "Global Administrator"}, "/tenants/3/users/2/roles"),
    ("app", {"groupMembershipClaims": "SecurityGroup"}, "/apps/0/groupMembershipClaims"),
    ("app", {"groupMembershipClaims": "directoryrole"}, "/apps/0/groupMembershipClaims"),
])
def test_bad_roles_or_group_membership_claims_are_seed_errors(sbx: SandboxProcess, where: str,
                                                              change: dict[str, Any], fragment: str) -> None:
    seed = copy.deepcopy({"apps": SEED["apps"], "tenants": SEED["tenants"]})
    target = seed["tenants"][3]["users"][2] if where == "user" else seed["apps"][0]
    target.update(change)
    response = sbx.session().post(f"{sbx.base_url}/_sandbox/reset", json=seed)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"]["message"]


def test_roles_by_name_in_any_case_or_by_template_id(sbx: SandboxProcess) -> None:
    tenants = copy.deepcopy(SEED["tenants"])
    tenants[3]["users"][1]["roles"] = ["privileged role administrator", CLOUD_APP_ADMIN.upper()]
    sbx.reset({"apps": SEED["apps"], "tenants": tenants})
    assert signed_in_id_token(sbx, EVE, LITWARE)["wids"] == [PRIVILEGED_ROLE_ADMIN, CLOUD_APP_ADMIN, MEMBER_USER]


# -- admin consent by role ---------------------------------------------------------------------------------

def admin_consent(sbx: SandboxProcess, account: str, scope: str, tenant: dict[str, Any] = LITWARE) -> dict[str, str]:
    session = browser(sbx)
    form, _ = open_page(session, consent_url(sbx.base_url, tenant["domain"], client_id=CLIENT_ID, scope=scope,
                                             redirect_uri=REDIRECT_URI, state="ac"))
    return redirect_query(submit(session, sbx.base_url, form, "accept", account))


def test_cloud_application_administrator_grants_delegated_but_not_graph_application_permissions(
        sbx: SandboxProcess) -> None:
    refused = admin_consent(sbx, CAM["mail"], f"{GRAPH}/.default")
    assert (refused["admin_consent"], refused["error"], refused["state"]) == ("True", "access_denied", "ac")
    assert refused["error_description"].startswith("AADSTS90094: ")
    assert client_credentials(sbx, LITWARE["tenantId"])["error_codes"] == [700016]
    delegated = f"{GRAPH}/Calendars.ReadWrite {GRAPH}/User.Read openid"
    assert admin_consent(sbx, EVE["mail"], delegated)["error_description"].startswith("AADSTS90094: ")
    granted = admin_consent(sbx, CAM["mail"], delegated)
    assert (granted["admin_consent"], granted["tenant"]) == ("True", LITWARE["tenantId"]) and "error" not in granted
    assert roles_of(client_credentials(sbx, LITWARE["tenantId"])) == []  # a service principal, no app roles
    # Eve needs no consent of her own now: prompt=none signs her in with the delegated scopes.
    session = browser(sbx)
    redirect_query(sign_in(sbx, session, LITWARE["domain"], EVE["mail"], scope="openid"))
    assert "code" in redirect_query(silent(sbx, session, LITWARE["domain"], scope=f"openid {delegated}"))
    # The Global Administrator grants the application permissions.
    assert "error" not in admin_consent(sbx, DANA["mail"], f"{GRAPH}/.default")
    assert roles_of(client_credentials(sbx, LITWARE["tenantId"])) == ["Calendars.ReadWrite"]


@pytest.mark.parametrize(("roles", "default_ok"), [
    (["Privileged Role Administrator"], True), (["Application Administrator"], False), (["Global Reader"], False)])
def test_what_each_role_may_grant(sbx: SandboxProcess, roles: list[str], default_ok: bool) -> None:
    tenants = copy.deepcopy(SEED["tenants"])
    tenants[3]["users"][1]["roles"] = roles  # Eve
    sbx.reset({"apps": SEED["apps"], "tenants": tenants})
    delegated = admin_consent(sbx, EVE["mail"], f"{GRAPH}/User.Read")
    assert ("error" not in delegated) is (roles != ["Global Reader"])
    default = admin_consent(sbx, EVE["mail"], f"{GRAPH}/.default")
    assert ("error" not in default) is default_ok


def test_an_app_administrator_consents_for_themselves_where_user_consent_is_off(sbx: SandboxProcess) -> None:
    tenants = copy.deepcopy(SEED["tenants"])
    tenants[3]["allowUserConsent"] = False
    sbx.reset({"apps": SEED["apps"], "tenants": tenants})
    eve = redirect_query(sign_in(sbx, browser(sbx), LITWARE["domain"], EVE["mail"]))
    assert eve["error"] == "access_denied" and eve["error_description"].startswith("AADSTS90093: ")
    assert "code" in redirect_query(sign_in(sbx, browser(sbx), LITWARE["domain"], CAM["mail"]))
