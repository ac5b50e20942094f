"""Faults injected into the sandbox while the service works: for each, the caller gets the
contract's answer, nothing is duplicated or lost, and the service is healthy after."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import clear_caches
from tests.support.consent_pages import admin_consent, connect_member
from tests.support.days import at

DOMAIN = "d0d0d0d0-0000-4000-8000-0000000000f1"
DELEGATED = "d0d0d0d0-0000-4000-8000-0000000000f2"


def person(uid: int, mail: str, admin: bool = False):
    return {"id": f"d0d0d0d0-0000-4000-8000-{uid:012d}", "mail": mail, "displayName": mail.split("@")[0],
            "timeZone": "America/New_York", "isAdmin": admin,
            "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                             "startTime": "09:00:00", "endTime": "17:00:00"}}


TENANTS = [{"tenantId": DOMAIN, "domain": "f.example",
            "users": [person(1, "ada@f.example", True), person(2, "grace@f.example")]},
           {"tenantId": DELEGATED, "domain": "g.example",
            "users": [person(3, "ada@g.example", True), person(4, "grace@g.example")]}]
ASK = {"organizer": "ada@f.example", "attendees": ["grace@f.example"], "start": at(0, "09:00:00-05:00"),
       "end": at(0, "17:00:00-05:00"), "durationMinutes": 30, "timeZone": "America/New_York"}
BOOK = {"organizer": "ada@f.example", "attendees": ["grace@f.example"], "start": at(1, "10:00:00-05:00"),
        "end": at(1, "10:30:00-05:00"), "subject": "Faults"}


@pytest.fixture
def service(api, sandbox):
    sandbox.reset({"tenants": TENANTS})
    admin_consent(api, sandbox, DOMAIN, "ada@f.example")
    yield api
    sandbox.session().delete(f"{sandbox.base_url}/_sandbox/faults", timeout=10)


def fault(sandbox, **rule):
    sandbox.session().post(f"{sandbox.base_url}/_sandbox/faults", json=rule, timeout=10).raise_for_status()


def events(sandbox, email):
    return sandbox.session().get(f"{sandbox.base_url}/_sandbox/users/{email}/events", timeout=10).json()["value"]


def healthy(api, tenant=DOMAIN, organizer="ada@f.example", attendee="grace@f.example"):
    assert api.get("/health").status_code == 200
    answer = api.post(f"/tenants/{tenant}/availability",
                      json=ASK | {"organizer": organizer, "attendees": [attendee]})
    assert answer.status_code == 200, answer.text
    assert answer.json()["slots"]


@pytest.mark.parametrize("status", [429, 503, 504])
def test_availability_waits_out_a_passing_fault(service, sandbox, status):
    fault(sandbox, path="getSchedule$", status=status, retryAfter=1, count=1)
    answer = service.post(f"/tenants/{DOMAIN}/availability", json=ASK)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["slots"]) == 31  # 09:00-16:30 every 15 minutes
    healthy(service)


def test_availability_past_the_budget_is_503_in_the_envelope(service, sandbox):
    from shared.clients import graph_client

    graph_client()._retry_budget = 1.5
    fault(sandbox, path="getSchedule$", status=503, retryAfter=4, count=5)
    answer = service.post(f"/tenants/{DOMAIN}/availability", json=ASK)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "upstream_throttled"
    assert int(answer.headers["Retry-After"]) >= 1
    sandbox.session().delete(f"{sandbox.base_url}/_sandbox/faults", timeout=10)
    healthy(service)


def test_graph_slower_than_the_client_timeout_is_retried_for_reads(service, sandbox, monkeypatch):
    monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "1")
    clear_caches()
    fault(sandbox, path="getSchedule$", latencyMs=1500, count=1)
    answer = service.post(f"/tenants/{DOMAIN}/availability", json=ASK)
    assert answer.status_code == 200, answer.text
    healthy(service)


def test_a_create_answered_after_the_client_gave_up_is_adopted_not_repeated(service, sandbox, monkeypatch):
    monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "1")
    clear_caches()
    fault(sandbox, path="/events$", method="POST", latencyMs=1800, when="after", count=1)
    answer = service.post(f"/tenants/{DOMAIN}/bookings", json=BOOK, headers={"Idempotency-Key": "slow-1"})
    assert answer.status_code == 201, answer.text
    assert len(events(sandbox, "ada@f.example")) == 1
    assert len(events(sandbox, "grace@f.example")) == 1
    healthy(service)


def test_a_create_throttled_before_the_work_is_sent_again_and_created_once(service, sandbox):
    fault(sandbox, path="/events$", method="POST", status=429, retryAfter=1, count=1)
    answer = service.post(f"/tenants/{DOMAIN}/bookings", json=BOOK, headers={"Idempotency-Key": "s-429"})
    assert answer.status_code == 201, answer.text  # 429: Graph did nothing, so sending again is safe
    assert len(events(sandbox, "ada@f.example")) == 1
    healthy(service)


@pytest.mark.parametrize("status", [503, 504])
def test_a_create_answered_with_a_5xx_is_unknown_then_created_once(service, sandbox, monkeypatch, status):
    """A 5xx may come after Graph acted: 503 booking_outcome_unknown, the key kept; the caller's
    retry after Retry-After finds nothing by the tag and creates it once."""
    monkeypatch.setenv("HTTP_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("GRAPH_WRITE_MARGIN_SECONDS", "1")
    clear_caches()
    fault(sandbox, path="/events$", method="POST", status=status, retryAfter=1, count=1)
    headers = {"Idempotency-Key": f"s-{status}"}
    first = service.post(f"/tenants/{DOMAIN}/bookings", json=BOOK, headers=headers)
    assert first.status_code == 503 and first.json()["error"]["code"] == "booking_outcome_unknown", first.text
    time.sleep(int(first.headers["Retry-After"]) + 0.5)
    answer = service.post(f"/tenants/{DOMAIN}/bookings", json=BOOK, headers=headers)
    assert answer.status_code == 201, answer.text
    assert len(events(sandbox, "ada@f.example")) == 1
    healthy(service)


def test_many_concurrent_requests_for_one_mailbox_stay_under_its_concurrency_limit(service, sandbox):
    since = sandbox.next_request_index()
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: service.post(f"/tenants/{DOMAIN}/availability", json=ASK), range(24)))
    assert [a.status_code for a in answers] == [200] * 24
    calls = [e for e in sandbox.requests(since=since) if e["path"].endswith("getSchedule")]
    assert len(calls) == 24
    assert all(e["status"] == 200 for e in calls)  # no 429 MailboxConcurrency: the gate kept it to 4


def test_key_vault_unavailable_gives_the_contracts_answer_and_loses_nothing(service, sandbox):
    admin_consent(service, sandbox, DELEGATED, "ada@g.example", mode="delegated")
    connect_member(service, sandbox, DELEGATED, "ada@g.example")
    clear_caches()  # forget the cached access token: the refresh token must be read from Key Vault
    fault(sandbox, path="^/secrets/rt-", status=503, retryAfter=1, count=50)
    answer = service.post(f"/tenants/{DELEGATED}/availability",
                          json=ASK | {"organizer": "ada@g.example", "attendees": ["grace@g.example"]})
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "upstream_error"
    assert "Key Vault" in answer.json()["error"]["message"]

    from background.jobs import background as jobs_service
    from shared.clients import repositories
    from shared.errors import SecretStoreUnavailable
    from shared.storage import utcnow

    user = repositories().member(DELEGATED, "ada@g.example")
    job = json.dumps({"kind": "refresh_member", "tenantId": DELEGATED, "userId": user.userId,
                      "enqueuedAt": utcnow().isoformat()})
    with pytest.raises(SecretStoreUnavailable):
        jobs_service().run(job)  # raised: the queue retries it, nothing is marked
    assert repositories().user(DELEGATED, user.userId).status == "connected"

    disconnect = service.delete(f"/tenants/{DELEGATED}/users/ada@g.example")
    assert disconnect.status_code == 502  # the token could not be deleted: nothing changed, the caller retries
    assert service.get(f"/tenants/{DELEGATED}/users/ada@g.example").json()["status"] == "connected"

    sandbox.session().delete(f"{sandbox.base_url}/_sandbox/faults", timeout=10)
    assert jobs_service().run(job) == "refreshed"
    healthy(service, DELEGATED, "ada@g.example", "grace@g.example")
    assert service.delete(f"/tenants/{DELEGATED}/users/ada@g.example").status_code == 204
    assert service.get(f"/tenants/{DELEGATED}/users/ada@g.example").json()["status"] == "not_connected"


def test_etag_conflicts_under_concurrent_updates_are_retried_not_lost(service):
    names = [f"Org {i}" for i in range(12)]
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda name: service.put(f"/tenants/{DOMAIN}", json={
            "organizationId": "org-42", "mode": "domain", "organizationName": name}), names))
    assert sorted(a.status_code for a in answers) == [200] * 12
    final = service.get(f"/tenants/{DOMAIN}").json()
    assert final["organizationName"] in names
    assert final["status"] == "enabled"  # concurrent writers kept what they did not change


def test_identity_platform_throttling_during_a_token_request(service, sandbox):
    from shared.clients import token_provider

    token_provider()._apps.clear()  # a cold instance: the next call needs a token
    fault(sandbox, path="/oauth2/v2.0/token$", status=503, retryAfter=1, count=1)
    answer = service.post(f"/tenants/{DOMAIN}/availability", json=ASK)
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "upstream_error"
    time.sleep(1.2)  # MSAL itself holds back the same token request for Retry-After seconds
    healthy(service)


def test_a_refresh_job_meeting_a_token_endpoint_outage_is_retried_and_loses_nothing(service, sandbox):
    admin_consent(service, sandbox, DELEGATED, "ada@g.example", mode="delegated")
    connect_member(service, sandbox, DELEGATED, "ada@g.example")
    from background.jobs import background as jobs_service
    from shared.clients import repositories
    from shared.storage import utcnow
    from shared.tokens import IdentityError

    user = repositories().member(DELEGATED, "ada@g.example")
    job = json.dumps({"kind": "refresh_member", "tenantId": DELEGATED, "userId": user.userId,
                      "enqueuedAt": utcnow().isoformat()})
    fault(sandbox, path="/oauth2/v2.0/token$", status=504, retryAfter=1, count=1)
    with pytest.raises(IdentityError):
        jobs_service().run(job)  # raised: the queue delivers it again later
    after = repositories().user(DELEGATED, user.userId)
    assert (after.status, after.secretVersion) == ("connected", user.secretVersion)  # nothing half-done
    time.sleep(1.2)  # MSAL holds back the same request briefly after a 5xx
    assert jobs_service().run(job) == "refreshed"
    assert repositories().user(DELEGATED, user.userId).secretVersion != user.secretVersion
