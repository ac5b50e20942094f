"""Signed webhooks (sync/webhooks.py) on Azurite and the sandbox's Key Vault, jobs run as the queue
function runs them (tests/support/jobs.py), the web app's endpoint a loopback server of the test.
The same chain through a host process, with Outlook doing the changing, is in test_sync.py."""

from __future__ import annotations

import itertools
import json
import time
from datetime import timedelta

import pytest

from tests.conftest import clear_caches
from tests.support.consent_pages import admin_consent
from tests.support.days import at
from tests.support.jobs import run_queued
from tests.support.webhook_receiver import receiving, verify

FABRIKAM = "2b9e56f8-499e-4153-949c-a7aeb479f07e"
ANN = "ann@fabrikam.example"


@pytest.fixture
def hook(app_env, monkeypatch):
    with receiving(monkeypatch) as receiver:
        yield receiver


def book(api, key, hour=9):
    body = {"organizer": ANN, "attendees": ["guest@fabrikam.example"], "start": at(1, f"{hour:02d}:00:00-05:00"),
            "end": at(1, f"{hour:02d}:30:00-05:00"), "timeZone": "America/New_York", "subject": f"Hook {key}"}
    answer = api.post(f"/tenants/{FABRIKAM}/bookings", json=body, headers={"Idempotency-Key": key})
    assert answer.status_code == 201, answer.text
    return answer.json()


def feed(api) -> list[dict]:
    return api.get(f"/tenants/{FABRIKAM}/changes").json()["changes"]


def run_hooks() -> list[tuple[str, str]]:
    """The webhook jobs queued so far, run (the organizer's subscription jobs are left out: the
    sandbox cannot reach this test's in-process host to validate a subscription)."""
    return run_queued({"webhook.pump", "webhook.deliver"})


def test_every_change_is_posted_once_with_the_exact_bytes_signed(api, sandbox, hook):
    admin_consent(api, sandbox, FABRIKAM, ANN)
    booking = book(api, "h-1")
    assert api.delete(f"/tenants/{FABRIKAM}/bookings/{booking['bookingId']}").status_code == 200
    run_hooks()
    recorded = feed(api)
    assert [(c["type"], c["cause"]) for c in recorded] == [
        ("tenant.status_changed", "consent_completed"), ("booking.created", "api"), ("booking.cancelled", "api")]
    # What the feed gives, byte for byte the body signed; each once.
    assert sorted(hook.changes(), key=lambda c: c["id"]) == sorted(recorded, key=lambda c: c["id"])
    for headers, body in hook.received:
        assert headers["content-type"] == "application/json"
        assert verify(headers, body, hook.keys) == [True]
        assert verify(headers, body + b" ", hook.keys) == [False]  # the exact bytes
    # Two snapshots of one booking, told apart by version whatever order they arrive in.
    snapshots = sorted((c["booking"]["version"], c["booking"]["status"]) for c in hook.changes() if "booking" in c)
    assert snapshots == [(1, "confirmed"), (2, "cancelled")]
    assert run_hooks() == []  # nothing left to do, nothing sent twice
    assert len(hook.received) == 3


def test_during_a_rotation_both_signatures_are_sent_newest_first(api, sandbox, hook):
    from shared.clients import secret_store

    admin_consent(api, sandbox, FABRIKAM, ANN)
    run_hooks()
    old = hook.keys[0]
    new = f"second-key-{time.time_ns()}"
    time.sleep(1.1)  # Key Vault's `created` is whole seconds: a rotation comes later than that
    secret_store().set(hook.secret, new)
    clear_caches()  # a new instance: the signing keys are read again (cached a minute otherwise)
    book(api, "h-rot")
    run_hooks()
    headers, body = hook.received[-1]
    assert headers["x-10kc-signature"].count("v1=") == 2
    assert verify(headers, body, [new, old]) == [True, True]
    first_v1 = headers["x-10kc-signature"].split(",")[1]
    assert verify({"x-10kc-signature": headers["x-10kc-signature"].split(",")[0] + "," + first_v1}, body,
                  [new, old]) == [True, False]  # the newest first
    # The rotation ends: the old version disabled, one signature again.
    for version in secret_store()._client.list_properties_of_secret_versions(hook.secret):
        if secret_store()._client.get_secret(hook.secret, version.version).value == old:
            secret_store().disable(hook.secret, version.version)
    clear_caches()
    book(api, "h-after", 10)
    run_hooks()
    headers, body = hook.received[-1]
    assert headers["x-10kc-signature"].count("v1=") == 1 and verify(headers, body, [new, old]) == [True, False]


def test_a_receiver_that_is_down_gets_every_change_when_it_is_back(api, sandbox, hook):
    admin_consent(api, sandbox, FABRIKAM, ANN)
    run_hooks()
    hook.answer_with(503)
    made = [book(api, f"down-{n}", 9 + n) for n in range(3)]
    tried = " / ".join(outcome for _, outcome in run_hooks())
    assert "3 retry in 5 s" in tried and "delivered" not in tried, tried  # one batch of three deliveries
    assert len(hook.refused) == 3 and [c["cause"] for c in hook.changes()] == ["consent_completed"]
    hook.answer_with(204)
    time.sleep(5.5)  # the first wait
    delivered = run_hooks()
    assert [o for _, o in delivered] == ["delivered"] * 3
    ids = {c["bookingId"] for c in hook.changes() if c["type"] == "booking.created"}
    assert ids == {b["bookingId"] for b in made}


def test_the_waits_grow_and_after_24_hours_the_poison_queue_keeps_the_change(api, sandbox, hook):
    from shared.clients import job_queue, poison_queue, repositories
    from shared.storage import utcnow
    from sync.webhooks import WAITS, next_wait, webhooks

    assert [next_wait(n) for n in range(1, 12)] == [*WAITS, WAITS[-1], WAITS[-1], WAITS[-1]]
    assert all(a < b for a, b in itertools.pairwise(WAITS))
    assert sum(WAITS) < 24 * 3600  # the last wait repeats until the day is out
    admin_consent(api, sandbox, FABRIKAM, ANN)
    run_hooks()
    hook.answer_with(500)
    change = feed(api)[0]
    message = {"kind": "webhook.deliver", "tenantId": FABRIKAM, "number": 1, "attempt": 9,
               "firstAt": (utcnow() - timedelta(hours=23)).isoformat()}
    assert webhooks().deliver(repositories(), job_queue(), message) == f"retry in {WAITS[-1]} s: answered 500"
    late = {**message, "attempt": 17, "firstAt": (utcnow() - timedelta(hours=24, seconds=1)).isoformat()}
    assert webhooks().deliver(repositories(), job_queue(), late) == "given up after 17 attempt(s): answered 500"
    kept = [json.loads(m.content) for m in poison_queue().client.peek_messages(max_messages=32)]
    assert len(kept) == 1 and kept[0]["changeId"] == change["id"] and kept[0]["number"] == 1
    assert kept[0]["type"] == "tenant.status_changed" and kept[0]["lastProblem"] == "answered 500"
    assert ANN not in json.dumps(kept)  # names the change; the feed keeps its body, erasure reaches it there


def test_a_change_whose_pump_job_was_lost_is_delivered_by_the_sweep(api, sandbox, hook):
    from background.jobs import Run
    from shared.clients import job_queue, repositories
    from shared.storage import utcnow
    from sync.webhooks import Pending, pending_page

    admin_consent(api, sandbox, FABRIKAM, ANN)
    lost = job_queue().client.receive_messages(max_messages=32)
    assert [json.loads(m.content)["kind"] for m in lost] == ["webhook.pump"]
    for message in lost:
        job_queue().client.delete_message(message)  # a host died before queueing it, in effect
    assert hook.received == []
    now = utcnow()
    assert pending_page(Run("webhooks", "r", now, 1)) == ("0 pump(s) queued", None)  # within its grace
    assert repositories().store.get(Pending, "pending", FABRIKAM) is not None
    assert pending_page(Run("webhooks", "r", now + timedelta(minutes=2), 1)) == ("1 pump(s) queued", None)
    run_hooks()
    assert [c["cause"] for c in hook.changes()] == ["consent_completed"]
    assert repositories().store.get(Pending, "pending", FABRIKAM) is None


def test_without_a_webhook_url_nothing_is_queued_or_sent(api, sandbox, app_env):
    admin_consent(api, sandbox, FABRIKAM, ANN)
    book(api, "no-hook")
    assert [kind for kind, _ in run_queued({"webhook.pump", "webhook.deliver"})] == []


def test_pumps_at_once_queue_each_change_once(api, sandbox, hook):
    """Every change's pump runs at the same moment (as several instances take them off the queue):
    the counter's claim lets one queue each change; the others come back later and find nothing."""
    from concurrent.futures import ThreadPoolExecutor

    from shared.clients import job_queue, repositories
    from sync.webhooks import pump

    admin_consent(api, sandbox, FABRIKAM, ANN)
    for n in range(3):
        book(api, f"pump-{n}", 9 + n)
    job_queue().client.clear_messages()  # the four pump jobs the changes queued, run below instead
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(lambda _: pump(repositories(), job_queue(), FABRIKAM), range(4)))
    assert sum(int(o.split()[0]) for o in outcomes) == 4, outcomes  # four changes, each queued once
    time.sleep(2.5)  # a pump that found a claim comes back
    run_hooks()
    assert sorted(c["id"] for c in hook.changes()) == sorted(c["id"] for c in feed(api))
