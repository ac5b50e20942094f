"""The sandbox as the identity platform of the service's own callers: an app that exposes an API
with an app role, apps that call it with the client credentials flow, v2 access tokens, and the
rotation of the signing keys.

Microsoft's documented behaviour it follows (see sandbox/identity.py):
- https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference (v2.0
  access tokens: `aud` the API's client id, `iss` .../{tid}/v2.0, `azp`, `roles`, `ver`, `tid`)
- https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow
- https://learn.microsoft.com/en-us/entra/identity-platform/howto-add-app-roles-in-apps
- https://learn.microsoft.com/en-us/entra/identity-platform/signing-key-rollover
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest

from sandbox.server import RunningServer, serve_in_thread
from sandbox.testing import free_port
from tests.conftest import SANDBOX_SEED

pytestmark = pytest.mark.integration

SEED: dict[str, Any] = json.loads(SANDBOX_SEED.read_text())
HOME = SEED["homeTenantId"]
API, WEB, NO_ROLE, NOT_ALLOWED = (app for app in SEED["apps"][1:5])
CUSTOMER = SEED["tenants"][0]["tenantId"]


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A sandbox of this module's own (its keys are rotated here), in this process."""
    server = serve_in_thread(tmp_path_factory.mktemp("callers-sandbox"), SANDBOX_SEED, free_port())
    yield server
    server.stop()


def session(server: RunningServer):
    import requests

    s = requests.Session()
    s.trust_env = False
    s.verify = str(server.sandbox.pki.ca_bundle_path)
    return s


def token_answer(server: RunningServer, app: dict[str, Any], scope: str, tenant: str = HOME) -> Any:
    return session(server).post(f"{server.base_url}/{tenant}/oauth2/v2.0/token", timeout=30, data={
        "grant_type": "client_credentials", "client_id": app["clientId"], "client_secret": app["clientSecret"],
        "scope": scope})


def token(server: RunningServer, app: dict[str, Any], scope: str, tenant: str = HOME) -> str:
    answer = token_answer(server, app, scope, tenant)
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def openid(server: RunningServer, tenant: str) -> dict[str, Any]:
    return session(server).get(f"{server.base_url}/{tenant}/v2.0/.well-known/openid-configuration", timeout=30).json()


def verified(server: RunningServer, access_token: str, tenant: str = HOME) -> dict[str, Any]:
    """The token's claims, its signature checked with PyJWT against the keys of the tenant's JWKS."""
    context = ssl.create_default_context(cafile=str(server.sandbox.pki.ca_bundle_path))
    keys = jwt.PyJWKClient(openid(server, tenant)["jwks_uri"], ssl_context=context, cache_jwk_set=False)
    key = keys.get_signing_key_from_jwt(access_token)
    return jwt.decode(access_token, key.key, algorithms=["RS256"], options={"verify_aud": False})


@pytest.mark.parametrize("scope", [f"api://{API['clientId']}/.default", f"{API['clientId']}/.default"],
                         ids=["identifier-uri", "client-id"])
def test_a_caller_gets_a_v2_token_for_the_api_with_its_roles(local, scope):
    claims = verified(local, token(local, WEB, scope))
    assert claims["aud"] == API["clientId"]  # v2: the GUID, whichever form the scope named
    assert claims["iss"] == openid(local, HOME)["issuer"] == f"{local.base_url}/{HOME}/v2.0"
    assert claims["azp"] == claims["appid"] == WEB["clientId"]
    assert claims["roles"] == ["Calendar.Integration"]
    assert claims["ver"] == "2.0" and claims["tid"] == HOME
    assert "scp" not in claims and claims["exp"] > claims["nbf"]


def test_a_caller_without_the_assignment_gets_no_roles(local):
    claims = verified(local, token(local, NO_ROLE, f"api://{API['clientId']}/.default"))
    assert claims["azp"] == NO_ROLE["clientId"] and "roles" not in claims


def test_graph_default_in_the_home_tenant_has_no_roles(local):
    claims = jwt.decode(token(local, WEB, "https://graph.microsoft.com/.default"), options={"verify_signature": False})
    assert claims["aud"] == "https://graph.microsoft.com" and "roles" not in claims


def test_a_customer_tenant_issues_with_its_own_issuer(local):
    customer = {"tenantId": CUSTOMER, "domain": "customer.example",
                "consented": {WEB["clientId"]: {"application": [], "delegated": []}}}
    local.sandbox.state.reset({"tenants": [customer]})
    claims = verified(local, token(local, WEB, f"api://{API['clientId']}/.default", tenant=CUSTOMER), CUSTOMER)
    assert claims["iss"] == openid(local, CUSTOMER)["issuer"] != openid(local, HOME)["issuer"]
    assert claims["tid"] == CUSTOMER and claims["aud"] == API["clientId"]


def test_a_caller_absent_from_a_tenant_gets_no_token_there(local):
    local.sandbox.state.reset({"tenants": [{"tenantId": CUSTOMER, "domain": "customer.example"}]})
    answer = token_answer(local, WEB, f"api://{API['clientId']}/.default", tenant=CUSTOMER)
    assert answer.status_code == 400 and answer.json()["error_codes"] == [700016]


def test_the_api_scope_needs_dot_default(local):
    answer = token_answer(local, WEB, f"api://{API['clientId']}/Calendar.Integration")
    assert answer.status_code == 400 and answer.json()["error_codes"] == [1002012]


def test_an_api_app_without_a_credential_cannot_get_tokens(local):
    answer = session(local).post(f"{local.base_url}/{HOME}/oauth2/v2.0/token", timeout=30, data={
        "grant_type": "client_credentials", "client_id": API["clientId"], "client_secret": "anything",
        "scope": "https://graph.microsoft.com/.default"})
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"


def test_rotation_publishes_a_new_key_everywhere_and_old_tokens_stay_valid(local):
    local.sandbox.state.reset({"tenants": SEED["tenants"]})
    before = token(local, WEB, f"api://{API['clientId']}/.default")
    graph_before = token(local, SEED["apps"][0], "https://graph.microsoft.com/.default", tenant=CUSTOMER)
    old_kid = jwt.get_unverified_header(before)["kid"]

    rotated = session(local).post(f"{local.base_url}/_sandbox/keys/rotate", timeout=30)

    assert rotated.status_code == 200
    new_kid = rotated.json()["kid"]
    assert new_kid != old_kid and rotated.json()["published"][:2] == [new_kid, old_kid]
    for tenant in (HOME, CUSTOMER):
        kids = [k["kid"] for k in session(local).get(openid(local, tenant)["jwks_uri"], timeout=30).json()["keys"]]
        assert kids[:2] == [new_kid, old_kid], tenant
    after = token(local, WEB, f"api://{API['clientId']}/.default")
    assert jwt.get_unverified_header(after)["kid"] == new_kid
    assert verified(local, before)["azp"] == verified(local, after)["azp"] == WEB["clientId"]
    # The sandbox's own resources accept a token signed before the rotation until it expires.
    mailbox = SEED["tenants"][0]["users"][0]["mail"]
    read = session(local).get(f"{local.base_url}/v1.0/users/{mailbox}/calendar", timeout=30,
                              headers={"Authorization": f"Bearer {graph_before}"})
    assert read.status_code == 200, read.text


def test_rotated_keys_survive_a_restart(tmp_path: Path):
    first = serve_in_thread(tmp_path, SANDBOX_SEED, free_port())
    try:
        old = first.sandbox.pki.signing.kid
        new = first.sandbox.pki.keys.rotate().kid
    finally:
        first.stop()
    again = serve_in_thread(tmp_path, SANDBOX_SEED, free_port())
    try:
        assert [k.kid for k in again.sandbox.pki.keys.published][:2] == [new, old]
        assert again.sandbox.pki.signing.kid == new
    finally:
        again.stop()


@pytest.mark.parametrize(("assignments", "problem"), [
    ({"0b0b0b0b-0000-4000-8000-000000000000": ["Calendar.Integration"]}, "is not the clientId of an app"),
    ({API["clientId"]: ["Calendar.Admin"]}, "is not one of that app's appRoles"),
])
def test_role_assignments_must_name_an_exposed_role(local, assignments, problem):
    apps = [*SEED["apps"][:2], {**WEB, "roleAssignments": assignments}]
    answer = session(local).post(f"{local.base_url}/_sandbox/reset", json={"apps": apps}, timeout=30)
    assert answer.status_code == 400 and problem in answer.text
