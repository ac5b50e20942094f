"""Graph in the sandbox: who may call, on which mailbox — tokens, /me, roles and scopes, unknown
users, the application access policy, per-mailbox concurrency, and the common headers.

Microsoft's answers these follow (see sandbox/graph/auth.py):
- 401 InvalidAuthenticationToken "Access token validation failure. Invalid audience."
  (github.com/microsoftgraph/microsoft-graph-docs-contrib/issues/2362)
- 400 "/me request is only valid with delegated authentication flow."
  (github.com/microsoftgraph/msgraph-sdk-php/issues/1163)
- 404 ErrorInvalidUser "The requested user '...' is invalid."
  (github.com/microsoftgraph/microsoft-graph-docs/issues/7909)
- 403 ErrorAccessDenied "Access to OData is disabled." (learn.microsoft.com/graph/auth-limit-mailbox-access)
- 429 ApplicationThrottled "Application is over its MailboxConcurrency limit." with Retry-After
  (learn.microsoft.com/graph/throttling-limits#outlook-service-limits)
"""

from __future__ import annotations

import uuid

import msal
import pytest
import requests

from sandbox.server import RunningServer
from sandbox.testing import SandboxProcess
from tests.support.days import day
from tests.support.sandbox_graph import (
    ANN,
    BEN,
    BOB,
    CLIENT_ID,
    DAN,
    EVE,
    FABRIKAM,
    NOROLES,
    READONLY,
    RITA,
    SECRET,
    Graph,
    app_token,
    delegated_token,
    error,
    ok,
    raw_token,
    window,
)

pytestmark = pytest.mark.integration

EVENT = {"subject": "x", "start": {"dateTime": f"{day(2)}T10:00:00", "timeZone": "UTC"},
         "end": {"dateTime": f"{day(2)}T10:30:00", "timeZone": "UTC"}}


@pytest.fixture
def local_graph(local: RunningServer) -> Graph:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would win over verify= otherwise
    session.verify = str(local.sandbox.pki.ca_bundle_path)
    return Graph(local.base_url, raw_token(local, FABRIKAM), session)


def test_app_token_reads_a_calendar_with_graphs_headers(graph: Graph) -> None:
    client_request_id = str(uuid.uuid4())
    response = graph.get(f"/users/{ANN['mail']}/events", headers={"client-request-id": client_request_id})
    body = ok(response, 200, "graph.event", collection=True)
    assert response.headers["client-request-id"] == client_request_id
    uuid.UUID(response.headers["request-id"])
    assert response.headers["Content-Type"].startswith("application/json")
    assert body["@odata.context"].endswith(f"/v1.0/$metadata#users('{ANN['mail']}')/events")
    assert {e["subject"] for e in body["value"]} >= {"Standup", "Design review"}


def test_missing_malformed_and_foreign_tokens_are_401(graph: Graph, sandbox: SandboxProcess) -> None:
    path = f"/users/{ANN['mail']}/events"
    missing = graph.with_token(None).get(path)
    error(missing, 401, "InvalidAuthenticationToken", "Access token is empty.")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer ")
    error(graph.with_token("not-a-jwt").get(path), 401, "InvalidAuthenticationToken")
    # A Key Vault token of the same app: right signature, wrong audience.
    vault = msal.ConfidentialClientApplication(CLIENT_ID, client_credential=SECRET,
                                               authority=f"{sandbox.base_url}/{FABRIKAM}", instance_discovery=False)
    vault_token = vault.acquire_token_for_client(["https://vault.azure.net/.default"])["access_token"]
    error(graph.with_token(vault_token).get(path), 401, "InvalidAuthenticationToken",
          "Access token validation failure. Invalid audience.")


def test_me_needs_a_delegated_token(graph: Graph) -> None:
    error(graph.get("/me/events"), 400, "BadRequest", "/me request is only valid with delegated authentication flow.")
    error(graph.post("/me/calendar/getSchedule", json={"schedules": [ANN["mail"]], **window(
        f"{day(0)}T00:00:00", f"{day(1)}T00:00:00")}), 400, "BadRequest")


def test_mailbox_by_id_or_upn_case_insensitive_and_unknown_users(graph: Graph) -> None:
    by_id = ok(graph.get(f"/users/{ANN['id']}/events", params={"$top": "1"}), 200, "graph.event", collection=True)
    by_upn = ok(graph.get(f"/users/{ANN['mail'].upper()}/calendar/events", params={"$top": "1"}), 200, "graph.event",
                collection=True)
    assert by_id["value"][0]["id"] == by_upn["value"][0]["id"]
    # Graph's paths are case-insensitive.
    ok(graph.post(f"/users/{ANN['mail']}/Calendar/GetSchedule", json={"schedules": [ANN["mail"]], **window(
        f"{day(0)}T00:00:00", f"{day(1)}T00:00:00")}), 200, "graph.scheduleInformation", collection=True)
    error(graph.get("/users/nobody@fabrikam.example/events"), 404, "ErrorInvalidUser",
          "The requested user 'nobody@fabrikam.example' is invalid.")
    # A user of another tenant is not a mailbox of the token's tenant.
    error(graph.get(f"/users/{BOB['mail']}/events"), 404, "ErrorInvalidUser")
    error(graph.post(f"/users/{BOB['mail']}/events", json=EVENT), 404, "ErrorInvalidUser")


def test_roles_decide_reads_and_writes(graph: Graph, sandbox: SandboxProcess) -> None:
    read_only = graph.with_token(app_token(sandbox.base_url, READONLY))
    ok(read_only.get(f"/users/{RITA['mail']}/events"), 200, "graph.event", collection=True)
    error(read_only.post(f"/users/{RITA['mail']}/events", json=EVENT), 403, "ErrorAccessDenied",
          "Access is denied. Check credentials and try again.")
    no_roles = graph.with_token(app_token(sandbox.base_url, NOROLES))
    error(no_roles.get(f"/users/{RITA['mail']}/events"), 403, "ErrorAccessDenied")


def test_application_access_policy_limits_the_path_mailbox(graph: Graph) -> None:
    error(graph.get(f"/users/{DAN['mail']}/events"), 403, "ErrorAccessDenied", "Access to OData is disabled.")
    error(graph.post(f"/users/{DAN['mail']}/events", json=EVENT), 403, "ErrorAccessDenied",
          "Access to OData is disabled.")
    error(graph.post(f"/users/{DAN['mail']}/calendar/getSchedule", json={"schedules": [ANN["mail"]], **window(
        f"{day(0)}T00:00:00", f"{day(1)}T00:00:00")}), 403, "ErrorAccessDenied", "Access to OData is disabled.")
    ok(graph.get(f"/users/{EVE['mail']}/events"), 200, "graph.event", collection=True)


def test_expired_and_foreign_signed_tokens_are_401(local: RunningServer, local_graph: Graph) -> None:
    path = f"/users/{ANN['mail']}/events"
    expired = raw_token(local, FABRIKAM, lifetime=-3600)
    error(local_graph.with_token(expired).get(path), 401, "InvalidAuthenticationToken",
          "Lifetime validation failed, the token is expired.")
    graph_app_id = raw_token(local, FABRIKAM, audience="00000003-0000-0000-c000-000000000000")
    ok(local_graph.with_token(graph_app_id).get(path), 200, "graph.event", collection=True)
    header, payload, signature = local_graph.token.split(".")
    tampered = f"{header}.{payload}.{signature[::-1]}"
    error(local_graph.with_token(tampered).get(path), 401, "InvalidAuthenticationToken")


def test_delegated_tokens_reach_their_own_mailbox(local: RunningServer, local_graph: Graph) -> None:
    as_ann = local_graph.with_token(delegated_token(local, FABRIKAM, ANN))
    mine = ok(as_ann.get("/me/events"), 200, "graph.event", collection=True)
    assert mine["@odata.context"].endswith(f"users('{ANN['id']}')/events")
    ok(as_ann.get(f"/users/{ANN['mail']}/events"), 200, "graph.event", collection=True)
    # Calendars are not shared in the sandbox: another user's mailbox is denied.
    error(as_ann.get(f"/users/{BEN['mail']}/events"), 403, "ErrorAccessDenied")
    # The application access policy binds app-only access, not delegated access: Dan can read his own.
    as_dan = local_graph.with_token(delegated_token(local, FABRIKAM, DAN))
    ok(as_dan.get("/me/events"), 200, "graph.event", collection=True)
    profile_only = local_graph.with_token(delegated_token(local, FABRIKAM, ANN, scopes=["User.Read"]))
    error(profile_only.get("/me/events"), 403, "ErrorAccessDenied")
    read_only = local_graph.with_token(delegated_token(local, FABRIKAM, ANN, scopes=["Calendars.Read"]))
    ok(read_only.get("/me/calendar/events"), 200, "graph.event", collection=True)
    error(read_only.post("/me/events", json=EVENT), 403, "ErrorAccessDenied")


def test_more_than_four_in_flight_per_mailbox_is_429(local: RunningServer, local_graph: Graph) -> None:
    limiter = local.sandbox.calendars.limiter
    key = (FABRIKAM, CLIENT_ID, ANN["id"])
    for _ in range(4):  # four requests of this app on Ann's mailbox are in flight
        assert limiter.try_acquire(key)
    try:
        throttled = local_graph.get(f"/users/{ANN['mail']}/events")
        error(throttled, 429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
        assert int(throttled.headers["Retry-After"]) >= 1
        # Limits of one mailbox do not affect another; another app has its own.
        ok(local_graph.get(f"/users/{BEN['mail']}/events"), 200, "graph.event", collection=True)
        other_app = raw_token(local, FABRIKAM, appid=str(uuid.uuid4()))
        ok(local_graph.with_token(other_app).get(f"/users/{ANN['mail']}/events"), 200, "graph.event",
           collection=True)
        limiter.release(key)
        ok(local_graph.get(f"/users/{ANN['mail']}/events"), 200, "graph.event", collection=True)
    finally:
        while limiter.in_flight(key):
            limiter.release(key)
    assert limiter.in_flight(key) == 0


def test_real_concurrency_stays_within_the_limit(local: RunningServer, local_graph: Graph) -> None:
    """Concurrent requests never leave slots behind, and at most four are ever in flight."""
    from concurrent.futures import ThreadPoolExecutor

    def one(_: int) -> int:
        session = requests.Session()
        session.trust_env = False  # REQUESTS_CA_BUNDLE (set machine-wide) would override verify
        session.verify = str(local.sandbox.pki.ca_bundle_path)  # system CAs + the sandbox CA
        with session:
            graph = Graph(local_graph.base_url, local_graph.token, session)
            return graph.get(f"/users/{ANN['mail']}/events", params={"$top": "1"}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(one, range(24)))
    assert set(statuses) <= {200, 429} and statuses.count(200) >= 1
    assert local.sandbox.calendars.limiter.in_flight((FABRIKAM, CLIENT_ID, ANN["id"])) == 0
