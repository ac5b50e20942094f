"""Bookings in step with Outlook, end to end: a local host process (its queue poller running the
jobs, as on Azure) on Azurite, the sandbox's Graph subscriptions POSTing real notifications to the
host's notification route, and what people do in Outlook done through the sandbox's control
routes. The feed is read the way the web app reads it."""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.conftest import BASE_ENV
from tests.support.callers import caller_headers
from tests.support.consent_pages import admin_consent
from tests.support.days import at
from tools.hosts import hosts

TENANT = "e5e5e5e5-0000-4000-8000-0000000000d1"
ADA, GRACE, ALAN = "ada@insync.example", "grace@insync.example", "alan@insync.example"


def person(uid: int, mail: str, admin: bool = False) -> dict:
    return {"id": f"e5e5e5e5-0000-4000-8000-{uid:012d}", "mail": mail, "displayName": mail.split("@")[0],
            "timeZone": "America/New_York", "isAdmin": admin, "events": []}


DELEGATED = "e5e5e5e5-0000-4000-8000-0000000000d2"
EVA, MAX = "eva@members.example", "max@members.example"
SEED = {"tenants": [{"tenantId": TENANT, "domain": "insync.example",
                     "users": [person(1, ADA, admin=True), person(2, GRACE), person(3, ALAN)]},
                    {"tenantId": DELEGATED, "domain": "members.example",
                     "users": [person(4, EVA, admin=True), person(5, MAX)]}]}


def control(sandbox, method: str, path: str, **kwargs):
    answer = sandbox.session().request(method, f"{sandbox.base_url}/_sandbox{path}", timeout=15, **kwargs)
    assert answer.status_code < 300, answer.text
    return answer.json() if answer.content else None


def subscriptions(sandbox) -> list[dict]:
    return control(sandbox, "GET", "/subscriptions")["value"]


def events(sandbox, email: str) -> list[dict]:
    return control(sandbox, "GET", f"/users/{email}/events")["value"]


def eventually(check, *, within: float = 20.0, every: float = 0.2):
    """`check()`'s first truthy answer, polling; fails after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within:.0f}s")
        time.sleep(every)


class Feed:
    """The web app reading the changes feed, following `next`."""

    def __init__(self, api) -> None:
        self.api, self.cursor, self.seen = api, None, []

    def read(self) -> list[dict]:
        new = []
        while True:
            params = {"limit": 50} | ({"after": self.cursor} if self.cursor else {})
            answer = self.api.get(f"/tenants/{TENANT}/changes", params=params)
            assert answer.status_code == 200, answer.text
            page = answer.json()
            self.cursor = page["next"]
            new += page["changes"]
            if not page["changes"]:
                break
        self.seen += new
        return new

    def wait(self, count: int = 1, *, within: float = 20.0) -> list[dict]:
        got: list[dict] = []
        deadline = time.monotonic() + within
        while len(got) < count:
            got += self.read()
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(got)} of {count} change(s) within {within:.0f}s: {got}")
            time.sleep(0.2)
        return got


@pytest.fixture
def host(request, azurite, sandbox, sandbox_env, tmp_path):
    """A host process; a test's `@pytest.mark.parametrize("host", [{setting: value}], indirect=True)`
    adds app settings (WEBHOOK_URL "hook": the `hook` fixture's receiver)."""
    sandbox.reset(SEED)
    prefix = "t" + uuid.uuid4().hex[:12]
    extra = dict(getattr(request, "param", {}))
    if extra.get("WEBHOOK_URL") == "hook":
        hook = request.getfixturevalue("hook")
        extra |= {"WEBHOOK_URL": hook.url, "WEBHOOK_SECRET_NAME": hook.secret}
    env = {**BASE_ENV, **sandbox_env, "SERVICE_STORAGE": azurite.connection_string,
           "STORAGE_TABLE_PREFIX": prefix, "JOBS_QUEUE_NAME": "q" + uuid.uuid4().hex[:12],
           "PUBLIC_BASE_URL": "self", "LOG_LEVEL": "INFO",
           "BOOKING_RECONCILE_SCHEDULE": "*/2 * * * * *", **extra}  # the reconciler and subscription sweep, often
    with hosts(env, tmp_path, count=1) as (one,):
        from shared.settings import StorageConnection
        from shared.storage import TableStore

        one.store = TableStore(StorageConnection(connection_string=azurite.connection_string), prefix=prefix)
        register_callback(sandbox, one)
        one.headers = caller_headers(sandbox)
        admin_consent(one.api(), sandbox, TENANT, ADA)
        yield one


@pytest.fixture
def hook(sandbox):
    """The web app's webhook endpoint, and a signing secret of this test's own in the vault."""
    from tests.support.webhook_receiver import WebhookReceiver

    with WebhookReceiver() as receiver:
        receiver.secret, receiver.keys = f"webhook-{uuid.uuid4().hex[:12]}", [f"key-{uuid.uuid4().hex}"]
        vault = sandbox.session()
        answer = vault.put(f"{sandbox.base_url}/secrets/{receiver.secret}?api-version=7.5",
                           headers={"Authorization": f"Bearer {vault_token(sandbox)}"},
                           json={"value": receiver.keys[0]}, timeout=10)
        assert answer.status_code == 200, answer.text
        yield receiver


def vault_token(sandbox) -> str:
    """A managed-identity token for the sandbox's vault, as the host gets one."""
    env = sandbox.managed_identity_env()
    answer = sandbox.session().get(env["IDENTITY_ENDPOINT"], headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]},
                                   params={"resource": "https://vault.azure.net", "api-version": "2019-08-01"},
                                   timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["access_token"]


def register_callback(sandbox, host) -> None:
    """The host hands out its own URLs (PUBLIC_BASE_URL): its consent callback is registered on
    the sandbox's app, as step 4 of the README's deploy registers the real one."""
    from tests.conftest import SANDBOX_SEED

    apps = json.loads(SANDBOX_SEED.read_text())["apps"]
    apps[0]["redirectUris"] = [*apps[0]["redirectUris"], f"{host.base_url}/api/consent/callback"]
    sandbox.reset({"apps": apps, **SEED})


def book(api, key: str, hour: int = 10, organizer: str = ADA, attendees=(GRACE, ALAN), day: int = 2) -> dict:
    body = {"organizer": organizer, "attendees": list(attendees), "start": at(day, f"{hour:02d}:00:00-05:00"),
            "end": at(day, f"{hour:02d}:30:00-05:00"), "timeZone": "America/New_York", "subject": f"Sync {key}"}
    answer = api.post(f"/tenants/{TENANT}/bookings", json=body, headers={"Idempotency-Key": key})
    assert answer.status_code == 201, answer.text
    return answer.json()


def copy_of(sandbox, email: str, subject: str) -> dict:
    return eventually(lambda: next((e for e in events(sandbox, email) if e["subject"] == subject), None))


def settled(log: str) -> bool:
    """The host's log shows the new subscription's read of the mailbox done, and its first
    reconciliation pass over (no tenant then, or the tenant's job done)."""
    return "subscribed; re-read:" in log and "reconcile page 1:" in log and (
        "reconcile page 1: 0 tenant(s)" in log or "reconciled:" in log)


@pytest.fixture
def booked(host, sandbox):
    """A booking, its organizer's mailbox subscribed, and the feed read up to now."""
    api = host.api()
    feed = Feed(api)
    consented = feed.read()
    assert [(c["type"], c["cause"], c["status"]) for c in consented] == [
        ("tenant.status_changed", "consent_completed", "enabled")]
    started = time.monotonic()
    booking = book(api, "first")
    subscription = eventually(lambda: subscriptions(sandbox))[0]
    subscribed_after = time.monotonic() - started
    created = feed.wait(1)
    assert [(c["type"], c["cause"]) for c in created] == [("booking.created", "api")]
    assert created[0]["booking"]["version"] == 1
    # The reads that follow on their own are over: the new subscription's read of the mailbox and
    # the host's first reconciliation pass (so a test's own Outlook actions come after them).
    eventually(lambda: settled(host.log.read_text()))
    return api, feed, booking, subscription, subscribed_after


def test_the_organizers_mailbox_is_subscribed_within_seconds_of_the_first_booking(booked, host, sandbox):
    api, _, _booking, subscription, subscribed_after = booked
    assert subscribed_after < 10
    assert subscription["resource"].lower() == f"users/{ADA}/events"
    assert subscription["notificationUrl"] == f"{host.base_url}/api/graph/notifications"
    assert subscription["lifecycleNotificationUrl"] == subscription["notificationUrl"]
    assert set(subscription["changeType"].split(",")) == {"updated", "deleted"}
    # One subscription per mailbox: a second booking of Ada's adds none; Grace's first adds hers.
    book(api, "second", hour=11)
    book(api, "grace-1", hour=12, organizer=GRACE, attendees=(ALAN,))
    made = eventually(lambda: len(subscriptions(sandbox)) == 2 and subscriptions(sandbox))
    assert sorted(s["resource"].lower() for s in made) == [f"users/{ADA}/events", f"users/{GRACE}/events"]
    time.sleep(2)
    assert len(subscriptions(sandbox)) == 2


def test_an_attendee_answering_records_one_change_however_often_it_is_notified(booked, sandbox):
    _api, feed, booking, _, _ = booked
    subject = booking["subject"]
    grace = copy_of(sandbox, GRACE, subject)
    control(sandbox, "POST", "/notifications/faults", json={"duplicate": 3})  # each sent twice
    for _ in range(3):  # the same answer, three times
        control(sandbox, "POST", f"/users/{GRACE}/events/{grace['id']}/respond", json={"response": "accepted"})
    changes = feed.wait(1)
    time.sleep(3)  # the duplicates arrive and are processed too
    changes += feed.read()
    assert [(c["type"], c["cause"]) for c in changes] == [("booking.updated", "attendee_responded")]
    shown = {a["email"]: a["response"] for a in changes[0]["booking"]["attendees"]}
    assert shown == {GRACE: "accepted", ALAN: "none"}
    assert changes[0]["booking"]["version"] == 2 and changes[0]["booking"]["etag"] == '"2"'
    assert changes[0]["bookingId"] == booking["bookingId"] and changes[0]["organizationId"] == "org-42"


def test_a_decline_records_one_change_showing_declined(booked, sandbox):
    _, feed, booking, _, _ = booked
    alan = copy_of(sandbox, ALAN, booking["subject"])
    control(sandbox, "POST", f"/users/{ALAN}/events/{alan['id']}/respond", json={"response": "declined"})
    changes = feed.wait(1)
    time.sleep(1.5)
    changes += feed.read()
    assert len(changes) == 1
    assert {a["email"]: a["response"] for a in changes[0]["booking"]["attendees"]}[ALAN] == "declined"


def test_the_organizer_moving_it_in_outlook_records_one_move(booked, sandbox):
    api, feed, booking, _, _ = booked
    grace = copy_of(sandbox, GRACE, booking["subject"])
    control(sandbox, "POST", f"/users/{GRACE}/events/{grace['id']}/respond", json={"response": "accepted"})
    feed.wait(1)
    ada = copy_of(sandbox, ADA, booking["subject"])
    new_start, new_end = at(3, "14:00:00-05:00"), at(3, "14:30:00-05:00")
    control(sandbox, "PATCH", f"/users/{ADA}/events/{ada['id']}",
            json={"start": {"dateTime": new_start[:19], "timeZone": "Eastern Standard Time"},
                  "end": {"dateTime": new_end[:19], "timeZone": "Eastern Standard Time"}})
    changes = feed.wait(1)
    time.sleep(1.5)
    changes += feed.read()
    assert [(c["type"], c["cause"]) for c in changes] == [("booking.updated", "moved_in_outlook")]
    moved = changes[0]["booking"]
    assert (moved["start"], moved["end"]) == (new_start, new_end)
    assert {a["response"] for a in moved["attendees"]} == {"none"}  # the move reset the answers
    read = api.get(f"/tenants/{TENANT}/bookings/{booking['bookingId']}").json()
    assert (read["start"], read["end"]) == (new_start, new_end)


def test_deleted_in_outlook_records_a_cancellation(booked, sandbox):
    api, feed, booking, _, _ = booked
    ada = copy_of(sandbox, ADA, booking["subject"])
    control(sandbox, "DELETE", f"/users/{ADA}/events/{ada['id']}")
    changes = feed.wait(1)
    assert [(c["type"], c["cause"]) for c in changes] == [("booking.cancelled", "deleted_in_outlook")]
    assert changes[0]["booking"]["status"] == "cancelled"
    assert api.get(f"/tenants/{TENANT}/bookings/{booking['bookingId']}").json()["status"] == "cancelled"


def test_forged_notifications_change_nothing_and_call_nobody(booked, host, sandbox):
    _, feed, booking, subscription, _ = booked
    route = f"{host.base_url}/api/graph/notifications"
    ada = copy_of(sandbox, ADA, booking["subject"])
    item = {"subscriptionId": subscription["id"], "changeType": "updated", "tenantId": TENANT,
            "resource": f"Users/{ADA}/Events/{ada['id']}", "resourceData": {"id": ada["id"]}}
    since = sandbox.next_request_index()
    for forged in ({**item, "clientState": "wrong"},
                   {**item, "clientState": f"{TENANT}.0123456789abcdef.{'x' * 43}"},
                   {**item, "subscriptionId": str(uuid.uuid4()), "clientState": "x" * 128}):
        answer = requests.post(route, json={"value": [forged]}, timeout=10)
        assert answer.status_code == 202
    time.sleep(2)
    assert feed.read() == []
    assert not [e for e in sandbox.requests(since=since) if "/events" in e["path"]]


def test_the_validation_handshake_echoes_the_decoded_token(host):
    answer = requests.post(f"{host.base_url}/api/graph/notifications?validationToken=Validation%3A%20Testing%20"
                           "client%20application%20reachability%20for%20subscription%20Request-Id%3A%201",
                           timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert answer.text == "Validation: Testing client application reachability for subscription Request-Id: 1"


def test_bad_notification_bodies(host):
    route = f"{host.base_url}/api/graph/notifications"
    assert requests.post(route, data=b"not json", timeout=10).status_code == 400
    assert requests.post(route, json={"value": "x"}, timeout=10).status_code == 400
    big = requests.post(route, data=b"{" + b" " * (1024 * 1024) + b"}", timeout=10)
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    assert requests.get(route, timeout=10).status_code == 405


def test_a_meeting_the_service_did_not_book_is_never_read(booked, host, sandbox):
    _, feed, _, _, _ = booked
    token = sandbox.session().post(f"{sandbox.base_url}/{TENANT}/oauth2/v2.0/token", timeout=10, data={
        "grant_type": "client_credentials", "client_id": SEED_APP_ID(sandbox),
        "client_secret": "test~client-secret-value", "scope": "https://graph.microsoft.com/.default"}).json()
    other = sandbox.session().post(
        f"{sandbox.base_url}/v1.0/users/{ADA}/events", timeout=10,
        headers={"Authorization": f"Bearer {token['access_token']}"},
        json={"subject": "Not ours", "start": {"dateTime": at(4, "09:00:00")[:19], "timeZone": "UTC"},
              "end": {"dateTime": at(4, "09:30:00")[:19], "timeZone": "UTC"}}).json()
    delivered = len(control(sandbox, "GET", "/notifications")["value"])
    since = sandbox.next_request_index()
    control(sandbox, "PATCH", f"/users/{ADA}/events/{other['id']}",
            json={"start": {"dateTime": at(4, "10:00:00")[:19], "timeZone": "UTC"},
                  "end": {"dateTime": at(4, "10:30:00")[:19], "timeZone": "UTC"}})
    eventually(lambda: len(control(sandbox, "GET", "/notifications")["value"]) > delivered)
    eventually(lambda: "not ours: dropped" in host.log.read_text())
    calls = [e for e in sandbox.requests(since=since) if e["path"].startswith("/v1.0/")]
    assert calls == []  # the service asked Graph nothing about it
    assert feed.read() == []


def SEED_APP_ID(sandbox) -> str:
    from tests.conftest import SANDBOX_SEED

    return json.loads(SANDBOX_SEED.read_text())["apps"][0]["clientId"]


def test_two_hosts_writing_changes_at_once_are_read_exactly_once(azurite, sandbox, sandbox_env, tmp_path):
    sandbox.reset(SEED)
    env = {**BASE_ENV, **sandbox_env, "SERVICE_STORAGE": azurite.connection_string,
           "STORAGE_TABLE_PREFIX": "t" + uuid.uuid4().hex[:12], "JOBS_QUEUE_NAME": "q" + uuid.uuid4().hex[:12],
           "LOG_LEVEL": "INFO"}
    with hosts(env, tmp_path, count=2) as (one, two):
        one.headers = two.headers = caller_headers(sandbox)
        admin_consent(one.api(), sandbox, TENANT, ADA)
        reader = Feed(one.api())
        reader.read()  # consent_completed
        # Ada's meetings on one day and Grace's on the next (Alan is in all of them).
        plan = [(host, organizer, hour, day) for hour in range(8, 18)
                for host, organizer, day in ((one, ADA, 2), (two, GRACE, 3))]
        seen_during: list[dict] = []
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(book, host.api(), f"race-{organizer}-{hour}", hour, organizer, (ALAN,), day)
                       for host, organizer, hour, day in plan]
            while not all(f.done() for f in futures):
                seen_during += reader.read()
                time.sleep(0.05)
            booked_ids = {f.result()["bookingId"] for f in futures}
        seen = seen_during + reader.read()
        assert len(booked_ids) == len(plan) == 20
        ids = [c["id"] for c in seen]
        assert len(ids) == len(set(ids))  # never twice
        assert {c["bookingId"] for c in seen if c["type"] == "booking.created"} == booked_ids  # none skipped


def subscription_row(host):
    from sync.subscriptions import Subscription

    rows = list(host.store.query(Subscription, "PartitionKey eq @t", {"t": TENANT}))
    return rows[0] if rows else None


def make_due(host, **changes) -> None:
    """The subscription's row as if its renewal were due now (its expiry near)."""
    from datetime import UTC, datetime, timedelta

    from sync.subscriptions import Subscription

    def due(row: Subscription) -> Subscription:
        now = datetime.now(UTC)
        row.renewDueAt, row.expiresAt = now - timedelta(seconds=1), now + timedelta(hours=1)
        for name, value in changes.items():
            setattr(row, name, value)
        return row

    host.store.modify(Subscription, TENANT, "sub:" + subscription_row(host).mailboxKey, due)


def test_the_sweep_renews_a_subscription_due_and_makes_again_one_graph_lost(booked, host, sandbox):
    _, feed, booking, subscription, _ = booked
    row = subscription_row(host)
    assert row.clientStateHash and len(row.clientStateHash) == 64  # only a hash is kept
    assert row.subscriptionId == subscription["id"]
    before = subscription["expirationDateTime"]
    make_due(host)
    renewed = eventually(lambda: (s := subscriptions(sandbox)) and s[0]["expirationDateTime"] != before and s)
    assert renewed[0]["id"] == subscription["id"]  # renewed in place
    # Graph loses it (expired): the next renewal is 404, and the sweep makes a new one.
    from datetime import UTC, datetime, timedelta

    yesterday = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    control(sandbox, "PATCH", f"/subscriptions/{subscription['id']}", json={"expirationDateTime": yesterday})
    assert subscriptions(sandbox) == []
    make_due(host)
    remade = eventually(lambda: subscriptions(sandbox))
    assert remade[0]["id"] != subscription["id"]
    eventually(lambda: subscription_row(host).subscriptionId == remade[0]["id"])
    # And it works: an answer is followed through the new subscription.
    grace = copy_of(sandbox, GRACE, booking["subject"])
    control(sandbox, "POST", f"/users/{GRACE}/events/{grace['id']}/respond", json={"response": "tentativelyAccepted"})
    assert feed.wait(1)[0]["cause"] == "attendee_responded"


def test_lifecycle_events(booked, host, sandbox):
    _, feed, booking, subscription, _ = booked
    # missed: notifications were lost; the mailbox's upcoming bookings are read again.
    grace = copy_of(sandbox, GRACE, booking["subject"])
    control(sandbox, "POST", "/notifications/faults", json={"drop": 1})
    control(sandbox, "POST", f"/users/{GRACE}/events/{grace['id']}/respond", json={"response": "accepted"})
    time.sleep(2)
    assert feed.read() == []  # the notification was dropped
    sent = control(sandbox, "POST", f"/subscriptions/{subscription['id']}/lifecycle", json={"lifecycleEvent": "missed"})
    assert sent["sent"] is True
    assert [c["cause"] for c in feed.wait(1)] == ["attendee_responded"]
    # subscriptionRemoved: made again.
    control(sandbox, "POST", f"/subscriptions/{subscription['id']}/lifecycle",
            json={"lifecycleEvent": "subscriptionRemoved"})
    remade = eventually(lambda: [s for s in subscriptions(sandbox) if s["id"] != subscription["id"]])
    assert len(subscriptions(sandbox)) == 1 and remade[0]["resource"].lower() == f"users/{ADA}/events"
    # reauthorizationRequired: reauthorized (renewed) in place.
    since = sandbox.next_request_index()
    control(sandbox, "POST", f"/subscriptions/{remade[0]['id']}/lifecycle",
            json={"lifecycleEvent": "reauthorizationRequired"})
    renewals = eventually(lambda: [e for e in sandbox.requests(since=since) if e["method"] == "PATCH"
                                   and e["path"] == f"/v1.0/subscriptions/{remade[0]['id']}"])
    assert renewals[0]["status"] == 200
    assert [s["id"] for s in subscriptions(sandbox)] == [remade[0]["id"]]
    # The subscription made again carries what happens next: a move in Outlook arrives.
    ada = copy_of(sandbox, ADA, booking["subject"])
    control(sandbox, "PATCH", f"/users/{ADA}/events/{ada['id']}",
            json={"start": {"dateTime": at(3, "15:00:00-05:00")[:19], "timeZone": "Eastern Standard Time"},
                  "end": {"dateTime": at(3, "15:30:00-05:00")[:19], "timeZone": "Eastern Standard Time"}})
    moved = feed.wait(1)
    assert [(c["cause"], c["booking"]["start"]) for c in moved] == [("moved_in_outlook", at(3, "15:00:00-05:00"))]
    delivered = control(sandbox, "GET", "/notifications")["value"]
    assert any(e["outcome"] == "delivered" and remade[0]["id"] in json.dumps(e["body"]) for e in delivered)


def test_the_subscription_goes_with_the_last_upcoming_booking_and_with_the_tenant(booked, host, sandbox):
    api, feed, booking, _, _ = booked
    second = book(api, "second", hour=11)
    assert api.delete(f"/tenants/{TENANT}/bookings/{booking['bookingId']}").status_code == 200
    time.sleep(2)
    assert len(subscriptions(sandbox)) == 1  # Ada still has an upcoming booking
    assert api.delete(f"/tenants/{TENANT}/bookings/{second['bookingId']}").status_code == 200
    eventually(lambda: subscriptions(sandbox) == [])
    assert subscription_row(host) is None
    causes = [(c["type"], c["cause"]) for c in feed.read()]
    assert causes == [("booking.created", "api"), ("booking.cancelled", "api"), ("booking.cancelled", "api")]
    # A new booking subscribes again; disconnecting the tenant drops it.
    book(api, "third", hour=12)
    eventually(lambda: subscriptions(sandbox))
    assert api.delete(f"/tenants/{TENANT}").status_code == 204
    eventually(lambda: subscriptions(sandbox) == [])
    assert ("tenant.status_changed", "disconnected") in [(c["type"], c["cause"]) for c in feed.read()]


def test_a_delegated_organizers_mailbox_is_followed_with_the_members_token(host, sandbox):
    from tests.support.consent_pages import connect_member

    api = host.api()
    admin_consent(api, sandbox, DELEGATED, EVA, mode="delegated")
    connect_member(api, sandbox, DELEGATED, EVA)
    body = {"organizer": EVA, "attendees": [MAX], "start": at(2, "10:00:00-05:00"), "end": at(2, "10:30:00-05:00"),
            "timeZone": "America/New_York", "subject": "Delegated sync"}
    booking = api.post(f"/tenants/{DELEGATED}/bookings", json=body, headers={"Idempotency-Key": "dlg"}).json()
    subscription = eventually(lambda: [s for s in subscriptions(sandbox) if s["tenantId"] == DELEGATED])[0]
    assert subscription["resource"].lower() == "me/events"
    assert subscription["delegatedUserId"] == person(4, EVA)["id"]
    copy = copy_of(sandbox, MAX, "Delegated sync")
    control(sandbox, "POST", f"/users/{MAX}/events/{copy['id']}/respond", json={"response": "declined"})

    def declined():
        changes = api.get(f"/tenants/{DELEGATED}/changes").json()["changes"]
        return [c for c in changes if c["type"] == "booking.updated"]

    change = eventually(declined)[0]
    assert change["cause"] == "attendee_responded" and change["bookingId"] == booking["bookingId"]
    assert change["booking"]["attendees"] == [{"email": MAX, "response": "declined"}]


# A pass at most every RECONCILE_HOURS / 2 = 0.9 s; the reconciler timer ticks every 2 s.
@pytest.mark.parametrize("host", [{"RECONCILE_HOURS": "0.0005"}], indirect=True)
def test_a_decline_whose_notification_was_dropped_arrives_by_reconciliation(booked, host, sandbox):
    _, feed, booking, _, _ = booked
    alan = copy_of(sandbox, ALAN, booking["subject"])
    control(sandbox, "POST", "/notifications/faults", json={"drop": 1})
    control(sandbox, "POST", f"/users/{ALAN}/events/{alan['id']}/respond", json={"response": "declined"})
    eventually(lambda: any(e.get("outcome") == "dropped" for e in control(sandbox, "GET", "/notifications")["value"]))
    changes = feed.wait(1)  # no notification, no lifecycle event: the next reconciliation pass
    time.sleep(3)  # later passes read it again and record nothing more
    changes += feed.read()
    assert [(c["type"], c["cause"]) for c in changes] == [("booking.updated", "attendee_responded")]
    assert {a["email"]: a["response"] for a in changes[0]["booking"]["attendees"]}[ALAN] == "declined"
    assert "reconciled: " in host.log.read_text()
    # A subscription lost without a trace (its row and Graph's gone): the next pass makes it again.
    from sync.subscriptions import Subscription

    [row] = list(host.store.query(Subscription, "PartitionKey eq @t", {"t": TENANT}))
    host.store.delete(row, if_unchanged=False)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    control(sandbox, "PATCH", f"/subscriptions/{subscriptions(sandbox)[0]['id']}", json={"expirationDateTime": past})
    assert subscriptions(sandbox) == []
    remade = eventually(lambda: subscriptions(sandbox))
    assert remade[0]["resource"].lower() == f"users/{ADA}/events"


@pytest.mark.parametrize("host", [{"WEBHOOK_URL": "hook"}], indirect=True)
def test_webhooks_reach_the_web_app_signed_even_after_it_was_down(hook, booked, sandbox):
    from tests.support.webhook_receiver import verify

    _, feed, booking, _, _ = booked
    hook.wait(2)  # the consent and the booking, delivered as they happened
    hook.answer_with(503)  # the web app is down for a while
    alan = copy_of(sandbox, ALAN, booking["subject"])
    control(sandbox, "POST", f"/users/{ALAN}/events/{alan['id']}/respond", json={"response": "declined"})
    declined = feed.wait(1)
    eventually(lambda: hook.refused)
    hook.answer_with(204)
    got = hook.wait(3, within=30)  # tried again after a growing wait
    assert [c["id"] for c in got] == [c["id"] for c in feed.seen]  # every change, each once
    assert got[-1] == declined[0]
    for headers, body in hook.received:
        assert verify(headers, body, hook.keys) == [True]
    versions = {c["booking"]["version"] for c in got if "booking" in c}
    assert versions == {1, 2}  # the snapshots of one booking, told apart by version



def test_an_answer_given_before_the_mailbox_was_subscribed_is_read_once_it_is(host, sandbox):
    """Making the first booking's subscription takes a while; what an attendee does meanwhile is
    never notified, so the job that made the subscription reads the mailbox's upcoming bookings."""
    api = host.api()
    feed = Feed(api)
    feed.read()
    # The host's first reconciliation pass is over (the next is hours away), so it finds nothing.
    eventually(lambda: "reconcile page 1:" in host.log.read_text())
    control(sandbox, "POST", "/faults", json={"path": "^/v1.0/subscriptions$", "method": "POST", "count": 1,
                                              "latencyMs": 3000})
    booking = book(api, "early")
    assert [c["cause"] for c in feed.wait(1)] == ["api"]
    grace = copy_of(sandbox, GRACE, booking["subject"])
    assert subscriptions(sandbox) == []  # still being made
    control(sandbox, "POST", f"/users/{GRACE}/events/{grace['id']}/respond", json={"response": "accepted"})
    eventually(lambda: subscriptions(sandbox))
    changes = feed.wait(1)
    assert [(c["cause"], {a["email"]: a["response"] for a in c["booking"]["attendees"]}[GRACE])
            for c in changes] == [("attendee_responded", "accepted")]
