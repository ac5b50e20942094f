"""Change-notification subscriptions in the sandbox: create with the validation handshake, the
limits and refusals, 409 for a duplicate, list / get / renew / reauthorize / delete, expiry,
who sees which subscription, delegated ``me/events`` and the grants behind a subscription.

Sources: learn.microsoft.com/graph/api/resources/subscription, /graph/api/subscription-post-subscriptions,
/graph/api/subscription-update, /graph/api/subscription-reauthorize, /graph/change-notifications-delivery-webhooks
(validation: POST ?validationToken=, text/plain, 10 s; "Duplicate subscriptions aren't allowed"),
/graph/change-notifications-lifecycle-events; the limits and codes Graph answers as observed
(sandbox/graph/subscriptions.py cites each).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
import requests

from sandbox.receiver import NotificationReceiver
from sandbox.server import RunningServer
from sandbox.testing import SandboxProcess
from tests.support.sandbox_graph import (
    ANN,
    BEN,
    CLIENT_ID,
    DAN,
    FABRIKAM,
    NOROLES,
    READONLY,
    RITA,
    Graph,
    app_token,
    delegated_token,
    error,
    expires,
    graph_seed,
    ok,
    raw_token,
)

pytestmark = pytest.mark.integration

# Short timeouts and retries (the sandbox's settings may only shorten Microsoft's figures).
FAST = {"subscriptionValidationTimeoutSeconds": 1, "notificationTimeoutSeconds": 1, "notificationRetries": 2,
        "notificationRetryBaseSeconds": 0.2}
ANN_EVENTS = f"users/{ANN['id']}/events"
# Every property of graph.subscription (learn.microsoft.com/graph/api/resources/subscription).
SUBSCRIPTION_PROPERTIES = {
    "id", "resource", "applicationId", "changeType", "clientState", "notificationUrl", "notificationQueryOptions",
    "lifecycleNotificationUrl", "expirationDateTime", "creatorId", "includeResourceData", "latestSupportedTlsVersion",
    "encryptionCertificate", "encryptionCertificateId", "notificationUrlAppId", "notificationContentType"}
VALIDATION_FAILED = ("Subscription validation request failed. Notification endpoint must respond with 200 OK to "
                     "validation request.")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture(autouse=True)
def fresh(sandbox: SandboxProcess, hook: NotificationReceiver) -> None:
    sandbox.reset({**graph_seed(), "graph": FAST})
    hook.clear()


def body(hook: NotificationReceiver, **extra: Any) -> dict[str, Any]:
    return {"changeType": "created,updated,deleted", "notificationUrl": hook.url("/notify"), "resource": ANN_EVENTS,
            "expirationDateTime": expires(60), "clientState": "secret-" + uuid.uuid4().hex, **extra}


def subscribe(graph: Graph, hook: NotificationReceiver, headers: dict[str, str] | None = None,
              **extra: Any) -> requests.Response:
    return graph.post("/subscriptions", json=body(hook, **extra), headers=headers)


def control(graph: Graph, method: str, path: str, **kwargs: Any) -> requests.Response:
    return graph.session.request(method, f"{graph.base_url}/_sandbox{path}", timeout=30, **kwargs)


def log(graph: Graph) -> list[dict[str, Any]]:
    return ok(control(graph, "GET", "/notifications"), 200)["value"]


def test_create_sends_the_validation_request_and_answers_the_subscription(graph: Graph,
                                                                         hook: NotificationReceiver) -> None:
    url = hook.url("/notify") + "?code=fn-key&x=1"
    lifecycle = hook.url("/lifecycle")
    asked = body(hook, notificationUrl=url, lifecycleNotificationUrl=lifecycle)
    made = ok(graph.post("/subscriptions", json=asked), 201)
    assert made["@odata.context"] == f"{graph.base_url}/v1.0/$metadata#subscriptions/$entity"
    assert set(made) - {"@odata.context"} == SUBSCRIPTION_PROPERTIES
    uuid.UUID(made["id"])
    assert made["resource"] == ANN_EVENTS and made["changeType"] == "created,updated,deleted"
    assert made["notificationUrl"] == url and made["lifecycleNotificationUrl"] == lifecycle
    assert made["clientState"] == asked["clientState"] and made["applicationId"] == CLIENT_ID
    assert abs(parse(made["expirationDateTime"]) - parse(asked["expirationDateTime"])) < timedelta(seconds=1)
    assert made["includeResourceData"] is False and made["latestSupportedTlsVersion"] == "v1_2"
    uuid.UUID(made["creatorId"])  # app-only: the app's service principal in the tenant
    # One validation request per URL, before the answer: the decoded token, text/plain, the
    # URL's own query kept.
    assert [v["path"] for v in hook.validations] == ["/notify", "/lifecycle"]
    first = hook.validations[0]
    assert first["token"].startswith("Validation: ") and " " in first["token"]
    assert first["headers"]["Content-Type"].startswith("text/plain")
    entries = [e for e in log(graph) if e["kind"] == "validation"]
    assert [e["outcome"] for e in entries] == ["validated", "validated"]
    assert entries[0]["url"] == url and entries[0]["validationToken"] == first["token"]
    # The query string is still there around the token.
    assert quote(first["token"], safe="") not in url
    assert ok(graph.get(f"/subscriptions/{made['id']}"), 200) == made
    listed = ok(graph.get("/subscriptions"), 200)
    assert listed["@odata.context"] == f"{graph.base_url}/v1.0/$metadata#subscriptions"
    assert [s["id"] for s in listed["value"]] == [made["id"]]


def test_the_same_url_twice_is_validated_twice(graph: Graph, hook: NotificationReceiver) -> None:
    ok(subscribe(graph, hook, lifecycleNotificationUrl=hook.url("/notify")), 201)
    assert [v["path"] for v in hook.validations] == ["/notify", "/notify"]
    assert hook.validations[0]["token"] != hook.validations[1]["token"]


@pytest.mark.parametrize("mode", ["wrong", "encoded", "html", "status"])
def test_a_wrong_validation_answer_creates_nothing(graph: Graph, hook: NotificationReceiver, mode: str) -> None:
    hook.validation("/notify", mode)
    error(subscribe(graph, hook), 400, "ValidationError", VALIDATION_FAILED)
    assert ok(graph.get("/subscriptions"), 200)["value"] == []
    assert [e["outcome"] for e in log(graph) if e["kind"] == "validation"] == ["invalid"]


def test_a_bad_lifecycle_url_fails_the_create_too(graph: Graph, hook: NotificationReceiver) -> None:
    hook.validation("/lifecycle", "wrong")
    error(subscribe(graph, hook, lifecycleNotificationUrl=hook.url("/lifecycle")), 400, "ValidationError")
    assert ok(graph.get("/subscriptions"), 200)["value"] == []


def test_no_answer_within_the_timeout_is_a_timeout(graph: Graph, hook: NotificationReceiver) -> None:
    hook.validation("/notify", "slow", delay=2.5)
    started = time.monotonic()
    error(subscribe(graph, hook), 400, "InvalidRequest", "Subscription validation request timed out.")
    assert 0.9 < time.monotonic() - started < 2.4  # the 1 s set in FAST, not the endpoint's 2.5 s
    assert ok(graph.get("/subscriptions"), 200)["value"] == []


def test_the_default_validation_timeout_is_microsofts_10_seconds(graph: Graph, hook: NotificationReceiver,
                                                                   sandbox: SandboxProcess) -> None:
    sandbox.reset(graph_seed())  # no "graph": the defaults
    settings = ok(control(graph, "GET", "/graph"), 200)
    assert settings["subscriptionValidationTimeoutSeconds"] == 10 and settings["notificationTimeoutSeconds"] == 3
    assert settings["notificationRetries"] == 4 and settings["notificationRetryBaseSeconds"] == 1
    hook.validation("/notify", "slow", delay=1.5)  # too slow for FAST, in time for 10 s
    ok(subscribe(graph, hook), 201)
    # The settings can shorten Microsoft's timeouts, never lengthen them.
    for bad in ({"subscriptionValidationTimeoutSeconds": 11}, {"notificationTimeoutSeconds": 3.5},
                {"notificationTimeoutSeconds": 0}, {"notificationRetries": 1.5}, {"notificationRetries": 11}):
        error(control(graph, "PATCH", "/graph", json=bad), 400, "BadRequest")
    patched = ok(control(graph, "PATCH", "/graph", json={"subscriptionValidationTimeoutSeconds": 0.5}), 200)
    assert patched["subscriptionValidationTimeoutSeconds"] == 0.5 and patched["transactionIdWindowSeconds"] == 120


def test_unreachable_and_non_https_urls(graph: Graph, hook: NotificationReceiver) -> None:
    closed = f"http://127.0.0.1:{hook.port}/notify".replace(str(hook.port), "9")  # nothing listens on port 9
    error(subscribe(graph, hook, notificationUrl=closed), 400, "ValidationError")
    for url in ("http://example.com/hook", "http://localhost:8080/hook", "ftp://127.0.0.1/x", "/relative"):
        error(subscribe(graph, hook, notificationUrl=url), 400, "InvalidRequest")
    error(subscribe(graph, hook, lifecycleNotificationUrl="http://example.com/life"), 400, "InvalidRequest")
    assert hook.validations == []


def test_expiration_limits(graph: Graph, hook: NotificationReceiver) -> None:
    # Microsoft's table says 10,080 minutes; Graph refuses that with this message (the harsher limit).
    error(subscribe(graph, hook, expirationDateTime=expires(10_080)), 400, "ExtensionError",
          "Subscription expiration can only be 10070 minutes in the future.")
    error(subscribe(graph, hook, expirationDateTime=expires(10_071)), 400, "ExtensionError")
    error(subscribe(graph, hook, expirationDateTime=expires(-1)), 400, "InvalidRequest")
    naive = (datetime.now(UTC) + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    error(subscribe(graph, hook, expirationDateTime=naive), 400, "BadRequest")
    error(subscribe(graph, hook, expirationDateTime="tomorrow"), 400, "BadRequest")
    assert hook.validations == []  # refused before any validation request
    made = ok(subscribe(graph, hook, expirationDateTime=expires(10_069)), 201)
    assert parse(made["expirationDateTime"]) > datetime.now(UTC) + timedelta(minutes=10_068)


@pytest.mark.parametrize(("change", "extra", "status", "code"), [
    (None, {"clientState": None}, 400, "InvalidRequest"),
    (None, {"clientState": "x" * 129}, 400, "InvalidRequest"),
    (None, {"clientState": ""}, 400, "InvalidRequest"),
    ("created, updated", {}, 400, "InvalidRequest"),
    ("Created", {}, 400, "InvalidRequest"),
    ("created,created", {}, 400, "InvalidRequest"),
    ("moved", {}, 400, "InvalidRequest"),
    ("", {}, 400, "InvalidRequest"),
    (None, {"resource": f"users/{ANN['id']}/messages"}, 400, "InvalidRequest"),
    (None, {"resource": f"users/{ANN['id']}/events?$filter=subject eq 'x'"}, 400, "InvalidRequest"),
    (None, {"resource": "me/events"}, 400, "BadRequest"),  # app-only
    (None, {"resource": "users/nobody@fabrikam.example/events"}, 404, "ErrorInvalidUser"),
    (None, {"resource": f"users/{DAN['id']}/events"}, 403, "ErrorAccessDenied"),  # outside the access policy
    (None, {"includeResourceData": True}, 400, "InvalidRequest"),
    (None, {"latestSupportedTlsVersion": "v1_1"}, 400, "InvalidRequest"),
    (None, {"notificationUrlz": "x"}, 400, "BadRequest"),
    (None, {"expirationDateTime": None}, 400, "InvalidRequest"),
])
def test_bodies_graph_refuses(graph: Graph, hook: NotificationReceiver, change: str | None, extra: dict[str, Any],
                              status: int, code: str) -> None:
    asked = body(hook, **extra)
    if change is not None:
        asked["changeType"] = change
    asked = {k: v for k, v in asked.items() if v is not None}
    error(graph.post("/subscriptions", json=asked), status, code)
    assert hook.validations == [] and ok(graph.get("/subscriptions"), 200)["value"] == []


def test_resource_forms_graph_takes(graph: Graph, hook: NotificationReceiver) -> None:
    made = ok(subscribe(graph, hook, resource=f"/Users/{ANN['mail']}/Events", clientState="x" * 128), 201)
    assert made["resource"] == f"/Users/{ANN['mail']}/Events" and len(made["clientState"]) == 128
    ok(subscribe(graph, hook, resource=f"users/{BEN['id']}/events", changeType="deleted"), 201)


def test_the_same_combination_again_is_409(graph: Graph, hook: NotificationReceiver) -> None:
    first = ok(subscribe(graph, hook), 201)
    hook.clear()
    # Whatever names the mailbox, whatever the URL and the order of the change types; refused
    # before any validation request.
    for again in ({"resource": f"users/{ANN['mail']}/events"}, {"notificationUrl": hook.url("/other")},
                  {"changeType": "deleted,created,updated"}):
        error(subscribe(graph, hook, **again), 409, "ObjectIdentifierInUse",
              f"Subscription Id {first['id']} already exists for the requested combination")
    assert hook.validations == []
    other = ok(subscribe(graph, hook, changeType="created"), 201)
    assert other["id"] != first["id"]
    assert graph.delete(f"/subscriptions/{first['id']}").status_code == 204
    ok(subscribe(graph, hook), 201)


def test_renew_validates_again_and_checks_the_limits(graph: Graph, hook: NotificationReceiver) -> None:
    made = ok(subscribe(graph, hook, lifecycleNotificationUrl=hook.url("/lifecycle")), 201)
    path = f"/subscriptions/{made['id']}"
    hook.clear()
    later = expires(3 * 24 * 60)
    renewed = ok(graph.patch(path, json={"expirationDateTime": later}), 200)
    assert abs(parse(renewed["expirationDateTime"]) - parse(later)) < timedelta(seconds=1)
    assert renewed["id"] == made["id"] and renewed["clientState"] == made["clientState"]
    assert [v["path"] for v in hook.validations] == ["/notify", "/lifecycle"]
    error(graph.patch(path, json={"expirationDateTime": expires(10_080)}), 400, "ExtensionError")
    error(graph.patch(path, json={}), 400, "InvalidRequest",
          "Subscription must contain either the 'expirationDateTime' or 'notificationUrl' property and its value.")
    error(graph.patch(path, json={"lifecycleNotificationUrl": hook.url("/x")}), 400, "InvalidRequest")
    error(graph.patch(path, json={"clientState": "new"}), 400, "InvalidRequest")
    hook.validation("/notify", "wrong")
    error(graph.patch(path, json={"expirationDateTime": expires(60)}), 400, "ValidationError")
    assert parse(ok(graph.get(path), 200)["expirationDateTime"]) == parse(renewed["expirationDateTime"])
    moved = ok(graph.patch(path, json={"notificationUrl": hook.url("/moved")}), 200)
    assert moved["notificationUrl"] == hook.url("/moved")


def test_an_expired_or_removed_subscription_is_404(graph: Graph, hook: NotificationReceiver) -> None:
    made = ok(subscribe(graph, hook), 201)
    path = f"/subscriptions/{made['id']}"
    soon = expires(2 / 60)  # two seconds
    shown = ok(control(graph, "PATCH", f"/subscriptions/{made['id']}", json={"expirationDateTime": soon}), 200)
    assert shown["id"] == made["id"] and shown["tenantId"] == FABRIKAM and shown["mailboxId"] == ANN["id"]
    ok(graph.get(path), 200)
    time.sleep(2.5)
    for response in (graph.get(path), graph.patch(path, json={"expirationDateTime": expires(60)}),
                     graph.post(f"{path}/reauthorize"), graph.delete(path)):
        error(response, 404, "ResourceNotFound", "The object was not found.")
    assert ok(graph.get("/subscriptions"), 200)["value"] == []
    assert ok(control(graph, "GET", "/subscriptions"), 200)["value"] == []
    # The control route removes one at once with a time in the past.
    other = ok(subscribe(graph, hook), 201)
    gone = control(graph, "PATCH", f"/subscriptions/{other['id']}", json={"expirationDateTime": expires(-1)})
    assert gone.status_code == 204
    error(graph.get(f"/subscriptions/{other['id']}"), 404, "ResourceNotFound")
    error(control(graph, "PATCH", f"/subscriptions/{other['id']}", json={"expirationDateTime": expires(5)}), 404,
          "ResourceNotFound")


def test_reauthorize_and_delete(graph: Graph, hook: NotificationReceiver) -> None:
    made = ok(subscribe(graph, hook), 201)
    hook.clear()
    reauthorized = graph.post(f"/subscriptions/{made['id']}/reauthorize")
    assert reauthorized.status_code == 204 and not reauthorized.content
    assert [v["path"] for v in hook.validations] == ["/notify"]
    error(graph.post(f"/subscriptions/{uuid.uuid4()}/reauthorize"), 404, "ResourceNotFound")
    deleted = graph.delete(f"/subscriptions/{made['id']}")
    assert deleted.status_code == 204
    error(graph.delete(f"/subscriptions/{made['id']}"), 404, "ResourceNotFound")


def test_a_reset_removes_every_subscription(graph: Graph, hook: NotificationReceiver,
                                            sandbox: SandboxProcess) -> None:
    made = ok(subscribe(graph, hook), 201)
    sandbox.reset({**graph_seed(), "graph": FAST})
    error(graph.get(f"/subscriptions/{made['id']}"), 404, "ResourceNotFound")
    assert ok(control(graph, "GET", "/subscriptions"), 200)["value"] == []


def test_permissions_and_consent_behind_a_subscription(graph: Graph, hook: NotificationReceiver,
                                                       sandbox: SandboxProcess) -> None:
    # Calendars.Read is enough to subscribe (the create page's table).
    reader = graph.with_token(app_token(graph.base_url, READONLY))
    ok(reader.post("/subscriptions", json=body(hook, resource=f"users/{RITA['id']}/events")), 201)
    # A token without a calendar role cannot.
    no_roles = graph.with_token(app_token(graph.base_url, NOROLES))
    error(no_roles.post("/subscriptions", json=body(hook)), 403, "ErrorAccessDenied")
    error(no_roles.get("/subscriptions"), 403, "ErrorAccessDenied")
    # Withdrawn consent: a token issued before still says Calendars.ReadWrite, the tenant no longer does.
    made = ok(subscribe(graph, hook), 201)
    ok(sandbox.session().post(f"{sandbox.base_url}/_sandbox/tenants/{FABRIKAM}/revoke", json={}, timeout=30), 200)
    error(subscribe(graph, hook, changeType="created"), 403, "ErrorAccessDenied")
    error(graph.post(f"/subscriptions/{made['id']}/reauthorize"), 403, "ErrorAccessDenied")
    [shown] = [s for s in ok(control(graph, "GET", "/subscriptions"), 200)["value"] if s["id"] == made["id"]]
    assert shown["paused"] is True


# -- in-process: other apps, delegated subscriptions ---------------------------------------------

def local_client(local: RunningServer, token: str) -> Graph:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(local.sandbox.pki.ca_bundle_path)
    return Graph(local.base_url, token, session)


@pytest.fixture
def local_fresh(local: RunningServer) -> RunningServer:
    local.sandbox.state.reset({**graph_seed(), "graph": FAST})
    local.sandbox.subscriptions.reset()
    return local


def test_only_the_creating_app_in_its_tenant_sees_a_subscription(local_fresh: RunningServer,
                                                                  hook: NotificationReceiver) -> None:
    ours = local_client(local_fresh, raw_token(local_fresh, FABRIKAM))
    theirs = local_client(local_fresh, raw_token(local_fresh, FABRIKAM, appid=str(uuid.uuid4())))
    made = ok(ours.post("/subscriptions", json=body(hook)), 201)
    assert ok(theirs.get("/subscriptions"), 200)["value"] == []
    for response in (theirs.get(f"/subscriptions/{made['id']}"), theirs.delete(f"/subscriptions/{made['id']}"),
                     theirs.patch(f"/subscriptions/{made['id']}", json={"expirationDateTime": expires(60)})):
        error(response, 404, "ResourceNotFound")
    # Another app on the same mailbox and change types is no duplicate of ours (but has no consent here).
    error(theirs.post("/subscriptions", json=body(hook)), 403, "ErrorAccessDenied")
    ok(ours.get(f"/subscriptions/{made['id']}"), 200)


def test_delegated_me_events(local_fresh: RunningServer, hook: NotificationReceiver) -> None:
    ann = local_client(local_fresh, delegated_token(local_fresh, FABRIKAM, ANN))
    ben = local_client(local_fresh, delegated_token(local_fresh, FABRIKAM, BEN))
    made = ok(ann.post("/subscriptions", json=body(hook, resource="me/events")), 201)
    assert made["creatorId"] == ANN["id"] and made["resource"] == "me/events"
    # The same mailbox by id is the same combination.
    error(ann.post("/subscriptions", json=body(hook, resource=f"users/{ANN['id']}/events")), 409,
          "ObjectIdentifierInUse")
    # Another user's mailbox is not the signed-in user's to watch.
    error(ann.post("/subscriptions", json=body(hook, resource=f"users/{BEN['id']}/events")), 403,
          "ErrorAccessDenied")
    # Ben (same app) does not see Ann's subscription; the app itself (app-only) does.
    assert ok(ben.get("/subscriptions"), 200)["value"] == []
    error(ben.get(f"/subscriptions/{made['id']}"), 404, "ResourceNotFound")
    app = local_client(local_fresh, raw_token(local_fresh, FABRIKAM))
    assert [s["id"] for s in ok(app.get("/subscriptions"), 200)["value"]] == [made["id"]]
    # A token with only the .Shared scope cannot subscribe.
    shared = local_client(local_fresh, delegated_token(local_fresh, FABRIKAM, BEN,
                                                       scopes=("Calendars.ReadWrite.Shared",)))
    error(shared.post("/subscriptions", json=body(hook, resource="me/events")), 403, "ErrorAccessDenied")
