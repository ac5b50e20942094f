"""The sandbox's identity platform and managed-identity endpoint, driven by the real MSAL client
over HTTPS (the sandbox CA bundle; verification never off)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from sandbox.testing import SandboxProcess, start_sandbox
from tests.conftest import SANDBOX_SEED

pytestmark = pytest.mark.integration

SEED_PATH = SANDBOX_SEED  # tests/sandbox_seed.json moved to the tests' day
SEED: dict[str, Any] = json.loads(SEED_PATH.read_text(encoding="utf-8"))
HOME = SEED["homeTenantId"]
APP = SEED["apps"][0]
CLIENT_ID, SECRET = APP["clientId"], APP["clientSecret"]
CONSENTED = SEED["tenants"][0]       # fabrikam.example, Calendars.ReadWrite granted
NOT_CONSENTED = SEED["tenants"][1]   # contoso.example
DELEGATED_ONLY = SEED["tenants"][2]  # northwind.example: service principal, no application grant
GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    sbx = start_sandbox(tmp_path_factory.mktemp("sandbox-identity"), SEED_PATH)
    yield sbx
    sbx.stop()


@pytest.fixture(autouse=True)
def fresh_seed(sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    # requests (inside MSAL) lets REQUESTS_CA_BUNDLE win over ``verify=``: point it at the bundle.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_bundle))
    sandbox.reset({"apps": SEED["apps"], "tenants": SEED["tenants"]})


def app_for(sandbox: SandboxProcess, tenant: str, credential: Any = SECRET, client_id: str = CLIENT_ID,
            **kwargs: Any) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(client_id, client_credential=credential,
                                              authority=f"{sandbox.base_url}/{tenant}", instance_discovery=False,
                                              verify=str(sandbox.ca_bundle), **kwargs)


def verified_claims(sandbox: SandboxProcess, token: str, audience: str) -> dict[str, Any]:
    """Verify a token's signature against the sandbox's JWKS, as a resource server would."""
    tid = jwt.decode(token, options={"verify_signature": False})["tid"]
    config = sandbox.session().get(f"{sandbox.base_url}/{tid}/v2.0/.well-known/openid-configuration").json()
    jwks = jwt.PyJWKSet.from_dict(sandbox.session().get(config["jwks_uri"]).json())
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(k for k in jwks.keys if k.key_id == kid)
    return jwt.decode(token, key.key, algorithms=["RS256"], audience=audience,
                      issuer=f"https://sts.windows.net/{tid}/")


def make_certificate() -> tuple[str, str, str]:
    """(private key PEM, certificate PEM, SHA-1 thumbprint hex) of a new self-signed certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "10kc-test-client")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode(), cert.fingerprint(hashes.SHA1()).hex()  # noqa: S303


def seed_with_certificates(*pems: str) -> dict[str, Any]:
    apps = copy.deepcopy(SEED["apps"])
    apps[0]["certificates"] = list(pems)
    return {"apps": apps, "tenants": SEED["tenants"]}


def token_post(sandbox: SandboxProcess, tenant: str, **form: str) -> requests.Response:
    return sandbox.session().post(f"{sandbox.base_url}/{tenant}/oauth2/v2.0/token", data=form)


# -- client credentials with MSAL ----------------------------------------------------------------

@pytest.mark.parametrize("tenant_key", ["tenantId", "domain"])
def test_msal_client_credentials_for_a_consented_tenant(sandbox: SandboxProcess, tenant_key: str) -> None:
    start = sandbox.next_request_index()
    app = app_for(sandbox, CONSENTED[tenant_key])
    result = app.acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer"
    assert 3000 < result["expires_in"] <= 3599
    claims = verified_claims(sandbox, result["access_token"], "https://graph.microsoft.com")
    assert claims["tid"] == CONSENTED["tenantId"]
    assert claims["appid"] == CLIENT_ID
    assert claims["roles"] == ["Calendars.ReadWrite"]
    assert claims["idtyp"] == "app"
    assert claims["appidacr"] == "1"
    assert claims["sub"] == claims["oid"]

    again = app.acquire_token_for_client(GRAPH_SCOPE)
    assert again["token_source"] == "cache"
    token_calls = [r for r in sandbox.requests(since=start) if r["path"].endswith("/oauth2/v2.0/token")]
    assert len(token_calls) == 1
    assert token_calls[0]["path"] == f"/{CONSENTED['tenantId']}/oauth2/v2.0/token"


def test_msal_with_oidc_authority_accepts_the_issuer(sandbox: SandboxProcess) -> None:
    app = msal.ConfidentialClientApplication(
        CLIENT_ID, client_credential=SECRET, oidc_authority=f"{sandbox.base_url}/{CONSENTED['tenantId']}/v2.0",
        verify=str(sandbox.ca_bundle))
    result = app.acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" in result, result


def test_service_principal_oid_is_stable_per_tenant(sandbox: SandboxProcess) -> None:
    first = app_for(sandbox, CONSENTED["tenantId"]).acquire_token_for_client(GRAPH_SCOPE)["access_token"]
    second = app_for(sandbox, CONSENTED["domain"]).acquire_token_for_client(GRAPH_SCOPE)["access_token"]
    home = app_for(sandbox, HOME).acquire_token_for_client(["https://vault.azure.net/.default"])["access_token"]
    oid = [jwt.decode(t, options={"verify_signature": False})["oid"] for t in (first, second, home)]
    assert oid[0] == oid[1] != oid[2]


def test_not_consented_tenant_is_unauthorized_client_700016(sandbox: SandboxProcess) -> None:
    result = app_for(sandbox, NOT_CONSENTED["domain"]).acquire_token_for_client(GRAPH_SCOPE)
    assert result["error"] == "unauthorized_client"
    assert result["error_codes"] == [700016]
    assert result["error_description"].startswith("AADSTS700016: ")


def test_service_principal_without_application_grant_gets_a_token_without_roles(sandbox: SandboxProcess) -> None:
    result = app_for(sandbox, DELEGATED_ONLY["domain"]).acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" in result, result
    assert "roles" not in verified_claims(sandbox, result["access_token"], "https://graph.microsoft.com")


def test_wrong_secret_is_invalid_client_7000215(sandbox: SandboxProcess) -> None:
    result = app_for(sandbox, CONSENTED["tenantId"], credential="not-the-secret").acquire_token_for_client(GRAPH_SCOPE)
    assert result["error"] == "invalid_client"
    assert result["error_codes"] == [7000215]


def test_unknown_app_is_unauthorized_client_700016(sandbox: SandboxProcess) -> None:
    app = app_for(sandbox, CONSENTED["tenantId"], client_id="00000000-1111-2222-3333-444444444444")
    result = app.acquire_token_for_client(GRAPH_SCOPE)
    assert (result["error"], result["error_codes"]) == ("unauthorized_client", [700016])


def test_home_tenant_app_gets_a_vault_token(sandbox: SandboxProcess) -> None:
    result = app_for(sandbox, HOME).acquire_token_for_client(["https://vault.azure.net/.default"])
    claims = verified_claims(sandbox, result["access_token"], "https://vault.azure.net")
    assert claims["tid"] == HOME
    assert "roles" not in claims


@pytest.mark.parametrize("form", ["thumbprint", "public_certificate"])
def test_certificate_credential(sandbox: SandboxProcess, form: str) -> None:
    key_pem, cert_pem, thumbprint = make_certificate()
    sandbox.reset(seed_with_certificates(cert_pem))
    credential = ({"private_key": key_pem, "thumbprint": thumbprint} if form == "thumbprint"
                  else {"private_key": key_pem, "public_certificate": cert_pem})
    result = app_for(sandbox, CONSENTED["domain"], credential=credential).acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" in result, result
    claims = verified_claims(sandbox, result["access_token"], "https://graph.microsoft.com")
    assert claims["appidacr"] == "2"
    assert claims["roles"] == ["Calendars.ReadWrite"]


def test_unregistered_certificate_is_invalid_client_700027(sandbox: SandboxProcess) -> None:
    _, registered, _ = make_certificate()
    key_pem, _, thumbprint = make_certificate()
    sandbox.reset(seed_with_certificates(registered))
    credential = {"private_key": key_pem, "thumbprint": thumbprint}
    result = app_for(sandbox, CONSENTED["domain"], credential=credential).acquire_token_for_client(GRAPH_SCOPE)
    assert (result["error"], result["error_codes"]) == ("invalid_client", [700027])


def test_assertion_signed_by_another_key_is_rejected(sandbox: SandboxProcess) -> None:
    _, registered, thumbprint_hex = make_certificate()
    other_key, _, _ = make_certificate()
    sandbox.reset(seed_with_certificates(registered))
    # The header names the registered certificate, but another key signed the assertion.
    credential = {"private_key": other_key, "thumbprint": thumbprint_hex}
    result = app_for(sandbox, CONSENTED["tenantId"], credential=credential).acquire_token_for_client(GRAPH_SCOPE)
    assert (result["error"], result["error_codes"]) == ("invalid_client", [700027])


# -- the token endpoint's errors, raw ---------------------------------------------------------------

def assert_aad_error(response: requests.Response, status: int, error: str, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    description = body["error_description"]
    assert description.startswith(f"AADSTS{code}: ")
    assert f"\r\nTrace ID: {body['trace_id']}\r\nCorrelation ID: {body['correlation_id']}\r\nTimestamp: " in description
    assert set(body) >= {"timestamp", "trace_id", "correlation_id"}
    return body


def test_token_endpoint_errors(sandbox: SandboxProcess) -> None:
    tid = CONSENTED["tenantId"]
    base = {"client_id": CLIENT_ID, "client_secret": SECRET}
    assert_aad_error(token_post(sandbox, tid, grant_type="client_credentials", scope="https://example.com/.default",
                                **base), 400, "invalid_scope", 70011)
    assert_aad_error(token_post(sandbox, tid, grant_type="client_credentials",
                                scope="https://graph.microsoft.com/Calendars.Read", **base),
                     400, "invalid_scope", 1002012)
    assert_aad_error(token_post(sandbox, tid, grant_type="urn:example:not-a-grant", code="x", **base),
                     400, "unsupported_grant_type", 70003)
    assert_aad_error(token_post(sandbox, tid, scope=GRAPH_SCOPE[0], **base), 400, "invalid_request", 900144)
    assert_aad_error(token_post(sandbox, tid, grant_type="client_credentials", client_id=CLIENT_ID,
                                scope=GRAPH_SCOPE[0]), 401, "invalid_client", 7000218)
    assert_aad_error(token_post(sandbox, "nowhere.example", grant_type="client_credentials", scope=GRAPH_SCOPE[0],
                                **base), 400, "invalid_request", 90002)
    assert_aad_error(token_post(sandbox, "organizations", grant_type="client_credentials", scope=GRAPH_SCOPE[0],
                                **base), 400, "invalid_request", 90019)
    assert_aad_error(token_post(sandbox, tid, grant_type="client_credentials", scope=GRAPH_SCOPE[0],
                                client_id=CLIENT_ID, client_assertion="not-a-jwt",
                                client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                     401, "invalid_client", 700027)


def test_error_echoes_the_client_request_id_as_correlation_id(sandbox: SandboxProcess) -> None:
    response = sandbox.session().post(f"{sandbox.base_url}/{CONSENTED['tenantId']}/oauth2/v2.0/token",
                                      data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
                                            "client_secret": "wrong", "scope": GRAPH_SCOPE[0]},
                                      headers={"client-request-id": "7d1c4a52-3c1a-4d35-9d1e-0f0e6c8b1a11"})
    body = assert_aad_error(response, 401, "invalid_client", 7000215)
    assert body["correlation_id"] == "7d1c4a52-3c1a-4d35-9d1e-0f0e6c8b1a11"
    assert response.headers["client-request-id"] == "7d1c4a52-3c1a-4d35-9d1e-0f0e6c8b1a11"


def test_client_secret_basic(sandbox: SandboxProcess) -> None:
    response = sandbox.session().post(f"{sandbox.base_url}/{CONSENTED['domain']}/oauth2/v2.0/token",
                                      data={"grant_type": "client_credentials", "scope": GRAPH_SCOPE[0]},
                                      auth=(CLIENT_ID, SECRET))
    assert response.status_code == 200, response.text
    assert response.json()["ext_expires_in"] == response.json()["expires_in"]


# -- discovery -------------------------------------------------------------------------------------

def test_openid_configuration(sandbox: SandboxProcess) -> None:
    tid = CONSENTED["tenantId"]
    by_domain = f"{sandbox.base_url}/{CONSENTED['domain']}/v2.0/.well-known/openid-configuration"
    doc = sandbox.session().get(by_domain).json()
    assert doc["issuer"] == f"{sandbox.base_url}/{tid}/v2.0"
    assert doc["token_endpoint"] == f"{sandbox.base_url}/{tid}/oauth2/v2.0/token"
    assert doc["authorization_endpoint"] == f"{sandbox.base_url}/{tid}/oauth2/v2.0/authorize"
    assert doc["jwks_uri"] == f"{sandbox.base_url}/{tid}/discovery/v2.0/keys"

    orgs = sandbox.session().get(f"{sandbox.base_url}/organizations/v2.0/.well-known/openid-configuration").json()
    assert orgs["issuer"] == f"{sandbox.base_url}/{{tenantid}}/v2.0"
    assert orgs["token_endpoint"] == f"{sandbox.base_url}/organizations/oauth2/v2.0/token"

    keys = sandbox.session().get(doc["jwks_uri"]).json()["keys"]
    assert len(keys) == 1 and keys[0]["kty"] == "RSA" and keys[0]["kid"] and keys[0]["use"] == "sig"

    unknown = sandbox.session().get(f"{sandbox.base_url}/nowhere.example/v2.0/.well-known/openid-configuration")
    assert_aad_error(unknown, 400, "invalid_tenant", 90002)


# -- managed identity ---------------------------------------------------------------------------------

def test_managed_identity_endpoint(sandbox: SandboxProcess) -> None:
    url = sandbox.identity_endpoint
    params = {"api-version": "2019-08-01", "resource": "https://vault.azure.net"}  # an API version, not a date
    assert sandbox.session().get(url, params=params).status_code == 400
    assert sandbox.session().get(url, params=params, headers={"X-IDENTITY-HEADER": "wrong"}).status_code == 401
    response = sandbox.session().get(url, params=params, headers={"X-IDENTITY-HEADER": sandbox.identity_header})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert isinstance(body["expires_on"], str) and int(body["expires_on"]) > time.time() + 3600
    assert (body["resource"], body["token_type"]) == ("https://vault.azure.net", "Bearer")
    claims = verified_claims(sandbox, body["access_token"], "https://vault.azure.net")
    assert claims["tid"] == HOME
    assert claims["appid"] == body["client_id"]
