"""The sandbox's delegated token grants (authorization_code, refresh_token) with the real MSAL
client over HTTPS, and the revoke controls.

Microsoft's documented behaviour they follow:
- https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-auth-code-flow (code
  redemption, PKCE, refresh; refresh_token only with offline_access, id_token only with openid)
- https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens (a new refresh token on
  every use, the old one not revoked; 90 days; revoked by an admin)
- https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes (AADSTS codes)
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import msal
import pytest
import requests

from sandbox.server import RunningServer, serve_in_thread
from sandbox.testing import SandboxProcess, free_port
from tests.integration.test_sandbox_consent import (
    APP,
    BASE_SEED,
    CLIENT_ID,
    CONTOSO,
    FABRIKAM,
    REDIRECT_URI,
    SECRET,
    SEED,
    authorize_url,
    client_credentials,
    consent_url,
    open_page,
    redirect_query,
    submit,
)
from tests.integration.test_sandbox_identity import make_certificate

pytestmark = [pytest.mark.integration,
              # The sandbox answers response_mode=query only (SANDBOX.md); MSAL recommends form_post.
              pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended:UserWarning")]

GRAPH = "https://graph.microsoft.com"
CALENDARS = [f"{GRAPH}/Calendars.ReadWrite"]
BOB, ADA = CONTOSO["users"][1], CONTOSO["users"][0]
OTHER_APP = {**copy.deepcopy(APP), "clientId": "6f0e3c2a-9d4b-4a1e-8c7d-5b6a4f3e2d10", "clientSecret": "other~secret",
             "displayName": "Another app"}


@pytest.fixture
def sbx(sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> SandboxProcess:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_bundle))
    sandbox.reset({**SEED, "apps": [APP, OTHER_APP]})
    return sandbox


def app_for(base_url: str, tenant: str, credential: Any = SECRET,
            client_id: str = CLIENT_ID) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(client_id, client_credential=credential,
                                              authority=f"{base_url}/{tenant}", instance_discovery=False)


def sign_in(session: requests.Session, base_url: str, app: msal.ConfidentialClientApplication, account: str,
            scopes: list[str] = CALENDARS) -> tuple[dict[str, Any], dict[str, str]]:
    """MSAL's auth code flow through the sandbox's authorize page: (flow, the redirect's query)."""
    flow = app.initiate_auth_code_flow(scopes, redirect_uri=REDIRECT_URI, login_hint=account, response_mode="query")
    form, _ = open_page(session, flow["auth_uri"])
    assert form.selected == [account]
    return flow, redirect_query(submit(session, base_url, form, "accept"))


def signed_in(sbx: SandboxProcess, tenant: str = CONTOSO["tenantId"], account: str = BOB["mail"],
              **kwargs: Any) -> tuple[msal.ConfidentialClientApplication, dict[str, Any]]:
    app = app_for(sbx.base_url, tenant, **kwargs)
    flow, query = sign_in(sbx.session(), sbx.base_url, app, account)
    result = app.acquire_token_by_auth_code_flow(flow, query)
    assert "access_token" in result, result
    return app, result


def verified(sbx: SandboxProcess, token: str, audience: str, issuer: str) -> dict[str, Any]:
    """Check a token's signature against the sandbox's JWKS, as a resource server would."""
    tid = jwt.decode(token, options={"verify_signature": False})["tid"]
    config = sbx.session().get(f"{sbx.base_url}/{tid}/v2.0/.well-known/openid-configuration").json()
    keys = jwt.PyJWKSet.from_dict(sbx.session().get(config["jwks_uri"]).json())
    key = next(k for k in keys.keys if k.key_id == jwt.get_unverified_header(token)["kid"])
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=audience, issuer=issuer)


def token_post(base_url: str, tenant: str, session: requests.Session, **form: str) -> requests.Response:
    return session.post(f"{base_url}/{tenant}/oauth2/v2.0/token", data=form)


def assert_invalid_grant(result: dict[str, Any] | requests.Response, code: int, error: str = "invalid_grant") -> None:
    body = result.json() if isinstance(result, requests.Response) else result
    if isinstance(result, requests.Response):
        assert result.status_code == 400, result.text
    assert body["error"] == error, body
    assert body["error_codes"] == [code], body
    assert body["error_description"].startswith(f"AADSTS{code}: ")


def raw_code(session: requests.Session, base_url: str, tenant: str, account: str, *, scope: str,
             verifier: str | None = None, nonce: str | None = None) -> str:
    """A code through the authorize page, without MSAL (to control every parameter)."""
    params = {"client_id": CLIENT_ID, "response_type": "code", "redirect_uri": REDIRECT_URI, "scope": scope,
              "state": "st", "login_hint": account}
    if verifier:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        params.update(code_challenge=challenge, code_challenge_method="S256")
    if nonce:
        params["nonce"] = nonce
    form, _ = open_page(session, authorize_url(base_url, tenant, **params))
    return redirect_query(submit(session, base_url, form, "accept"))["code"]


def redeem(sbx: SandboxProcess, code: str, tenant: str = CONTOSO["tenantId"], **form: str) -> requests.Response:
    body = {"grant_type": "authorization_code", "client_id": CLIENT_ID, "client_secret": SECRET, "code": code,
            "redirect_uri": REDIRECT_URI, **form}
    return token_post(sbx.base_url, tenant, sbx.session(), **{k: v for k, v in body.items() if v is not None})


# -- the happy path with MSAL -----------------------------------------------------------------------

def test_msal_auth_code_flow_answers_tokens_for_the_signed_in_user(sbx: SandboxProcess) -> None:
    app, result = signed_in(sbx)
    claims = result["id_token_claims"]  # MSAL checked the nonce against its flow
    assert (claims["oid"], claims["tid"], claims["preferred_username"]) == (BOB["id"], CONTOSO["tenantId"],
                                                                           BOB["mail"])
    assert result["token_type"] == "Bearer" and 3000 < result["expires_in"] <= 3599
    assert result["scope"].split()[0] == CALENDARS[0]
    assert json.loads(base64.urlsafe_b64decode(result["client_info"] + "==")) == {"uid": BOB["id"],
                                                                                   "utid": CONTOSO["tenantId"]}
    access = verified(sbx, result["access_token"], GRAPH, f"https://sts.windows.net/{CONTOSO['tenantId']}/")
    assert access["idtyp"] == "user" and "roles" not in access
    assert "Calendars.ReadWrite" in access["scp"].split()
    assert (access["oid"], access["tid"], access["appid"], access["upn"]) == (BOB["id"], CONTOSO["tenantId"],
                                                                              CLIENT_ID, BOB["mail"])
    id_token = verified(sbx, result["id_token"], CLIENT_ID, f"{sbx.base_url}/{CONTOSO['tenantId']}/v2.0")
    assert id_token["ver"] == "2.0" and id_token["email"] == BOB["mail"] and id_token["name"] == BOB["displayName"]
    assert id_token["nonce"] and id_token["sub"] != id_token["oid"]
    # MSAL keeps the account; a silent call is served from its cache.
    accounts = app.get_accounts()
    assert [a["username"] for a in accounts] == [BOB["mail"]]
    assert app.acquire_token_silent(CALENDARS, account=accounts[0])["access_token"] == result["access_token"]


def test_refresh_token_rotates_and_the_old_one_stays_valid(sbx: SandboxProcess) -> None:
    app, first = signed_in(sbx)
    second = app.acquire_token_by_refresh_token(first["refresh_token"], CALENDARS)
    assert "access_token" in second, second
    assert second["refresh_token"] != first["refresh_token"]
    again = app_for(sbx.base_url, CONTOSO["tenantId"]).acquire_token_by_refresh_token(first["refresh_token"], CALENDARS)
    assert "access_token" in again, again
    third = app_for(sbx.base_url, CONTOSO["domain"]).acquire_token_by_refresh_token(second["refresh_token"], CALENDARS)
    assert "access_token" in third, third
    assert jwt.decode(third["access_token"], options={"verify_signature": False})["oid"] == BOB["id"]


def test_certificate_credential_redeems_codes_too(sbx: SandboxProcess) -> None:
    key_pem, cert_pem, thumbprint = make_certificate()
    sbx.reset({**SEED, "apps": [{**APP, "certificates": [cert_pem]}, OTHER_APP]})
    _, result = signed_in(sbx, credential={"private_key": key_pem, "thumbprint": thumbprint})
    assert jwt.decode(result["access_token"], options={"verify_signature": False})["appidacr"] == "2"


def test_organizations_authority_signs_in_the_chosen_accounts_tenant(sbx: SandboxProcess) -> None:
    app = app_for(sbx.base_url, "organizations")
    flow, query = sign_in(sbx.session(), sbx.base_url, app, FABRIKAM["users"][0]["mail"])
    result = app.acquire_token_by_auth_code_flow(flow, query)
    assert result["id_token_claims"]["tid"] == FABRIKAM["tenantId"], result


# -- revocation ----------------------------------------------------------------------------------------

def test_revoking_the_tenants_consent_stops_refresh_65001_and_client_credentials_700016(sbx: SandboxProcess) -> None:
    # The admin grants the application permissions first, so that client credentials work before.
    form, _ = open_page(sbx.session(), consent_url(sbx.base_url, CONTOSO["tenantId"], client_id=CLIENT_ID,
                                                   scope=f"{GRAPH}/.default", redirect_uri=REDIRECT_URI))
    redirect_query(submit(sbx.session(), sbx.base_url, form, "accept", ADA["mail"]))
    assert "access_token" in client_credentials(sbx, CONTOSO["tenantId"])
    app, result = signed_in(sbx)
    response = sbx.session().post(f"{sbx.base_url}/_sandbox/tenants/{CONTOSO['tenantId']}/revoke")
    assert response.status_code == 200
    summary = response.json()
    assert (summary["tenantId"], summary["revokedClientIds"]) == (CONTOSO["tenantId"], [CLIENT_ID])
    assert summary["refreshTokensRevoked"] >= 1  # earlier tests' tokens for this tenant id count too
    refreshed = app.acquire_token_by_refresh_token(result["refresh_token"], CALENDARS)
    assert_invalid_grant(refreshed, 65001)
    assert refreshed.get("suberror") == "consent_required"
    # Documented as AADSTS700016 for an app without a service principal in the tenant.
    failed = client_credentials(sbx, CONTOSO["tenantId"])
    assert (failed["error"], failed["error_codes"]) == ("unauthorized_client", [700016])


def test_revoking_a_users_sessions_stops_their_refresh_tokens_50173(sbx: SandboxProcess) -> None:
    app, bob = signed_in(sbx)
    _, ada = signed_in(sbx, account=ADA["mail"])
    response = sbx.session().post(f"{sbx.base_url}/_sandbox/users/{BOB['mail']}/revoke")
    summary = response.json()
    assert (summary["userId"], summary["tenantId"]) == (BOB["id"], CONTOSO["tenantId"])
    assert summary["refreshTokensRevoked"] >= 1
    assert_invalid_grant(app.acquire_token_by_refresh_token(bob["refresh_token"], CALENDARS), 50173)
    assert "access_token" in app.acquire_token_by_refresh_token(ada["refresh_token"], CALENDARS)
    assert sbx.session().post(f"{sbx.base_url}/_sandbox/users/nobody@contoso.example/revoke").status_code == 404


# -- the grants' errors, raw -----------------------------------------------------------------------------

def test_a_code_is_single_use_54005(sbx: SandboxProcess) -> None:
    code = raw_code(sbx.session(), sbx.base_url, CONTOSO["domain"], BOB["mail"], scope="openid User.Read")
    first = redeem(sbx, code)
    assert first.status_code == 200, first.text
    body = first.json()
    # refresh_token only with offline_access, id_token only with openid (v2-oauth2-auth-code-flow).
    assert "id_token" in body and "refresh_token" not in body and "client_info" not in body
    assert_invalid_grant(redeem(sbx, code), 54005)


def test_pkce_verifier_is_checked_501481(sbx: SandboxProcess) -> None:
    verifier = secrets.token_urlsafe(48)
    code = raw_code(sbx.session(), sbx.base_url, CONTOSO["domain"], BOB["mail"], scope="offline_access User.Read",
                    verifier=verifier)
    assert_invalid_grant(redeem(sbx, code, code_verifier=secrets.token_urlsafe(48)), 501481)
    code = raw_code(sbx.session(), sbx.base_url, CONTOSO["domain"], BOB["mail"], scope="offline_access User.Read",
                    verifier=verifier)
    assert_invalid_grant(redeem(sbx, code), 900144, error="invalid_request")  # no code_verifier at all
    code = raw_code(sbx.session(), sbx.base_url, CONTOSO["domain"], BOB["mail"], scope="offline_access User.Read",
                    verifier=verifier)
    ok = redeem(sbx, code, code_verifier=verifier)
    assert ok.status_code == 200, ok.text
    assert "refresh_token" in ok.json() and "id_token" not in ok.json()


def test_redirect_uri_client_and_tenant_must_be_the_codes(sbx: SandboxProcess) -> None:
    code = raw_code(sbx.session(), sbx.base_url, CONTOSO["domain"], BOB["mail"], scope="User.Read")
    assert_invalid_grant(redeem(sbx, code, redirect_uri=REDIRECT_URI + "/other"), 50011)
    code = raw_code(sbx.session(), sbx.base_url, CONTOSO["domain"], BOB["mail"], scope="User.Read")
    other = redeem(sbx, code, client_id=OTHER_APP["clientId"], client_secret=OTHER_APP["clientSecret"])
    assert_invalid_grant(other, 70000)
    assert_invalid_grant(redeem(sbx, code, tenant=FABRIKAM["tenantId"]), 700005)
    assert_invalid_grant(redeem(sbx, "not-a-code"), 70000)
    assert redeem(sbx, code, client_secret="wrong").json()["error_codes"] == [7000215]


def test_refresh_tokens_are_bound_to_the_client_70000(sbx: SandboxProcess) -> None:
    _, result = signed_in(sbx)
    stolen = token_post(sbx.base_url, CONTOSO["tenantId"], sbx.session(), grant_type="refresh_token",
                        client_id=OTHER_APP["clientId"], client_secret=OTHER_APP["clientSecret"],
                        refresh_token=result["refresh_token"])
    assert_invalid_grant(stolen, 70000)
    unknown = token_post(sbx.base_url, CONTOSO["tenantId"], sbx.session(), grant_type="refresh_token",
                         client_id=CLIENT_ID, client_secret=SECRET, refresh_token="1.sbx-rt.unknown")
    assert_invalid_grant(unknown, 70000)
    elsewhere = token_post(sbx.base_url, FABRIKAM["tenantId"], sbx.session(), grant_type="refresh_token",
                           client_id=CLIENT_ID, client_secret=SECRET, refresh_token=result["refresh_token"])
    assert_invalid_grant(elsewhere, 50020)
    not_consented = token_post(sbx.base_url, CONTOSO["tenantId"], sbx.session(), grant_type="refresh_token",
                               client_id=CLIENT_ID, client_secret=SECRET, refresh_token=result["refresh_token"],
                               scope=f"{GRAPH}/User.Read offline_access")
    assert_invalid_grant(not_consented, 65001)


def test_codes_refresh_tokens_and_secrets_stay_out_of_the_request_log(sbx: SandboxProcess) -> None:
    start = sbx.next_request_index()
    app, result = signed_in(sbx)
    app.acquire_token_by_refresh_token(result["refresh_token"], CALENDARS)
    logged = json.dumps(sbx.requests(since=start))
    assert "/oauth2/v2.0/authorize" in logged and "/oauth2/v2.0/token" in logged
    for secret in (result["refresh_token"], SECRET, result["access_token"], "1.sbx."):
        assert secret not in logged
    assert result["refresh_token"] not in sbx.stderr_text()


# -- expiry, with an in-process sandbox whose clock the test moves ------------------------------------------

@pytest.fixture
def local_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    seed_path = tmp_path / "seed.json"
    seed_path.write_text(json.dumps({"homeTenantId": BASE_SEED["homeTenantId"], "apps": [APP],
                                     "tenants": SEED["tenants"]}))
    running = serve_in_thread(tmp_path / "state", seed_path, free_port())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "state" / "ca-bundle.pem"))
    yield running
    running.stop()


def test_expired_code_70008_and_refresh_token_after_90_days_700082(local_sandbox: RunningServer) -> None:
    base_url = local_sandbox.base_url
    session = requests.Session()
    app = app_for(base_url, CONTOSO["tenantId"])
    grants = local_sandbox.sandbox.grants
    flow, query = sign_in(session, base_url, app, BOB["mail"])
    late = app_for(base_url, CONTOSO["tenantId"])
    grants.clock = lambda: time.time() + 10 * 60 + 1  # authorization codes live 10 minutes
    assert_invalid_grant(late.acquire_token_by_auth_code_flow(flow, query), 70008)

    grants.clock = time.time
    flow, query = sign_in(session, base_url, app, BOB["mail"])
    result = app.acquire_token_by_auth_code_flow(flow, query)
    assert "refresh_token" in result, result
    grants.clock = lambda: time.time() + 89 * 86400
    assert "access_token" in app.acquire_token_by_refresh_token(result["refresh_token"], CALENDARS)
    grants.clock = lambda: time.time() + 90 * 86400 + 1
    assert_invalid_grant(app.acquire_token_by_refresh_token(result["refresh_token"], CALENDARS), 700082)
