"""Fuzzing the HTTP API from openapi.yaml with schemathesis, against the app on the local host with
Azurite and the sandbox behind it: generated requests (valid and invalid) for every route, and
random paths and methods for the catch-all. Zero 5xx; every error in the contract's envelope;
every answer as the document describes it, with an x-request-id.

Requests carry the 10KC web app's token from the sandbox and, mostly, the organization that owns
the known tenants (X-Organization-Id is generated too, so some are malformed or another
organization's). schemathesis' `ignored_auth` check sends each operation again without the token
and with a made-up one: they must be refused. And every tenant operation is also fuzzed with no
token and no organization at all: 401 in the envelope, whatever else the request holds.

`make test` runs a CI-sized fuzz (FUZZ_EXAMPLES per operation, 120 by default: about two
thousand requests); `make fuzz` runs the long one.
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SANDBOX_SEED, clear_caches
from tests.support.callers import caller_env, caller_token

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
DOMAIN = "f0f0f0f0-0000-4000-8000-0000000000d1"
DELEGATED = "f0f0f0f0-0000-4000-8000-0000000000d2"
PENDING = "f0f0f0f0-0000-4000-8000-0000000000d3"
APP = json.loads(SANDBOX_SEED.read_text())["apps"][0]
USERS = [{"id": f"f0f0f0f0-0000-4000-8000-{i:012d}", "mail": f"user{i}@fuzz.example", "displayName": f"User {i}",
          "timeZone": "Europe/Berlin"} for i in range(3)]

# Operations, read once at collection: one test per operation, as schemathesis' pytest plugin would.
OPERATIONS = [result.ok().label for result in schemathesis.openapi.from_path(ROOT / "openapi.yaml")
              .get_all_operations()]

ORGANIZATION = "org-fuzz"  # owns the known tenants


@pytest.fixture(scope="module")
def fuzz_stack(azurite, sandbox, host):
    """The service on Azurite and the sandbox, with three known tenants the fuzzer aims at."""
    with pytest.MonkeyPatch.context() as patch:
        values = {**sandbox.managed_identity_env(), "KEY_VAULT_URL": sandbox.base_url,
                  "IDENTITY_AUTHORITY_HOST": sandbox.base_url, "GRAPH_BASE_URL": sandbox.base_url + "/v1.0",
                  "APP_CLIENT_ID": APP["clientId"], "SERVICE_STORAGE": azurite.connection_string,
                  "STORAGE_TABLE_PREFIX": "fuzz" + uuid.uuid4().hex[:8], "LOG_LEVEL": "WARNING", **caller_env()}
        for name, value in values.items():
            patch.setenv(name, value)
        clear_caches()
        consented = {APP["clientId"]: {"application": ["Calendars.ReadWrite"], "delegated": []}}
        seed = json.loads(SANDBOX_SEED.read_text())
        sandbox.reset({"apps": seed["apps"],
                       "tenants": [{"tenantId": DOMAIN, "domain": "fuzz.example", "consented": consented,
                                    "users": USERS},
                                   {"tenantId": DELEGATED, "domain": "fuzz2.example", "users": []}]})
        reset_tenants()
        yield host
        clear_caches()
        total = sum(STATUSES.values())
        print(f"\nfuzz: {total} requests; statuses {dict(sorted(STATUSES.items()))}")


def reset_tenants() -> None:
    """The fuzzer's PUTs and DELETEs change the known tenants: put them back before each operation."""
    from shared.clients import repositories
    from shared.storage import Tenant, utcnow

    for tenant_id, mode, status in [(DOMAIN, "domain", "enabled"), (DELEGATED, "delegated", "enabled"),
                                    (PENDING, "domain", "pending_consent")]:
        repositories().store.upsert(Tenant(tenantId=tenant_id, organizationId=ORGANIZATION, organizationName="Fuzz",
                                           mode=mode, status=status, createdAt=utcnow(), updatedAt=utcnow()))


STATUSES: Counter[int] = Counter()


def load_schema(base_url: str, token: str | None = None):
    loaded = schemathesis.openapi.from_path(ROOT / "openapi.yaml")
    loaded.config.update(base_url=base_url, suppress_health_check=list(HealthCheck))
    loaded.config.generation.update(max_examples=EXAMPLES)

    if token is not None:
        @loaded.auth()
        class WebAppToken:
            """The web app's credential for the `entraId` scheme: schemathesis sends it with every
            request and, for `ignored_auth`, again without it and with a made-up one."""

            def get(self, case, context):
                return token

            def set(self, case, data, context):
                case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    @loaded.hook
    def flatmap_path_parameters(context, path_parameters):
        # Aim at the known tenants most of the time, so requests get past "tenant not found".
        if not path_parameters or "tenantId" not in path_parameters:
            return st.just(path_parameters)
        return st.sampled_from([DOMAIN, DOMAIN, DELEGATED, PENDING, path_parameters["tenantId"]]).map(
            lambda tenant: {**path_parameters, "tenantId": tenant})

    @loaded.hook
    def flatmap_headers(context, headers):
        # Act for the known tenants' organization most of the time; else what was generated.
        if not headers or "X-Organization-Id" not in headers:
            return st.just(headers)
        return st.sampled_from([ORGANIZATION, ORGANIZATION, ORGANIZATION, headers["X-Organization-Id"]]).map(
            lambda organization: {**headers, "X-Organization-Id": organization})

    return loaded


@pytest.fixture
def fuzz_schema(fuzz_stack, sandbox):
    """The document, every request sent with the web app's token (schemathesis treats it as the
    explicit credential, and probes each operation without it and with a bad one)."""
    return load_schema(f"{fuzz_stack.base_url}/api", caller_token(sandbox))


@schemathesis.check
def error_envelope(ctx, response, case):
    """Every 4xx/5xx outside the two browser routes is {"error": {"code", "message", "target"?}}."""
    if response.status_code >= 400 and not case.path.startswith("/consent/"):
        body = json.loads(response.content)
        assert set(body) == {"error"}, body
        assert {"code", "message"} <= set(body["error"]) <= {"code", "message", "target"}, body
    assert response.headers.get("x-request-id"), "every answer carries x-request-id"
    return True


@pytest.mark.parametrize("label", OPERATIONS)
def test_api_conforms_to_its_document(fuzz_schema, label):
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

    operation = fuzz_schema.find_operation_by_label(label)
    reset_tenants()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case):
        response = case.call_and_validate(
            additional_checks=[error_envelope, not_a_server_error, ignored_auth],
            # Valid data is not always accepted: a valid booking for someone unknown to Graph is 400.
            excluded_checks=[positive_data_acceptance],
            timeout=30,
        )
        STATUSES[response.status_code] += 1

    check()


TENANT_OPERATIONS = [label for label in OPERATIONS if " /tenants/" in label]


@pytest.mark.parametrize("label", TENANT_OPERATIONS)
def test_tenant_operations_without_a_token_or_organization_are_401(fuzz_stack, label):
    """The same operations, nothing proving the caller: whatever the rest of the request, 401 in
    the envelope with the Bearer challenge (authentication comes before everything else)."""
    operation = load_schema(f"{fuzz_stack.base_url}/api").find_operation_by_label(label)

    @settings(max_examples=max(10, EXAMPLES // 4), deadline=None, suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy())
    def check(case):
        for name in ("Authorization", "X-Organization-Id"):
            (case.headers or {}).pop(name, None)
        response = case.call(timeout=30)
        STATUSES[response.status_code] += 1
        error = json.loads(response.content)["error"]
        if response.status_code == 401:
            # schemathesis' headers: lower-cased names, lists of values
            assert error["code"] == "unauthenticated" and response.headers.get("www-authenticate") == ["Bearer"]
        else:  # a generated path that is no route of the app (a tenantId with a slash, say)
            assert (response.status_code, error["code"]) in {(404, "not_found"), (405, "method_not_allowed")}, (
                response.status_code, response.text)
        assert response.headers.get("x-request-id")

    check()


PATHS = st.lists(st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), min_size=0,
                         max_size=12).map(lambda part: part.replace("/", "").replace("?", "").replace("#", "")),
                 min_size=0, max_size=5).map("/".join)


@settings(max_examples=max(50, EXAMPLES), deadline=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]), path=PATHS)
def test_catch_all_answers_404_or_405_in_the_envelope(fuzz_stack, method, path):
    import requests

    response = requests.request(method, f"{fuzz_stack.base_url}/api/{requests.utils.quote(path)}", timeout=30,
                                data=b"{}")
    STATUSES[response.status_code] += 1
    assert response.status_code < 500, (method, path, response.text)
    assert response.headers["x-request-id"]
    if response.headers.get("Content-Type", "").startswith("application/json") and response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] in {"not_found", "method_not_allowed", "invalid_request", "tenant_not_found",
                                 "booking_not_found", "tenant_not_enabled", "user_not_connected", "wrong_mode",
                                 "unauthenticated"}
        if response.status_code == 405:
            assert response.headers["Allow"]


def test_the_fuzz_was_big_enough(fuzz_stack):
    """Ran after the others (file order): the CI-sized run sends a couple of thousand requests."""
    assert sum(STATUSES.values()) >= min(1200, 10 * EXAMPLES), STATUSES
    assert any(200 <= status < 300 for status in STATUSES), "some requests got through validation"
    assert STATUSES[401], "requests without a token were refused"
