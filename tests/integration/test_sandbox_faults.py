"""The sandbox's fault injection: what a caller sees, and whether the work was done."""

import json
import time

import pytest
import requests

from tests.conftest import SANDBOX_SEED

SECRET_PATH = "/secrets/fault-probe"


@pytest.fixture
def vault(sandbox, monkeypatch):
    """A raw Key Vault caller with a managed-identity token (the simplest authenticated path)."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sandbox.ca_bundle))
    # App Service's managed-identity API version, not a date
    token = requests.get(sandbox.identity_endpoint, params={"api-version": "2019-08-01",
                                                            "resource": "https://vault.azure.net"},
                         headers={"X-IDENTITY-HEADER": sandbox.identity_header}, timeout=10).json()["access_token"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    yield session
    sandbox.session().delete(f"{sandbox.base_url}/_sandbox/faults", timeout=10)


def add_fault(sandbox, **rule):
    response = sandbox.session().post(f"{sandbox.base_url}/_sandbox/faults", json=rule, timeout=10)
    assert response.status_code == 201, response.text
    return response.json()


def versions(sandbox, vault) -> int:
    response = vault.get(f"{sandbox.base_url}{SECRET_PATH}/versions", params={"api-version": "7.5"}, timeout=10)
    return len(response.json()["value"]) if response.status_code == 200 else 0


def test_429_with_retry_after_for_the_next_n_matching_requests_only(sandbox, vault):
    add_fault(sandbox, path="^/secrets/app-client-secret", count=2, status=429, retryAfter=3)
    url = f"{sandbox.base_url}/secrets/app-client-secret"
    answers = [vault.get(url, params={"api-version": "7.5"}, timeout=10) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "3"
    assert answers[0].json()["error"]["code"] == "Throttled"
    assert answers[0].headers["request-id"]


def test_method_filter_and_graph_shaped_errors(sandbox, vault):
    add_fault(sandbox, path="^/v1.0/", method="POST", status=503)
    base = sandbox.base_url
    assert sandbox.session().get(f"{base}/v1.0/users/x/events", timeout=10).status_code != 503
    answer = sandbox.session().post(f"{base}/v1.0/users/x/calendar/getSchedule", json={}, timeout=10)
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "1"
    error = answer.json()["error"]
    assert error["code"] == "serviceNotAvailable"
    assert error["innerError"]["request-id"] == answer.headers["request-id"]


def test_token_endpoint_faults_speak_the_identity_platforms_shape(sandbox):
    add_fault(sandbox, path="/oauth2/v2.0/token$", status=504)
    answer = sandbox.session().post(f"{sandbox.base_url}/organizations/oauth2/v2.0/token",
                                    data={"grant_type": "client_credentials"}, timeout=10)
    assert answer.status_code == 504
    assert answer.json()["error"] == "temporarily_unavailable"


def test_dropped_connection_after_the_work_was_done(sandbox, vault):
    before = versions(sandbox, vault)
    add_fault(sandbox, path=f"^{SECRET_PATH}$", method="PUT", drop=True)
    with pytest.raises(requests.ConnectionError):
        vault.put(f"{sandbox.base_url}{SECRET_PATH}", params={"api-version": "7.5"}, json={"value": "x"}, timeout=10)
    assert versions(sandbox, vault) == before + 1  # the secret was written although no answer came
    log = sandbox.requests()
    assert any(e.get("fault") == "drop" and e["method"] == "PUT" for e in log)


def test_latency_before_or_after_the_work(sandbox, vault):
    before = versions(sandbox, vault)
    add_fault(sandbox, path=f"^{SECRET_PATH}$", method="PUT", latencyMs=1500, when="after")
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        vault.put(f"{sandbox.base_url}{SECRET_PATH}", params={"api-version": "7.5"}, json={"value": "y"},
                  timeout=0.5)
    assert time.monotonic() - started < 1.4
    time.sleep(1.2)
    assert versions(sandbox, vault) == before + 1  # the client timed out, the work still happened

    add_fault(sandbox, path=f"^{SECRET_PATH}$", method="PUT", latencyMs=300)
    started = time.monotonic()
    answer = vault.put(f"{sandbox.base_url}{SECRET_PATH}", params={"api-version": "7.5"}, json={"value": "z"},
                       timeout=10)
    assert answer.status_code == 200
    assert time.monotonic() - started >= 0.3


def test_listing_clearing_and_reset_clear_faults(sandbox):
    session, base = sandbox.session(), sandbox.base_url
    add_fault(sandbox, path="^/nothing$", count=5, status=500)
    assert [f["remaining"] for f in session.get(f"{base}/_sandbox/faults", timeout=10).json()["value"]] == [5]
    session.delete(f"{base}/_sandbox/faults", timeout=10)
    assert session.get(f"{base}/_sandbox/faults", timeout=10).json()["value"] == []
    add_fault(sandbox, path="^/nothing$", status=500)
    seed = json.loads(SANDBOX_SEED.read_text())
    sandbox.reset({"tenants": seed["tenants"]})
    assert session.get(f"{base}/_sandbox/faults", timeout=10).json()["value"] == []


@pytest.mark.parametrize(
    "rule",
    [{}, {"path": "("}, {"path": "x"}, {"path": "x", "status": 418}, {"path": "x", "count": 0, "status": 500},
     {"path": "x", "status": 500, "drop": True}, {"path": "x", "latencyMs": -1}, {"path": "x", "status": True}],
)
def test_bad_rules_are_400(sandbox, rule):
    answer = sandbox.session().post(f"{sandbox.base_url}/_sandbox/faults", json=rule, timeout=10)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "BadRequest"
