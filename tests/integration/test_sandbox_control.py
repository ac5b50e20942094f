"""The sandbox's process, HTTP behaviour and control endpoints: start/stop, health, common
headers, unknown paths, reset semantics and the request log."""

from __future__ import annotations

import copy
import http.client
import json
import signal
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msal
import pytest
import requests

from sandbox.testing import SandboxProcess, start_sandbox
from tests.conftest import SANDBOX_SEED

pytestmark = pytest.mark.integration

SEED_PATH = SANDBOX_SEED  # tests/sandbox_seed.json moved to the tests' day
SEED: dict[str, Any] = json.loads(SEED_PATH.read_text(encoding="utf-8"))
HOME = SEED["homeTenantId"]
CLIENT_ID, SECRET = SEED["apps"][0]["clientId"], SEED["apps"][0]["clientSecret"]
CONSENTED = SEED["tenants"][0]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    sbx = start_sandbox(tmp_path_factory.mktemp("sandbox-control"), SEED_PATH)
    yield sbx
    sbx.stop()


@pytest.fixture(autouse=True)
def trust_sandbox(sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_bundle))


def vault_headers(sandbox: SandboxProcess) -> dict[str, str]:
    # App Service's managed-identity API version, not a date
    response = sandbox.session().get(sandbox.identity_endpoint,
                                     params={"api-version": "2019-08-01", "resource": "https://vault.azure.net"},
                                     headers={"X-IDENTITY-HEADER": sandbox.identity_header})
    response.raise_for_status()
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_health_and_common_headers(sandbox: SandboxProcess) -> None:
    response = requests.get(f"{sandbox.base_url}/_sandbox/health", verify=str(sandbox.ca_bundle), timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    uuid.UUID(response.headers["request-id"])
    uuid.UUID(response.headers["client-request-id"])
    echoed = sandbox.session().get(f"{sandbox.base_url}/_sandbox/health", headers={"client-request-id": "abc-123"})
    assert echoed.headers["client-request-id"] == "abc-123"
    assert echoed.headers["request-id"] != response.headers["request-id"]


def test_unknown_path_and_method(sandbox: SandboxProcess) -> None:
    response = sandbox.session().get(f"{sandbox.base_url}/no/such/thing")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] and error["message"]
    assert response.headers["request-id"]
    wrong_method = sandbox.session().put(f"{sandbox.base_url}/_sandbox/health")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "MethodNotAllowed"


def test_keep_alive_and_content_length(sandbox: SandboxProcess) -> None:
    context = ssl.create_default_context(cafile=str(sandbox.ca_cert))
    connection = http.client.HTTPSConnection("127.0.0.1", sandbox.port, context=context, timeout=10)
    try:
        for _ in range(3):
            connection.request("GET", "/_sandbox/health")
            response = connection.getresponse()
            body = response.read()
            assert response.status == 200
            assert int(response.headers["Content-Length"]) == len(body)
            assert response.headers.get("Connection", "").lower() != "close"
        connection.request("DELETE", "/deletedsecrets/x?api-version=7.5")
        response = connection.getresponse()
        assert response.status == 401 and len(response.read()) == int(response.headers["Content-Length"])
    finally:
        connection.close()
    # localhost (the certificate's DNS SAN) works as well as 127.0.0.1 (its IP SAN).
    assert requests.get(f"https://localhost:{sandbox.port}/_sandbox/health", verify=str(sandbox.ca_bundle),
                        timeout=10).status_code == 200


def test_request_log(sandbox: SandboxProcess) -> None:
    sandbox.clear_requests()
    start = sandbox.next_request_index()
    session = sandbox.session()
    session.get(f"{sandbox.base_url}/_sandbox/health")
    session.get(f"{sandbox.base_url}/{CONSENTED['tenantId']}/v2.0/.well-known/openid-configuration")
    session.post(f"{sandbox.base_url}/{CONSENTED['tenantId']}/oauth2/v2.0/token?client_secret=in-the-query",
                 data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET,
                       "scope": "https://graph.microsoft.com/.default"})
    session.get(f"{sandbox.base_url}/secrets/x", params={"api-version": "7.5"},
                headers={"client-request-id": "0f0e0d0c-0000-4000-8000-00000000c0de"})
    log = sandbox.requests(since=start)
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("GET", f"/{CONSENTED['tenantId']}/v2.0/.well-known/openid-configuration", 200),
        ("POST", f"/{CONSENTED['tenantId']}/oauth2/v2.0/token", 200),
        ("GET", "/secrets/x", 401),
    ]
    assert log[2]["query"] == "api-version=7.5"
    assert log[1]["query"] == "client_secret=REDACTED"
    for entry in log:
        assert set(entry) >= {"method", "path", "query", "status", "time", "durationMs", "clientRequestId"}
        assert entry["time"].endswith("Z") and "T" in entry["time"]
        assert entry["durationMs"] >= 0
    assert log[2]["clientRequestId"] == "0f0e0d0c-0000-4000-8000-00000000c0de"  # the caller's, kept
    assert log[0]["clientRequestId"] != log[1]["clientRequestId"]  # none sent: one each, made up
    assert SECRET not in json.dumps(log)
    assert [e["index"] for e in sandbox.requests(since=log[1]["index"])] == [log[1]["index"], log[2]["index"]]
    sandbox.clear_requests()
    assert sandbox.requests() == []


def test_reset_replaces_tenants_and_keeps_the_vault(sandbox: SandboxProcess) -> None:
    headers = vault_headers(sandbox)
    name = f"kept-{uuid.uuid4().hex[:8]}"
    put = sandbox.session().put(f"{sandbox.base_url}/secrets/{name}", params={"api-version": "7.5"},
                                json={"value": "stays"}, headers=headers)
    assert put.status_code == 200

    only_contoso = {"tenants": [SEED["tenants"][1]]}
    summary = sandbox.reset(only_contoso)
    assert summary["tenants"] == [SEED["tenants"][1]["tenantId"]]
    assert summary["apps"] == sorted(app["clientId"] for app in SEED["apps"])  # the apps stay
    assert summary["homeTenantId"] == HOME and summary["vaultReset"] is False

    discovery = sandbox.session().get(f"{sandbox.base_url}/{CONSENTED['domain']}/v2.0/.well-known/openid-configuration")
    assert discovery.status_code == 400 and discovery.json()["error_codes"] == [90002]
    got = sandbox.session().get(f"{sandbox.base_url}/secrets/{name}", params={"api-version": "7.5"}, headers=headers)
    assert got.json()["value"] == "stays"
    # The app and its secret survived the reset: the home tenant still issues its vault token.
    app = msal.ConfidentialClientApplication(CLIENT_ID, client_credential=SECRET,
                                             authority=f"{sandbox.base_url}/{HOME}", instance_discovery=False)
    assert "access_token" in app.acquire_token_for_client(["https://vault.azure.net/.default"])

    sandbox.reset({"tenants": SEED["tenants"]})
    assert sandbox.session().get(
        f"{sandbox.base_url}/{CONSENTED['domain']}/v2.0/.well-known/openid-configuration").status_code == 200


def test_reset_vault(sandbox: SandboxProcess) -> None:
    headers = vault_headers(sandbox)
    url = f"{sandbox.base_url}/secrets"
    sandbox.session().put(f"{url}/short-lived", params={"api-version": "7.5"}, json={"value": "x"}, headers=headers)
    sandbox.reset({"tenants": SEED["tenants"], "resetVault": True})
    listed = sandbox.session().get(url, params={"api-version": "7.5"}, headers=headers).json()
    assert listed == {"value": [], "nextLink": None}
    sandbox.reset({"tenants": SEED["tenants"], "vault": {"secrets": {"only-one": "1"}}})
    listed = sandbox.session().get(url, params={"api-version": "7.5"}, headers=headers).json()
    assert [item["id"] for item in listed["value"]] == [f"{url}/only-one"]
    sandbox.reset({"tenants": SEED["tenants"], "vault": SEED["vault"]})


def test_bad_reset_body_is_a_graph_style_400_and_changes_nothing(sandbox: SandboxProcess) -> None:
    bad = copy.deepcopy({"tenants": SEED["tenants"]})
    bad["tenants"][0]["users"][0]["timeZone"] = "Mars/Olympus_Mons"
    bad["tenants"][0]["consent"] = {}
    bad["tenants"][1]["tenantId"] = "not-a-guid"
    response = sandbox.session().post(f"{sandbox.base_url}/_sandbox/reset", json=bad)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "BadRequest"
    for fragment in ("/tenants/0/users/0/timeZone", "/tenants/0/consent", "/tenants/1/tenantId"):
        assert fragment in error["message"]
    not_json = sandbox.session().post(f"{sandbox.base_url}/_sandbox/reset", data=b"{nope",
                                      headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "BadRequest"
    # Nothing changed: the consented tenant still gets tokens.
    app = msal.ConfidentialClientApplication(CLIENT_ID, client_credential=SECRET,
                                             authority=f"{sandbox.base_url}/{CONSENTED['domain']}",
                                             instance_discovery=False)
    assert "access_token" in app.acquire_token_for_client(["https://graph.microsoft.com/.default"])


def test_bad_seed_file_fails_fast(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"homeTenantId": "nope", "apps": []}), encoding="utf-8")
    with pytest.raises(RuntimeError, match="homeTenantId"):
        start_sandbox(tmp_path / "state", seed)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_it_promptly(tmp_path: Path, signum: int) -> None:
    sbx = start_sandbox(tmp_path / "state", SEED_PATH)
    try:
        # An idle keep-alive connection must not hold the process up.
        assert sbx.session().get(f"{sbx.base_url}/_sandbox/health").status_code == 200
        started = time.monotonic()
        sbx.process.send_signal(signum)
        assert sbx.process.wait(timeout=10) == 0
        assert time.monotonic() - started < 2.5
        assert (tmp_path / "state" / "sandbox.stdout.log").read_text().splitlines() == [
            f"sandbox listening on {sbx.base_url}"]
    finally:
        sbx.stop()
