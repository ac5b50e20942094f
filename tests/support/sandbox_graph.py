"""What the Graph sandbox tests share: their seed (known calendars), tokens the way production
gets them, an HTTPS client, and answer checks against Graph's CSDL.

- App-only tokens: MSAL ``ConfidentialClientApplication(..., authority=f"{base}/{tenant}",
  instance_discovery=False).acquire_token_for_client([".default"])``, as production does.
- Delegated tokens: minted in-process with ``identity.issue_access_token`` on an in-process
  sandbox (``delegated_token``), until the tests use the authorization-code flow; swap that one
  helper then.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msal
import requests

from sandbox import identity
from sandbox.server import RunningServer, serve_in_thread
from sandbox.testing import free_port
from tests.conftest import SANDBOX_SEED

from .days import at
from .graph_schema import graph_schema

ROOT = Path(__file__).resolve().parents[2]
BASE_SEED: dict[str, Any] = json.loads(SANDBOX_SEED.read_text(encoding="utf-8"))
APP = BASE_SEED["apps"][0]
CLIENT_ID, SECRET = APP["clientId"], APP["clientSecret"]
GRAPH = "https://graph.microsoft.com"

FABRIKAM = "2b9e56f8-499e-4153-949c-a7aeb479f07e"  # consented (Calendars.ReadWrite), with a policy
CONTOSO = "520e6fd5-c619-4c0f-b927-0af414daa899"  # not consented
READONLY = "0d6f3f0a-8d7e-4a55-9a53-2f7c1b0e4c11"  # consented Calendars.Read only
NOROLES = "f3278773-52f3-496a-b4a0-f958ba221f03"  # consented delegated User.Read only: no roles
POLICY_GROUP = "72d67c36-c17b-4a80-8c6b-b677302e7aaf"

ANN = {"id": "6e98ec97-47f7-4671-9a61-d8ab3222892e", "mail": "ann@fabrikam.example", "displayName": "Ann Admin",
       "isAdmin": True, "timeZone": "Europe/Paris",
       "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                        "startTime": "09:00:00", "endTime": "17:00:00"},
       "events": [
           # DAY (a Tuesday, tests/support/days.py), Paris time (UTC+1: DAY is in winter).
           {"subject": "Overnight batch", "start": at(-1, "23:00:00+01:00"), "end": at(0, "08:15:00+01:00"),
            "showAs": "busy"},
           {"subject": "Doctor", "start": at(0, "08:15:00+01:00"), "end": at(0, "08:45:00+01:00"),
            "showAs": "busy", "sensitivity": "private", "location": {"displayName": "Clinic"}},
           {"subject": "Standup", "start": at(0, "09:00:00+01:00"), "end": at(0, "09:15:00+01:00"),
            "showAs": "busy", "location": {"displayName": "Room 1"}},
           {"subject": "Design review", "start": at(0, "10:00:00+01:00"), "end": at(0, "11:00:00+01:00"),
            "showAs": "tentative"},
           {"subject": "Offsite", "start": at(0, "13:00:00+01:00"), "end": at(0, "17:00:00+01:00"),
            "showAs": "oof"},
           {"subject": "Focus", "start": at(0, "11:30:00+01:00"), "end": at(0, "12:00:00+01:00"),
            "showAs": "free"},
       ]}
BEN = {"id": "1c0b7f52-5b6c-4a8e-9d3e-7f5a2b1c9d01", "mail": "ben@fabrikam.example", "displayName": "Ben Brown",
       "timeZone": "America/New_York",
       "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                        "startTime": "08:00:00", "endTime": "16:00:00"},
       "events": [
           {"subject": "Ben busy", "start": at(0, "03:00:00-05:00"), "end": at(0, "04:00:00-05:00"),
            "showAs": "busy"},  # 09:00-10:00 Paris
           {"subject": "Ben remote", "start": at(0, "05:00:00-05:00"), "end": at(0, "06:00:00-05:00"),
            "showAs": "workingElsewhere"},  # 11:00-12:00 Paris
       ]}
CAT = {"id": "2d1c8a63-6c7d-4b9f-8e4f-8a6b3c2d0e12", "mail": "cat@fabrikam.example", "displayName": "Cat Chen",
       "timeZone": "Asia/Kolkata", "events": []}
DAN = {"id": "3e2d9b74-7d8e-4ca0-9f50-9b7c4d3e1f23", "mail": "dan@fabrikam.example", "displayName": "Dan Outside",
       "timeZone": "UTC",
       "events": [{"subject": "Dan busy", "start": at(0, "12:00:00Z"), "end": at(0, "13:00:00Z"),
                   "showAs": "busy"}]}
EVE = {"id": "4f3eac85-8e9f-4db1-a061-ac8d5e4f2034", "mail": "eve@fabrikam.example", "displayName": "Eve Evans",
       "timeZone": "Europe/Paris",
       "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                        "startTime": "09:00:00", "endTime": "17:00:00"},
       "events": [{"subject": "Eve all morning", "start": at(0, "09:00:00+01:00"),
                   "end": at(0, "12:00:00+01:00"), "showAs": "busy"}]}
# A user whose sign-in name (UPN) is not her mail, with a second SMTP address: Graph paths take
# the id or the UPN, schedules and attendees any of her SMTP addresses (SANDBOX.md).
FAY = {"id": "7b6c5d4e-3f2a-4b1c-9d8e-0f1a2b3c4d5e", "mail": "fay.fischer@fabrikam.example",
       "userPrincipalName": "ffischer@fabrikam.onmicrosoft.example", "proxyAddresses": ["smtp:fay@fabrikam.example"],
       "displayName": "Fay Fischer", "timeZone": "America/New_York",
       "events": [{"subject": "Fay busy", "start": at(0, "10:00:00-05:00"), "end": at(0, "11:00:00-05:00"),
                   "showAs": "busy"}]}  # 15:00-16:00 UTC
FAY_UPN, FAY_PROXY = FAY["userPrincipalName"], "fay@fabrikam.example"
BOB = {"id": "a9d09b65-a620-4c61-8786-5be9b82897ab", "mail": "bob@contoso.example", "displayName": "Bob",
       "timeZone": "America/Chicago"}
RITA = {"id": "5a4fbd96-9fa0-4ec2-b172-bd9e6f503145", "mail": "rita@readonly.example", "displayName": "Rita",
        "timeZone": "UTC"}


def graph_seed() -> dict[str, Any]:
    """The reset body of the Graph tests (a fresh deep copy each time)."""
    return copy.deepcopy({"tenants": [
        {"tenantId": FABRIKAM, "domain": "fabrikam.example", "displayName": "Fabrikam (consented)",
         "consented": {CLIENT_ID: {"application": ["Calendars.ReadWrite"], "delegated": ["Calendars.ReadWrite"]}},
         "applicationAccessPolicy": {CLIENT_ID: POLICY_GROUP},
         "groups": [{"id": POLICY_GROUP, "mail": "10kc-users@fabrikam.example",
                     "members": [ANN["mail"], BEN["mail"], CAT["mail"], EVE["mail"], FAY_UPN]}],
         "users": [ANN, BEN, CAT, DAN, EVE, FAY]},
        {"tenantId": CONTOSO, "domain": "contoso.example", "displayName": "Contoso (not consented)", "users": [BOB]},
        {"tenantId": READONLY, "domain": "readonly.example", "displayName": "Read-only consent",
         "consented": {CLIENT_ID: {"application": ["Calendars.Read"], "delegated": []}}, "users": [RITA]},
        {"tenantId": NOROLES, "domain": "northwind.example", "displayName": "Delegated consent only",
         "consented": {CLIENT_ID: {"application": [], "delegated": ["User.Read"]}}, "users": []},
    ]})


def restore_seed() -> dict[str, Any]:
    """The reset body that puts tests/sandbox_seed.json's tenants back."""
    return {"tenants": copy.deepcopy(BASE_SEED["tenants"])}


def full_seed() -> dict[str, Any]:
    """A seed file (home tenant and apps included) for an in-process sandbox."""
    return {"homeTenantId": BASE_SEED["homeTenantId"], "apps": copy.deepcopy(BASE_SEED["apps"]),
            "vault": copy.deepcopy(BASE_SEED["vault"]), **graph_seed()}


def start_in_process(state_dir: Path) -> RunningServer:
    state_dir.mkdir(parents=True, exist_ok=True)
    seed_path = state_dir / "graph-seed.json"
    seed_path.write_text(json.dumps(full_seed()), encoding="utf-8")
    return serve_in_thread(state_dir / "state", seed_path, free_port())


# -- tokens --------------------------------------------------------------------------------------

def app_token(base_url: str, tenant: str) -> str:
    """An app-only Graph token from the sandbox's token endpoint, through MSAL (as production)."""
    app = msal.ConfidentialClientApplication(CLIENT_ID, client_credential=SECRET, authority=f"{base_url}/{tenant}",
                                             instance_discovery=False)
    result = app.acquire_token_for_client([f"{GRAPH}/.default"])
    if "access_token" not in result:
        raise AssertionError(f"no app token for {tenant}: {result}")
    return str(result["access_token"])


def delegated_token(running: RunningServer, tenant: str, user: dict[str, Any],
                    scopes: Iterable[str] = ("Calendars.ReadWrite", "User.Read"), **extra: Any) -> str:
    """A delegated Graph token for ``user``, minted in-process (see the module docstring)."""
    token, _ = identity.issue_access_token(
        running.sandbox, tenant_id=tenant, audience=GRAPH, appid=CLIENT_ID, oid=user["id"],
        app_display_name=APP.get("displayName", "10KC"),
        extra={"idtyp": "user", "scp": " ".join(scopes), "name": user.get("displayName"),
               "upn": user.get("userPrincipalName", user["mail"]), **extra})
    return token


def raw_token(running: RunningServer, tenant: str, **kwargs: Any) -> str:
    """Any app token, for the negative cases (other audience, expired, no roles...)."""
    args: dict[str, Any] = {"tenant_id": tenant, "audience": GRAPH, "appid": CLIENT_ID, "oid": CLIENT_ID,
                            "app_display_name": "10KC", "roles": ["Calendars.ReadWrite"]}
    args.update(kwargs)
    token, _ = identity.issue_access_token(running.sandbox, **args)
    return token


# -- HTTP ----------------------------------------------------------------------------------------

class Graph:
    """``requests`` against ``{base}/v1.0`` with a bearer token (trust comes from REQUESTS_CA_BUNDLE)."""

    def __init__(self, base_url: str, token: str | None, session: requests.Session | None = None):
        self.base_url = base_url
        self.root = base_url + "/v1.0"
        self.token = token
        self.session = session or requests.Session()

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        headers.update(extra or {})
        return headers

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                **kwargs: Any) -> requests.Response:
        url = path if path.startswith("https://") else self.root + path
        return self.session.request(method, url, headers=self.headers(headers), timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def with_token(self, token: str | None) -> Graph:
        return Graph(self.base_url, token, self.session)


# -- checks --------------------------------------------------------------------------------------

def ok(response: requests.Response, status: int, type_name: str | None = None, *, collection: bool = False,
       selected: bool = False) -> Any:
    """Assert the status and Graph's headers, validate the body against the CSDL, return it."""
    assert response.status_code == status, f"{response.status_code} {response.text[:2000]}"
    assert response.headers.get("request-id") and response.headers.get("client-request-id")
    if type_name is None:
        return response.json() if response.content else None
    body = response.json()
    if collection:
        graph_schema().check_collection(body, type_name, selected=selected)
    else:
        graph_schema().check(body, type_name, selected=selected)
    return body


def error(response: requests.Response, status: int, code: str, message: str | None = None) -> dict[str, Any]:
    """Assert a Graph error answer: status, body shape, code (and message when given)."""
    assert response.status_code == status, f"{response.status_code} {response.text[:2000]}"
    assert response.headers.get("request-id") and response.headers.get("client-request-id")
    body = response.json()
    graph_schema().check_error(body)
    assert body["error"]["code"] == code, body
    if message is not None:
        assert body["error"]["message"] == message, body
    assert body["error"]["innerError"]["request-id"] == response.headers["request-id"]
    return dict(body["error"])


def window(start: str, end: str, zone: str = "UTC") -> dict[str, Any]:
    return {"startTime": {"dateTime": start, "timeZone": zone}, "endTime": {"dateTime": end, "timeZone": zone}}


IMMUTABLE = {"Prefer": 'IdType="ImmutableId"'}  # ask Graph for immutable ids


def expires(minutes: float) -> str:
    """A subscription's expirationDateTime `minutes` from now (UTC, `Z`)."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
