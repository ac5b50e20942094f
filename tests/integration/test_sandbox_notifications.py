"""Change notifications the sandbox sends: the changeNotificationCollection for each change made
through Graph, the change types a subscription asked for, batching, retries on 5xx and on a slow
answer, giving up, delivery off the request path, immutable ids, faults (drop, duplicate, delay),
lifecycle notifications, and what stops a subscription sending.

Sources: learn.microsoft.com/graph/change-notifications-delivery-webhooks (the payload, 2xx within
3 seconds, retries with exponential backoff), /graph/api/resources/changenotification,
/graph/change-notifications-lifecycle-events, /graph/outlook-immutable-id; the sandbox's own
choices are in sandbox/graph/notifications.py and subscriptions.py.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import requests

from sandbox.receiver import NotificationReceiver
from sandbox.server import RunningServer
from sandbox.testing import SandboxProcess
from tests.support.days import day
from tests.support.sandbox_graph import (
    ANN,
    BEN,
    FABRIKAM,
    IMMUTABLE,
    Graph,
    delegated_token,
    expires,
    graph_seed,
    ok,
)

pytestmark = pytest.mark.integration

FAST = {"subscriptionValidationTimeoutSeconds": 1, "notificationTimeoutSeconds": 1, "notificationRetries": 2,
        "notificationRetryBaseSeconds": 0.3}
CHANGE_KEYS = {"id", "subscriptionId", "subscriptionExpirationDateTime", "changeType", "resource", "resourceData",
               "clientState", "tenantId"}


@pytest.fixture(autouse=True)
def fresh(sandbox: SandboxProcess, hook: NotificationReceiver) -> None:
    sandbox.reset({**graph_seed(), "graph": FAST})
    hook.clear()


def subscribe(graph: Graph, hook: NotificationReceiver, user: dict[str, Any] = ANN, *, path: str = "/notify",
              headers: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    asked = {"changeType": "created,updated,deleted", "notificationUrl": hook.url(path),
             "resource": f"users/{user['id']}/events", "expirationDateTime": expires(60),
             "clientState": "state-" + uuid.uuid4().hex, **extra}
    return ok(graph.post("/subscriptions", json=asked, headers=headers), 201)


def meeting(**extra: Any) -> dict[str, Any]:
    return {"subject": "10KC: Intro call",
            "start": {"dateTime": f"{day(1)}T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": f"{day(1)}T09:30:00", "timeZone": "UTC"},
            "attendees": [{"emailAddress": {"address": BEN["mail"]}, "type": "required"}], **extra}


def create(graph: Graph, user: dict[str, Any] = ANN, headers: dict[str, str] | None = None,
           **extra: Any) -> dict[str, Any]:
    return ok(graph.post(f"/users/{user['id']}/events", json=meeting(**extra), headers=headers), 201)


def control(graph: Graph, method: str, path: str, **kwargs: Any) -> requests.Response:
    return graph.session.request(method, f"{graph.base_url}/_sandbox{path}", timeout=30, **kwargs)


def log(graph: Graph, kind: str = "change", *, at_least: int = 0, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The delivery log's entries of ``kind``, once there are ``at_least`` (the sandbox writes an
    entry when the answer comes, or the wait for it ends)."""
    deadline = time.monotonic() + timeout
    while True:
        entries = [e for e in ok(control(graph, "GET", "/notifications"), 200)["value"] if e["kind"] == kind]
        if len(entries) >= at_least or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


def test_each_change_is_posted_as_a_change_notification(graph: Graph, hook: NotificationReceiver) -> None:
    sub = subscribe(graph, hook)
    event = create(graph, attendees=[])
    [created] = hook.wait_for(1)
    assert set(created) == CHANGE_KEYS
    path = f"Users/{ANN['id']}/Events/{event['id']}"
    assert created["changeType"] == "created" and created["resource"] == path
    assert created["resourceData"] == {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": path,
                                       "@odata.etag": event["@odata.etag"], "id": event["id"]}
    assert created["subscriptionId"] == sub["id"] and created["clientState"] == sub["clientState"]
    assert created["tenantId"] == FABRIKAM
    assert created["subscriptionExpirationDateTime"] == sub["expirationDateTime"]
    post = hook.posts[0]
    assert post["path"] == "/notify" and post["headers"]["Content-Type"].startswith("application/json")
    patched = ok(graph.patch(f"/users/{ANN['id']}/events/{event['id']}", json={"subject": "Renamed"}), 200)
    [_, updated] = hook.wait_for(2)
    assert updated["changeType"] == "updated" and updated["resourceData"]["@odata.etag"] == patched["@odata.etag"]
    assert patched["@odata.etag"] != event["@odata.etag"]
    assert graph.delete(f"/users/{ANN['id']}/events/{event['id']}").status_code == 204
    [*_, deleted] = hook.wait_for(3)
    assert deleted["changeType"] == "deleted" and deleted["resourceData"]["id"] == event["id"]
    assert len({n["id"] for n in hook.items()}) == 3
    entries = log(graph, at_least=3)
    assert [e["outcome"] for e in entries] == ["delivered"] * 3 and all(e["attempt"] == 1 for e in entries)


def test_only_the_change_types_asked_for(graph: Graph, hook: NotificationReceiver) -> None:
    subscribe(graph, hook, changeType="deleted")
    event = create(graph, attendees=[])
    ok(graph.patch(f"/users/{ANN['id']}/events/{event['id']}", json={"subject": "Renamed"}), 200)
    assert hook.quiet(0.6) == []
    graph.delete(f"/users/{ANN['id']}/events/{event['id']}")
    [deleted] = hook.wait_for(1)
    assert deleted["changeType"] == "deleted"
    # Another mailbox's changes are not this subscription's.
    create(graph, BEN, attendees=[])
    assert len(hook.quiet(0.6)) == 1


def test_notifications_for_one_url_are_batched(graph: Graph, hook: NotificationReceiver) -> None:
    ann_sub = subscribe(graph, hook)
    ben_sub = subscribe(graph, hook, BEN)
    event = create(graph)  # Ann's event and Ben's copy: one POST for both subscriptions
    items = hook.wait_for(2)
    time.sleep(0.4)
    assert len(hook.posts) == 1 and len(items) == 2
    by_subscription = {n["subscriptionId"]: n for n in items}
    assert by_subscription[ann_sub["id"]]["resourceData"]["id"] == event["id"]
    ben_copy = by_subscription[ben_sub["id"]]
    assert ben_copy["changeType"] == "created" and ben_copy["resource"].startswith(f"Users/{BEN['id']}/Events/")
    [copy] = ok(graph.get(f"/users/{BEN['id']}/events", params={"$filter": f"iCalUId eq '{event['iCalUId']}'"}),
                200)["value"]
    assert ben_copy["resourceData"]["id"] == copy["id"] != event["id"]
    # Changes in quick succession share a POST too.
    hook.clear()
    for _ in range(3):
        create(graph, attendees=[])
    hook.wait_for(3)
    time.sleep(0.4)
    assert [len(p["body"]["value"]) for p in hook.posts] == [3]


def test_a_5xx_is_tried_again_after_growing_waits(graph: Graph, hook: NotificationReceiver) -> None:
    subscribe(graph, hook)
    hook.answer("/notify", 500, 503)
    event = create(graph, attendees=[])
    delivered = hook.wait_for(1, accepted_only=True)
    assert [n["resourceData"]["id"] for n in delivered] == [event["id"]]
    statuses = [p["status"] for p in hook.posts]
    assert statuses == [500, 503, 202]
    assert hook.posts[0]["body"] == hook.posts[2]["body"]  # the same notification each time
    first, second, third = (p["at"] for p in hook.posts)
    assert second - first >= 0.25 and third - second >= 0.55  # 0.3 s, then 0.6 s (FAST's base, doubled)
    entries = log(graph, at_least=3)
    assert [(e["attempt"], e["status"], e["outcome"]) for e in entries] == [
        (1, 500, "rejected"), (2, 503, "rejected"), (3, 202, "delivered")]


def test_it_gives_up_after_the_retries(graph: Graph, hook: NotificationReceiver) -> None:
    subscribe(graph, hook)
    hook.answer("/notify", 500, 500, 500, 500, 500)
    create(graph, attendees=[])
    hook.wait_for(3)
    assert len(hook.quiet(1.5)) == 3  # 1 try + 2 retries (FAST), then dropped
    assert [e["attempt"] for e in log(graph, at_least=3)] == [1, 2, 3]


def test_an_answer_slower_than_the_timeout_counts_as_none(graph: Graph, hook: NotificationReceiver) -> None:
    subscribe(graph, hook)
    hook.answer("/notify", delay=1.4)  # FAST: 1 s
    create(graph, attendees=[])
    hook.wait_for(2, timeout=6)
    entries = log(graph, at_least=2)
    assert entries[0]["outcome"] == "timeout" and entries[0]["status"] is None and entries[1]["attempt"] == 2


def test_delivery_never_holds_up_the_graph_request(graph: Graph, hook: NotificationReceiver) -> None:
    subscribe(graph, hook)
    hook.answer("/notify", delay=0.9)  # each answer takes 0.9 s (within FAST's 1 s)
    started = time.monotonic()
    event = create(graph, attendees=[])
    for n in range(3):
        ok(graph.patch(f"/users/{ANN['id']}/events/{event['id']}", json={"subject": f"Take {n}"}), 200)
    # Waiting for each delivery would take over 4 s (200 ms of batching plus 0.9 s, four times).
    assert time.monotonic() - started < 2.0
    assert len(hook.wait_for(4)) == 4


def test_immutable_ids_when_the_subscription_asked_for_them(graph: Graph, hook: NotificationReceiver) -> None:
    subscribe(graph, hook, path="/rest")
    subscribe(graph, hook, path="/immutable", headers=IMMUTABLE, changeType="created,deleted")
    event = create(graph, attendees=[], headers=IMMUTABLE)
    rest_id = ok(graph.get(f"/users/{ANN['id']}/events/{event['id']}"), 200)["id"]
    assert rest_id != event["id"]
    [immutable] = hook.wait_for(1, "/immutable")
    [rest] = hook.wait_for(1, "/rest")
    assert immutable["resourceData"]["id"] == event["id"] and rest["resourceData"]["id"] == rest_id
    assert immutable["resource"] == f"Users/{ANN['id']}/Events/{event['id']}"
    # Cancel moves the item to Deleted Items: a new REST id, the same immutable id. Both are told
    # of its leaving the calendar by the id they know.
    assert graph.post(f"/users/{ANN['id']}/events/{event['id']}/cancel", json={}).status_code == 202
    [_, gone] = hook.wait_for(2, "/immutable")
    [_, rest_gone] = hook.wait_for(2, "/rest")
    assert gone["changeType"] == "deleted" and gone["resourceData"]["id"] == event["id"]
    assert rest_gone["changeType"] == "deleted" and rest_gone["resourceData"]["id"] == rest_id


def test_faults_drop_duplicate_and_delay(graph: Graph, hook: NotificationReceiver) -> None:
    subscribe(graph, hook)
    left = ok(control(graph, "POST", "/notifications/faults", json={"drop": 1, "duplicate": 1}), 200)
    assert left == {"drop": 1, "duplicate": 1, "delayed": 0, "delayMs": 0}
    lost = create(graph, attendees=[])
    twice = create(graph, attendees=[])
    items = hook.wait_for(2)
    time.sleep(0.5)
    assert [n["resourceData"]["id"] for n in hook.items()] == [twice["id"], twice["id"]]
    assert items[0]["id"] == items[1]["id"] and len(hook.posts) == 2  # the same notification, in two POSTs
    [dropped] = [e for e in log(graph) if e["outcome"] == "dropped"]
    assert dropped["body"]["value"][0]["resourceData"]["id"] == lost["id"] and dropped["attempt"] == 0
    assert ok(control(graph, "GET", "/notifications/faults"), 200)["drop"] == 0
    # Late: held 1.2 s, then sent on its own, after a later change's notification.
    hook.clear()
    ok(control(graph, "POST", "/notifications/faults", json={"delayMs": 1200}), 200)
    started = time.monotonic()
    late = create(graph, attendees=[])
    prompt = create(graph, attendees=[])
    hook.wait_for(2)
    assert time.monotonic() - started >= 1.2
    assert [n["resourceData"]["id"] for n in hook.items()] == [prompt["id"], late["id"]]
    # Bad fault bodies.
    for bad in ({}, {"drop": -1}, {"drop": "1"}, {"delayMs": 700_000}, {"lose": 1}):
        assert control(graph, "POST", "/notifications/faults", json=bad).status_code == 400
    ok(control(graph, "POST", "/notifications/faults", json={"drop": 5}), 200)
    assert control(graph, "DELETE", "/notifications/faults").status_code == 204
    assert ok(control(graph, "GET", "/notifications/faults"), 200)["drop"] == 0


def test_a_reset_forgets_what_is_pending(graph: Graph, hook: NotificationReceiver, sandbox: SandboxProcess) -> None:
    subscribe(graph, hook)
    ok(control(graph, "POST", "/notifications/faults", json={"delayMs": 800}), 200)
    create(graph, attendees=[])
    sandbox.reset({**graph_seed(), "graph": FAST})
    assert hook.quiet(1.2) == []
    assert ok(control(graph, "GET", "/notifications"), 200)["value"] == []


def test_a_deleted_subscription_sends_nothing_more(graph: Graph, hook: NotificationReceiver) -> None:
    sub = subscribe(graph, hook)
    hook.answer("/notify", 500)
    create(graph, attendees=[])
    hook.wait_for(1)
    assert graph.delete(f"/subscriptions/{sub['id']}").status_code == 204
    create(graph, attendees=[])
    assert len(hook.quiet(1.0)) == 1  # neither the retry nor the new change


def test_revoked_consent_stops_notifications_until_reauthorized(graph: Graph, hook: NotificationReceiver,
                                                               sandbox: SandboxProcess) -> None:
    sub = subscribe(graph, hook)
    revoke = sandbox.session().post(f"{sandbox.base_url}/_sandbox/tenants/{FABRIKAM}/revoke", json={}, timeout=30)
    assert revoke.status_code == 200
    create(graph, attendees=[])  # the app's token still works for Graph until it expires
    assert hook.quiet(0.6) == []
    # No lifecycle notification by itself (Graph documents a reauthorizationRequired; the sandbox is harsher).
    assert hook.items("/lifecycle") == []
    assert graph.post(f"/subscriptions/{sub['id']}/reauthorize").status_code == 403


def test_lifecycle_notifications_go_to_the_lifecycle_url(graph: Graph, hook: NotificationReceiver) -> None:
    sub = subscribe(graph, hook, lifecycleNotificationUrl=hook.url("/lifecycle"))
    for event in ("reauthorizationRequired", "missed"):
        assert ok(control(graph, "POST", f"/subscriptions/{sub['id']}/lifecycle", json={"lifecycleEvent": event}),
                  202) == {"sent": True}
    items = hook.wait_for(2, "/lifecycle")
    assert [n["lifecycleEvent"] for n in items] == ["reauthorizationRequired", "missed"]
    assert items[0] == {"subscriptionId": sub["id"], "subscriptionExpirationDateTime": sub["expirationDateTime"],
                        "tenantId": FABRIKAM, "clientState": sub["clientState"],
                        "lifecycleEvent": "reauthorizationRequired"}
    assert hook.items("/notify") == []
    assert [e["outcome"] for e in log(graph, "lifecycle", at_least=1)] == ["delivered"]  # both in one POST
    ok(control(graph, "POST", f"/subscriptions/{sub['id']}/lifecycle", json={"lifecycleEvent": "subscriptionRemoved"}),
       202)
    [*_, removed] = hook.wait_for(3, "/lifecycle")
    assert removed["lifecycleEvent"] == "subscriptionRemoved"
    assert graph.get(f"/subscriptions/{sub['id']}").status_code == 404
    create(graph, attendees=[])
    assert hook.quiet(0.5, "/notify") == []
    for bad in ({"lifecycleEvent": "expired"}, {}, {"lifecycleEvent": "missed", "x": 1}):
        other = subscribe(graph, hook, BEN)
        assert control(graph, "POST", f"/subscriptions/{other['id']}/lifecycle", json=bad).status_code == 400
        graph.delete(f"/subscriptions/{other['id']}")


def test_without_a_lifecycle_url_no_lifecycle_notification_is_sent(graph: Graph, hook: NotificationReceiver) -> None:
    sub = subscribe(graph, hook)
    answer = ok(control(graph, "POST", f"/subscriptions/{sub['id']}/lifecycle",
                        json={"lifecycleEvent": "reauthorizationRequired"}), 202)
    assert answer == {"sent": False} and hook.quiet(0.5) == []
    assert ok(control(graph, "POST", f"/subscriptions/{sub['id']}/lifecycle",
                      json={"lifecycleEvent": "subscriptionRemoved"}), 202) == {"sent": False}
    assert graph.get(f"/subscriptions/{sub['id']}").status_code == 404


# -- in-process: delegated subscriptions and a revoked user ---------------------------------------

def local_client(local: RunningServer, token: str) -> Graph:
    session = requests.Session()
    session.trust_env = False
    session.verify = str(local.sandbox.pki.ca_bundle_path)
    return Graph(local.base_url, token, session)


def test_a_delegated_subscription_stops_when_the_users_grant_is_revoked(local: RunningServer,
                                                                        hook: NotificationReceiver) -> None:
    local.sandbox.state.reset({**graph_seed(), "graph": FAST})
    local.sandbox.subscriptions.reset()
    ann = local_client(local, delegated_token(local, FABRIKAM, ANN))
    sub = subscribe(ann, hook, resource="me/events", path="/delegated")
    created = ok(ann.post("/me/events", json=meeting(attendees=[])), 201)
    [item] = hook.wait_for(1, "/delegated")
    assert item["resourceData"]["id"] == created["id"] and item["subscriptionId"] == sub["id"]
    revoked = local_client(local, None).session.post(f"{local.base_url}/_sandbox/users/{ANN['mail']}/revoke",
                                                     timeout=30)
    assert revoked.status_code == 200
    ok(ann.post("/me/events", json=meeting(attendees=[])), 201)
    assert len(hook.quiet(0.6, "/delegated")) == 1
    # A new token for the user (as after signing in again) reauthorizes it: notifications resume.
    fresh = local_client(local, delegated_token(local, FABRIKAM, ANN))
    assert fresh.post(f"/subscriptions/{sub['id']}/reauthorize").status_code == 204
    ok(ann.post("/me/events", json=meeting(attendees=[])), 201)
    assert len(hook.wait_for(2, "/delegated")) == 2
