"""Callers proven by Entra ID, and organizations kept apart, through the app on the local host.

Every route under /api/tenants/… needs a v2 access token of the home tenant for this API, from an
allowed app holding the app role Calendar.Integration, and X-Organization-Id. One test per way a
token is refused (401 `unauthenticated`) or a caller is (403 `forbidden`); key rotation; and a walk
over the app's own route table showing that another organization gets exactly what an unknown
tenant gets, whatever the route.
"""

from __future__ import annotations

import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.integration.test_bookings import BOOKING, TENANTS, book, events
from tests.support.callers import API, API_SCOPE, HOME, NO_ROLE, NOT_ALLOWED, WEB_APP, caller_token, forged
from tests.support.consent_pages import admin_consent
from tests.support.days import at

pytestmark = pytest.mark.integration

DOMAIN = TENANTS[0]["tenantId"]
UNKNOWN = "0e0e0e0e-0000-4000-8000-00000000dead"
CUSTOMER = "2b9e56f8-499e-4153-949c-a7aeb479f07e"  # a customer tenant of tests/sandbox_seed.json
KEYS_PATH = f"/{HOME}/discovery/v2.0/keys"


def call(api, token: str | None, tenant: str = UNKNOWN, **headers):
    """GET a tenant with this token (None: no Authorization header). An accepted caller gets 404
    tenant_not_found for the unknown tenant; a refused one 401 / 403."""
    return api.get(f"/tenants/{tenant}", headers={"Authorization": f"Bearer {token}" if token else None} | headers)


def refused(answer, status: int, code: str, challenge: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.json() == {"error": {"code": code, "message": answer.json()["error"]["message"]}}
    assert answer.headers["WWW-Authenticate"] == challenge
    assert answer.headers["Content-Type"].startswith("application/json") and answer.headers["x-request-id"]
    assert "Traceback" not in answer.text and "eyJ" not in answer.text  # no stack trace, no token


def accepted(answer) -> None:
    assert answer.status_code == 404, answer.text
    assert answer.json()["error"]["code"] == "tenant_not_found"


def unauthenticated(answer, *, token_sent: bool = True) -> None:
    refused(answer, 401, "unauthenticated", 'Bearer error="invalid_token"' if token_sent else "Bearer")


def forbidden(answer) -> None:
    refused(answer, 403, "forbidden", 'Bearer error="insufficient_scope"')


def keys_fetches(sandbox, since: int) -> int:
    return sum(1 for entry in sandbox.requests(since=since) if entry["path"] == KEYS_PATH)


# -- who may call -------------------------------------------------------------------------------

def test_the_web_apps_token_is_accepted_with_either_audience_form(api, sandbox):
    accepted(call(api, caller_token(sandbox)))
    accepted(call(api, forged(sandbox, aud=f"api://{API['clientId']}")))


def test_no_token_is_401_with_a_bare_bearer_challenge(api):
    unauthenticated(call(api, None), token_sent=False)
    unauthenticated(api.get(f"/tenants/{UNKNOWN}", headers={"Authorization": "Basic d2ViOnNlY3JldA=="}),
                    token_sent=False)
    unauthenticated(api.get(f"/tenants/{UNKNOWN}", headers={"Authorization": "Bearer "}), token_sent=False)


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30", "x" * 20_000],
                         ids=["word", "three-parts", "no-signature", "huge"])
def test_a_malformed_token_is_401(api, token):
    unauthenticated(call(api, token))


def test_an_expired_token_is_401(api, sandbox):
    now = int(time.time())
    unauthenticated(call(api, forged(sandbox, iat=now - 7200, nbf=now - 7200, exp=now - 600)))
    # Within the 5 minutes of clock skew it still counts.
    accepted(call(api, forged(sandbox, iat=now - 3600, nbf=now - 3600, exp=now - 60)))


def test_a_token_not_yet_valid_is_401(api, sandbox):
    now = int(time.time())
    unauthenticated(call(api, forged(sandbox, nbf=now + 600, iat=now)))
    accepted(call(api, forged(sandbox, nbf=now + 60, iat=now)))


def test_a_bad_signature_is_401(api, sandbox):
    real = caller_token(sandbox)
    head, body, signature = real.split(".")
    claims = json.loads(jwt.utils.base64url_decode(body))
    tampered = jwt.utils.base64url_encode(json.dumps(claims | {"roles": ["Calendar.Admin"]}).encode()).decode()
    unauthenticated(call(api, f"{head}.{tampered}.{signature}"))
    # Signed by a key of the caller's own under the identity platform's kid.
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    unauthenticated(call(api, forged(sandbox, key=stranger)))
    # Or not signed with RS256 at all.
    unauthenticated(call(api, forged(sandbox, key="shared-secret-of-32-bytes-or-more!!", header={"alg": "HS256"})))
    unauthenticated(call(api, jwt.encode(claims, None, algorithm="none")))


def test_another_issuer_is_401(api, sandbox):
    # Microsoft's real issuer for the home tenant is not the configured authority's (the sandbox's).
    unauthenticated(call(api, forged(sandbox, iss=f"https://login.microsoftonline.com/{HOME}/v2.0")))
    unauthenticated(call(api, forged(sandbox, iss=f"https://sts.windows.net/{HOME}/")))
    unauthenticated(call(api, forged(sandbox, drop=("iss",))))
    unauthenticated(call(api, forged(sandbox, tid=CUSTOMER)))


def test_a_customer_tenants_token_for_this_app_is_401(api, sandbox):
    """The same caller, the same API and role, signed by the same keys (one key set serves every
    tenant): only the issuer tells it apart, and it is refused."""
    customer = {"tenantId": CUSTOMER, "domain": "customer.example",
                "consented": {WEB_APP["clientId"]: {"application": [], "delegated": []}}}
    sandbox.reset({"tenants": [customer]})
    token = sandbox.client_token(CUSTOMER, WEB_APP["clientId"], WEB_APP["clientSecret"], API_SCOPE)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["tid"] == CUSTOMER and claims["roles"] == ["Calendar.Integration"]
    unauthenticated(call(api, token))


def test_a_token_for_another_audience_is_401(api, sandbox):
    unauthenticated(call(api, forged(sandbox, aud=str(uuid.uuid4()))))
    unauthenticated(call(api, forged(sandbox, aud="https://graph.microsoft.com")))
    # A real Graph token of the web app (Microsoft issues one to any app; v1, other audience).
    unauthenticated(call(api, caller_token(sandbox, scope="https://graph.microsoft.com/.default")))


def test_an_app_not_allowed_is_403(api, sandbox):
    token = caller_token(sandbox, NOT_ALLOWED)
    assert jwt.decode(token, options={"verify_signature": False})["roles"] == ["Calendar.Integration"]
    forbidden(call(api, token))
    forbidden(call(api, forged(sandbox, drop=("azp",))))


def test_an_allowed_app_without_the_role_is_403(api, sandbox):
    forbidden(call(api, caller_token(sandbox, NO_ROLE)))
    forbidden(call(api, forged(sandbox, roles=["Calendar.Read"])))


def test_a_users_delegated_token_is_403(api, sandbox):
    user = {"scp": "access_as_user", "oid": str(uuid.uuid4()), "name": "Ada", "preferred_username": "ada@10kc.example"}
    forbidden(call(api, forged(sandbox, drop=("roles",), **user)))
    forbidden(call(api, forged(sandbox, **user)))  # even beside the role


def test_authentication_comes_before_the_organization_header_before_anything(api, sandbox):
    unauthenticated(api.get("/tenants/not-a-guid", headers={"Authorization": None, "X-Organization-Id": None}),
                    token_sent=False)
    unauthenticated(api.put("/tenants/not-a-guid", data=b"{", headers={"Authorization": "Bearer x.y.z"}))
    for organization in (None, "", "org 42", "o" * 129, "org/42", "ørg"):
        answer = api.put("/tenants/not-a-guid", data=b"{", headers={"X-Organization-Id": organization})
        assert answer.status_code == 400, organization
        assert answer.json()["error"]["code"] == "invalid_request"
        assert answer.json()["error"]["target"] == "X-Organization-Id"
    assert api.put("/tenants/not-a-guid", data=b"{").json()["error"]["target"] == "tenantId"
    good = "Org_1.a@b+c-" + "x" * 116
    assert len(good) == 128 and api.get(f"/tenants/{UNKNOWN}", headers={"X-Organization-Id": good}).status_code == 404


def test_an_unreachable_identity_platform_is_502_not_401(api, sandbox):
    sandbox.session().post(f"{sandbox.base_url}/_sandbox/faults", timeout=10, json={
        "path": r".*/openid-configuration$", "status": 503, "count": 1}).raise_for_status()
    answer = call(api, caller_token(sandbox))
    assert answer.status_code == 502 and answer.json()["error"]["code"] == "upstream_error"
    accepted(call(api, caller_token(sandbox)))


# -- signing keys -------------------------------------------------------------------------------

def test_after_a_rotation_the_new_key_is_fetched_once_and_old_tokens_still_work(api, sandbox):
    old = caller_token(sandbox)
    accepted(call(api, old))  # the key set is now cached
    since = sandbox.next_request_index()
    new_kid = sandbox.rotate_keys()
    new = sandbox.client_token(HOME, WEB_APP["clientId"], WEB_APP["clientSecret"], API_SCOPE)
    assert jwt.get_unverified_header(new)["kid"] == new_kid != jwt.get_unverified_header(old)["kid"]

    accepted(call(api, new))  # the very first request after the rotation
    accepted(call(api, new))
    accepted(call(api, old))  # signed before the rotation, still valid until it expires

    assert keys_fetches(sandbox, since) == 1


def test_a_flood_of_unknown_kids_fetches_the_keys_at_most_once(api, sandbox):
    accepted(call(api, caller_token(sandbox)))
    since = sandbox.next_request_index()
    for _ in range(25):
        unauthenticated(call(api, forged(sandbox, header={"kid": uuid.uuid4().hex})))
    assert keys_fetches(sandbox, since) <= 1
    accepted(call(api, caller_token(sandbox)))


def test_a_new_instances_first_burst_fetches_the_keys_once(api, sandbox):
    """Requests that arrive together at a new instance all need the key set; while the identity
    platform takes its time to answer, they wait for the one fetch under way instead of each making
    their own."""
    from concurrent.futures import ThreadPoolExecutor

    from shared import clients

    token = caller_token(sandbox)
    sandbox.session().post(f"{sandbox.base_url}/_sandbox/faults", timeout=10, json={
        "path": f"^{KEYS_PATH}$", "latencyMs": 400, "count": 8}).raise_for_status()
    clients.caller_tokens.cache_clear()  # as on a new instance: nothing fetched yet
    since = sandbox.next_request_index()
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: call(api.acting_for("org-42"), token), range(6)))
    for answer in answers:
        accepted(answer)
    assert keys_fetches(sandbox, since) == 1


# -- organizations kept apart -------------------------------------------------------------------

def tenant_routes() -> set[tuple[str, str]]:
    """(method, route) of every HTTP function the app registers under tenants/…"""
    import function_app
    from shared.platform_routes import app_functions

    found = set()
    for function in app_functions(function_app.app):
        for binding in json.loads(function.get_function_json())["bindings"]:
            route = binding.get("route") or ""
            if binding.get("type") == "httpTrigger" and route.startswith("tenants/"):
                found |= {(method.upper(), route) for method in binding["methods"]}
    return found


def test_the_walk_below_covers_the_routes_we_know(api):
    assert tenant_routes() >= {
        ("GET", "tenants/{tenantId}"), ("PUT", "tenants/{tenantId}"), ("DELETE", "tenants/{tenantId}"),
        ("GET", "tenants/{tenantId}/users/{userId}"), ("DELETE", "tenants/{tenantId}/users/{userId}"),
        ("POST", "tenants/{tenantId}/consent"), ("POST", "tenants/{tenantId}/availability"),
        ("POST", "tenants/{tenantId}/bookings"), ("GET", "tenants/{tenantId}/bookings/{bookingId}"),
        ("DELETE", "tenants/{tenantId}/bookings/{bookingId}"), ("GET", "tenants/{tenantId}/users"),
        ("GET", "tenants/{tenantId}/consent/{consentRequestId}")}


AVAILABILITY = {"organizer": "ada@fabrikam.example", "attendees": ["grace@fabrikam.example"],
                "start": at(0, "09:00:00-05:00"), "end": at(0, "17:00:00-05:00"), "durationMinutes": 30}
BODIES = {"tenants/{tenantId}": {"mode": "domain"},
          "tenants/{tenantId}/consent": {"kind": "admin", "returnUrl": "http://127.0.0.1:3000/admin"},
          "tenants/{tenantId}/availability": AVAILABILITY,
          "tenants/{tenantId}/bookings": BOOKING | {"start": at(0, "11:00:00-05:00"), "end": at(0, "11:30:00-05:00")}}


def test_another_organization_finds_nothing_on_any_tenant_route(api, sandbox):
    sandbox.reset({"tenants": TENANTS})
    admin_consent(api, sandbox, DOMAIN, "ada@fabrikam.example")
    booking = book(api, "iso-1").json()
    from shared.clients import member_tokens

    member_tokens().connect(DOMAIN, "c1c2c3c4-0000-4000-8000-000000000002", "grace@fabrikam.example", "rt-grace-1")
    before = {mail: len(events(sandbox, mail)) for mail in ("ada@fabrikam.example", "grace@fabrikam.example")}
    consent = api.post(f"/tenants/{DOMAIN}/consent", json=BODIES["tenants/{tenantId}/consent"]).json()
    values = {"tenantId": DOMAIN, "userId": "grace@fabrikam.example", "bookingId": booking["bookingId"],
              "consentRequestId": consent["consentRequestId"]}
    other = api.acting_for("org-99")

    walked = set()
    for method, route in sorted(tenant_routes()):
        names = {part[1:-1] for part in route.split("/") if part.startswith("{")}
        if names - set(values):
            pytest.fail(f"{method} {route}: give the walk a value for {sorted(names - set(values))}")
        path, unknown_path = ("/" + route.format(**(values | {"tenantId": tenant})) for tenant in (DOMAIN, UNKNOWN))
        options = {"json": BODIES.get(route, {}), "headers": {"Idempotency-Key": f"iso-{method}-{route}"}}
        answer = other.request(method, path, **options)
        if (method, route) == ("PUT", "tenants/{tenantId}"):
            # The one route that says a tenant is taken: an admin must learn why it cannot connect.
            assert answer.status_code == 409 and answer.json()["error"]["code"] == "tenant_owned_elsewhere"
        else:
            assert answer.status_code == 404, (method, route, answer.text)
            assert answer.json()["error"]["code"] == "tenant_not_found", (method, route)
            assert answer.json() == other.request(method, unknown_path, **options).json(), (method, route)
        walked.add((method, route))
    assert walked == tenant_routes()

    # Nothing changed for the owner: the tenant, the member, the booking, the calendars.
    tenant = api.get(f"/tenants/{DOMAIN}").json()
    assert tenant["status"] == "enabled" and tenant["organizationId"] == "org-42" and tenant["connectedUsers"] == 1
    assert api.get(f"/tenants/{DOMAIN}/users/grace@fabrikam.example").json()["status"] == "connected"
    assert api.get(f"/tenants/{DOMAIN}/bookings/{booking['bookingId']}").json()["status"] == "confirmed"
    assert {mail: len(events(sandbox, mail)) for mail in before} == before
