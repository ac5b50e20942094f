"""Bookings against the sandbox's Graph: exactly once, no double booking, read back, cancel."""

from __future__ import annotations

import json
import time as clock
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time, timedelta

import pytest

from booking.service import scoped_key
from tests.conftest import SANDBOX_SEED, WRITE_WINDOW_SECONDS
from tests.support.callers import ORGANIZATION
from tests.support.consent_pages import admin_consent, connect_member
from tests.support.days import DAY, at, day

DOMAIN = "c1c2c3c4-0000-4000-8000-0000000000b1"
DELEGATED = "c1c2c3c4-0000-4000-8000-0000000000b2"
POLICY = "c1c2c3c4-0000-4000-8000-0000000000b3"
OTHER = "c1c2c3c4-0000-4000-8000-0000000000b4"
GROUP = "c1c2c3c4-0000-4000-8000-00000000aaaa"
CLIENT_ID = json.loads(SANDBOX_SEED.read_text())["apps"][0]["clientId"]


def person(uid: int, mail: str, zone: str = "America/New_York", events=(), admin=False):
    return {"id": f"c1c2c3c4-0000-4000-8000-{uid:012d}", "mail": mail, "displayName": mail.split("@")[0],
            "timeZone": zone, "isAdmin": admin,
            "events": [{"subject": "existing", "start": s, "end": e, "showAs": "busy"} for s, e in events]}


TENANTS = [
    {"tenantId": DOMAIN, "domain": "fabrikam.example",
     "users": [person(1, "ada@fabrikam.example", admin=True,
                      events=[(at(0, "14:00:00-05:00"), at(0, "15:00:00-05:00"))]),
               person(2, "grace@fabrikam.example", "Europe/London"), person(3, "alan@fabrikam.example")]},
    {"tenantId": DELEGATED, "domain": "wingtip.example",
     "users": [person(11, "ada@wingtip.example", admin=True), person(12, "grace@wingtip.example")]},
    {"tenantId": POLICY, "domain": "fourth.example", "applicationAccessPolicy": {CLIENT_ID: GROUP},
     "groups": [{"id": GROUP, "mail": "10kc@fourth.example", "members": ["in@fourth.example"]}],
     "users": [person(21, "in@fourth.example", admin=True), person(22, "out@fourth.example")]},
    {"tenantId": OTHER, "domain": "other.example", "users": [person(31, "zed@other.example", admin=True)]},
]
BOOKING = {"organizer": "ada@fabrikam.example", "attendees": ["Grace@Fabrikam.example"],
           "start": at(0, "10:00:00-05:00"), "end": at(0, "10:30:00-05:00"),
           "timeZone": "America/New_York", "subject": "Mentoring: Ada / Grace", "body": "Booked through 10KC"}


@pytest.fixture
def tenants(api, sandbox, short_write_window):
    sandbox.reset({"tenants": TENANTS})
    admin_consent(api, sandbox, DOMAIN, "ada@fabrikam.example")
    return api


def book(api, key, tenant=DOMAIN, **changes):
    body = {k: v for k, v in (BOOKING | changes).items() if v is not None}
    headers = {"Idempotency-Key": key} if key is not None else {}
    return api.post(f"/tenants/{tenant}/bookings", json=body, headers=headers)


def events(sandbox, email):
    answer = sandbox.session().get(f"{sandbox.base_url}/_sandbox/users/{email}/events", timeout=10)
    return [e for e in answer.json()["value"] if e["subject"] != "existing"]


def creates(sandbox, since):
    return [e for e in sandbox.requests(since=since) if e["method"] == "POST" and e["path"].endswith("/events")]


def fault(sandbox, **rule):
    sandbox.session().post(f"{sandbox.base_url}/_sandbox/faults", json=rule, timeout=10).raise_for_status()


def test_a_booking_lands_once_in_every_calendar_and_replays(tenants, sandbox):
    since = sandbox.next_request_index()
    answer = book(tenants, "key-1", onlineMeeting=True)
    assert answer.status_code == 201, answer.text
    booking = answer.json()
    assert booking == booking | {"tenantId": DOMAIN, "organizer": "ada@fabrikam.example",
                                 "attendees": [{"email": "grace@fabrikam.example", "response": "none"}],
                                 "start": at(0, "10:00:00-05:00"), "end": at(0, "10:30:00-05:00"),
                                 "timeZone": "America/New_York", "subject": "Mentoring: Ada / Grace",
                                 "status": "confirmed"}
    assert booking["bookingId"].startswith("bk_") and booking["webLink"] and booking["onlineMeetingUrl"]
    organizer, attendee = events(sandbox, "ada@fabrikam.example"), events(sandbox, "grace@fabrikam.example")
    assert len(organizer) == 1 and len(attendee) == 1
    assert organizer[0]["iCalUId"] == attendee[0]["iCalUId"]
    assert organizer[0]["start"]["timeZone"] == "Eastern Standard Time"
    assert len(creates(sandbox, since)) == 1

    since = sandbox.next_request_index()
    replay = book(tenants, "key-1", onlineMeeting=True, attendees=["grace@fabrikam.example"],
                  start=at(0, "15:00:00Z"), checkAvailability=True)  # same booking, written differently
    assert replay.status_code == 200
    assert replay.json() == booking
    assert sandbox.requests(since=since) == []  # answered from storage: no Graph call at all
    other = book(tenants, "key-1", subject="Something else")
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_conflict"


def test_ten_concurrent_requests_with_one_key_make_one_event(tenants, sandbox):
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: book(tenants, "same-key"), range(10)))
    assert sorted(a.status_code for a in answers) == [200] * 9 + [201]
    assert len({a.json()["bookingId"] for a in answers}) == 1
    assert len(events(sandbox, "ada@fabrikam.example")) == 1


def test_dropped_connection_after_graph_created_the_event_gives_one_event(tenants, sandbox):
    fault(sandbox, path="/events$", method="POST", drop=True)
    answer = book(tenants, "drop-1")
    assert answer.status_code == 201, answer.text
    assert len(events(sandbox, "ada@fabrikam.example")) == 1
    assert len(events(sandbox, "grace@fabrikam.example")) == 1
    again = book(tenants, "drop-1")  # the caller's own retry
    assert again.status_code == 200
    assert again.json()["bookingId"] == answer.json()["bookingId"]


def unknown(answer):
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "booking_outcome_unknown"
    wait = int(answer.headers["Retry-After"])
    assert 1 <= wait <= WRITE_WINDOW_SECONDS + 1
    return wait


def test_a_5xx_on_the_create_keeps_the_key_and_creates_once_after_its_deadline(tenants, sandbox):
    """A 503 may have been answered after Graph acted: the outcome is unknown. The key stays
    reserved; no second create is sent while the first may still land; after its deadline, the
    retry looks once more and then creates it once."""
    fault(sandbox, path="/events$", method="POST", status=503, count=1)
    since = sandbox.next_request_index()
    wait = unknown(book(tenants, "retry-1"))
    lookups = [e for e in sandbox.requests(since=since) if e["method"] == "GET" and e["path"].endswith("/events")]
    assert len(lookups) == 1  # looked for the event by its tag before answering
    unknown(book(tenants, "retry-1"))  # too early: still unknown, and nothing sent
    assert [e["status"] for e in creates(sandbox, since)] == [503]
    clock.sleep(wait + 0.5)
    answer = book(tenants, "retry-1")
    assert answer.status_code == 201, answer.text
    assert [e["status"] for e in creates(sandbox, since)] == [503, 201]
    assert len(events(sandbox, "ada@fabrikam.example")) == 1
    assert book(tenants, "retry-1").status_code == 200


def test_graph_failing_throughout_sends_one_create_per_window_and_completes_later(tenants, sandbox):
    fault(sandbox, path="/events$", method="POST", status=503, count=2)
    since = sandbox.next_request_index()
    wait = unknown(book(tenants, "fail-1"))
    assert events(sandbox, "ada@fabrikam.example") == []
    clock.sleep(wait + 0.5)
    wait = unknown(book(tenants, "fail-1"))  # the second create met the fault too
    assert len(creates(sandbox, since)) == 2
    clock.sleep(wait + 0.5)
    assert book(tenants, "fail-1").status_code == 201
    assert len(events(sandbox, "ada@fabrikam.example")) == 1


def test_another_key_for_the_organizer_waits_while_a_create_may_still_land(tenants, sandbox):
    """The first create's outcome is unknown: its lease is fenced until the create's deadline, so
    an overlapping booking with another key cannot pass the re-check before it could land."""
    fault(sandbox, path="/events$", method="POST", status=503, count=1)
    unknown(book(tenants, "first"))
    began = clock.monotonic()
    second = book(tenants, "second", start=at(0, "10:15:00-05:00"), end=at(0, "10:45:00-05:00"))
    assert second.status_code == 201, second.text  # nothing landed: after the fence, it books
    assert clock.monotonic() - began >= 1.0  # it waited for the fence
    assert len(events(sandbox, "ada@fabrikam.example")) == 1


def test_two_overlapping_bookings_with_different_keys_give_one_201_and_one_409(tenants, sandbox):
    bodies = [("overlap-a", {"start": at(0, "11:00:00-05:00"), "end": at(0, "11:30:00-05:00")}),
              ("overlap-b", {"start": at(0, "11:15:00-05:00"), "end": at(0, "11:45:00-05:00"),
                             "attendees": ["alan@fabrikam.example"]})]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda kb: book(tenants, kb[0], **kb[1]), bodies))
    assert sorted(a.status_code for a in answers) == [201, 409]
    refused = next(a for a in answers if a.status_code == 409)
    assert refused.json()["error"]["code"] == "slot_unavailable"
    assert len(events(sandbox, "ada@fabrikam.example")) == 1


def test_a_conflicting_slot_is_409_and_the_key_stays_usable(tenants, sandbox):
    busy = book(tenants, "busy-1", start=at(0, "14:30:00-05:00"), end=at(0, "15:00:00-05:00"))
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "slot_unavailable"
    assert events(sandbox, "ada@fabrikam.example") == []
    forced = book(tenants, "busy-1", start=at(0, "14:30:00-05:00"), end=at(0, "15:00:00-05:00"),
                  checkAvailability=False)  # a failed key is not stored: another body is fine
    assert forced.status_code == 201


def test_read_back_returns_live_times_and_responses_and_no_event_body(tenants, sandbox):
    created = book(tenants, "read-1").json()
    read = tenants.get(f"/tenants/{DOMAIN}/bookings/{created['bookingId']}")
    assert read.status_code == 200
    assert read.json() == created
    text = read.text
    assert "Booked through 10KC" not in text and "body" not in read.json()
    assert "iCalUId" not in text and "location" not in text


def test_only_this_tenants_bookings_and_no_raw_event_ids(tenants, sandbox):
    created = book(tenants, "scope-1").json()
    admin_consent(tenants, sandbox, OTHER, "zed@other.example")  # another tenant of the same organization
    for tenant, booking_id in [(OTHER, created["bookingId"]),
                               (DOMAIN, events(sandbox, "ada@fabrikam.example")[0]["id"]),
                               (DOMAIN, "bk_" + uuid.uuid4().hex)]:
        for method in ("GET", "DELETE"):
            answer = tenants.request(method, f"/tenants/{tenant}/bookings/{booking_id}")
            assert answer.status_code == 404, (tenant, booking_id, answer.text)
            assert answer.json()["error"]["code"] == "booking_not_found"


def test_cancel_is_idempotent_and_a_replay_returns_the_cancelled_booking(tenants, sandbox):
    created = book(tenants, "cancel-1").json()
    path = f"/tenants/{DOMAIN}/bookings/{created['bookingId']}"
    first, second = tenants.delete(path), tenants.delete(path)
    assert first.status_code == second.status_code == 200
    assert first.json()["status"] == second.json()["status"] == "cancelled"
    copy = events(sandbox, "grace@fabrikam.example")[0]
    assert copy["isCancelled"] is True
    assert tenants.get(path).json()["status"] == "cancelled"
    replay = book(tenants, "cancel-1")
    assert replay.status_code == 200
    assert replay.json()["status"] == "cancelled"


def test_an_event_deleted_in_outlook_reads_as_cancelled(tenants, sandbox):
    created = book(tenants, "deleted-1").json()
    from shared.clients import graph_client

    event_id = events(sandbox, "ada@fabrikam.example")[0]["id"]
    graph_client().request("DELETE", f"/users/ada@fabrikam.example/events/{event_id}", tenant_id=DOMAIN,
                           mailbox="ada@fabrikam.example")
    read = tenants.get(f"/tenants/{DOMAIN}/bookings/{created['bookingId']}")
    assert read.status_code == 200
    assert read.json()["status"] == "cancelled"
    assert tenants.delete(f"/tenants/{DOMAIN}/bookings/{created['bookingId']}").status_code == 200


def test_a_disabled_tenant_answers_409(tenants, sandbox):
    created = book(tenants, "disabled-1").json()
    assert tenants.delete(f"/tenants/{DOMAIN}").status_code == 204
    for method, path in [("POST", f"/tenants/{DOMAIN}/bookings"),
                         ("GET", f"/tenants/{DOMAIN}/bookings/{created['bookingId']}"),
                         ("DELETE", f"/tenants/{DOMAIN}/bookings/{created['bookingId']}")]:
        answer = tenants.request(method, path, json=BOOKING, headers={"Idempotency-Key": "disabled-2"})
        assert answer.status_code == 409, (method, answer.text)
        assert answer.json()["error"]["code"] == "tenant_not_enabled"


def test_crash_between_create_and_confirm_is_recovered_by_the_next_request(tenants, sandbox):
    """A request that died after Graph created the event: its record is still in progress and its
    hold has run out; the retry adopts the event found by its tag instead of creating another."""
    from booking.events import TAG_ID
    from shared.clients import graph_client, repositories
    from shared.storage import Booking, IdempotencyRecord

    key, booking_id, now = "crash-1", "bk_" + uuid.uuid4().hex, datetime.now(UTC)
    fingerprint = _fingerprint(BOOKING)
    repositories().store.insert(IdempotencyRecord(tenantId=DOMAIN, key=scoped_key(ORGANIZATION, key),
                                                  requestHash=fingerprint,
                                                  bookingId=booking_id, expiresAt=now + timedelta(days=30),
                                                  lockedUntil=now - timedelta(seconds=1), createdAt=now))
    # The row as the service leaves it once a create was sent: its deadline written first (passed).
    repositories().store.insert(Booking(tenantId=DOMAIN, bookingId=booking_id, organizer="ada@fabrikam.example",
                                        attendees=["grace@fabrikam.example"],
                                        attemptDeadline=now - timedelta(seconds=1),
                                        start=datetime.combine(DAY, time(15), UTC),
                                        end=datetime.combine(DAY, time(15, 30), UTC), timeZone="America/New_York",
                                        subject=BOOKING["subject"], status="creating", createdAt=now,
                                        idempotencyKey=scoped_key(ORGANIZATION, key), organizationId=ORGANIZATION))
    graph_client().post("/users/ada@fabrikam.example/events", tenant_id=DOMAIN, mailbox="ada@fabrikam.example",
                        json={"subject": BOOKING["subject"],
                              "start": {"dateTime": f"{day(0)}T10:00:00", "timeZone": "Eastern Standard Time"},
                              "end": {"dateTime": f"{day(0)}T10:30:00", "timeZone": "Eastern Standard Time"},
                              "attendees": [{"type": "required",
                                             "emailAddress": {"address": "grace@fabrikam.example"}}],
                              "singleValueExtendedProperties": [{"id": TAG_ID, "value": booking_id}]})
    answer = book(tenants, key)
    assert answer.status_code == 201, answer.text
    assert answer.json()["bookingId"] == booking_id
    assert len(events(sandbox, "ada@fabrikam.example")) == 1


def _fingerprint(body):
    from booking.request import parse

    return parse(body, default_time_zone="UTC", now=datetime.now(UTC)).fingerprint()


def test_organizer_outside_the_security_group_is_403(tenants, sandbox):
    admin_consent(tenants, sandbox, POLICY, "in@fourth.example")
    answer = book(tenants, "policy-1", tenant=POLICY, organizer="out@fourth.example", attendees=["in@fourth.example"])
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "outside_security_group"
    ok = book(tenants, "policy-2", tenant=POLICY, organizer="in@fourth.example", attendees=["out@fourth.example"])
    assert ok.status_code == 201, ok.text


def test_delegated_bookings_use_the_organizers_token(tenants, sandbox):
    admin_consent(tenants, sandbox, DELEGATED, "ada@wingtip.example", mode="delegated")
    body = {"organizer": "ada@wingtip.example", "attendees": ["grace@wingtip.example"]}
    refused = book(tenants, "dlg-1", tenant=DELEGATED, **body)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "user_not_connected"
    connect_member(tenants, sandbox, DELEGATED, "ada@wingtip.example")
    since = sandbox.next_request_index()
    answer = book(tenants, "dlg-1", tenant=DELEGATED, **body)
    assert answer.status_code == 201, answer.text
    assert any(e["path"] == "/v1.0/me/events" and e["method"] == "POST" for e in sandbox.requests(since=since))
    assert len(events(sandbox, "grace@wingtip.example")) == 1
    read = tenants.get(f"/tenants/{DELEGATED}/bookings/{answer.json()['bookingId']}")
    assert read.json()["status"] == "confirmed"


def _row_of(key):
    from shared.clients import repositories

    record = repositories().idempotency_record(DOMAIN, scoped_key(ORGANIZATION, key))
    assert record is not None and record.bookingId
    return repositories().booking(DOMAIN, record.bookingId)


def left_uncertain(tenants, sandbox, key, **rule):
    """A booking whose create met `rule` (a sandbox fault) and whose caller never retries: its row
    is `uncertain`. Answers (request index before it, Retry-After, the row)."""
    fault(sandbox, path="/events$", method="POST", count=1, **rule)
    since = sandbox.next_request_index()
    wait = unknown(book(tenants, key))
    row = _row_of(key)
    assert row.status == "uncertain"
    return since, wait, row


def replays_confirmed(tenants, key, booking_id):
    replay = book(tenants, key)
    assert replay.status_code == 200, replay.text
    assert replay.json()["bookingId"] == booking_id and replay.json()["status"] == "confirmed"


def test_the_reconciler_adopts_a_create_that_landed_after_the_caller_gave_up(tenants, sandbox):
    """Graph takes 3 s to make the event (the whole write window: the 2 s timeout plus the 1 s
    margin): the caller gets 503 and never retries. The reconciler, after the deadline, finds the
    event by its tag and confirms the booking; the key then replays it. One event, one create."""
    from booking.background import reconcile_stuck

    since, wait, row = left_uncertain(tenants, sandbox, "late-1", latencyMs=3000)
    # No call before the create has landed: it lands at its deadline, the edge of what the service
    # assumes of Graph (a reconciler run in between would, rightly, create it again).
    clock.sleep(wait + 1)
    assert len(events(sandbox, "ada@fabrikam.example")) == 1  # it landed, after the client gave up
    assert reconcile_stuck() == {"confirmed": 1}
    assert [e["status"] for e in creates(sandbox, since)] == [201]  # the late one only
    assert _row_of("late-1").status == "confirmed"
    replays_confirmed(tenants, "late-1", row.bookingId)
    assert len(events(sandbox, "ada@fabrikam.example")) == 1
    assert len(events(sandbox, "grace@fabrikam.example")) == 1
    assert reconcile_stuck() == {}
    assert len(creates(sandbox, since)) == 1


def test_the_reconciler_creates_once_a_create_that_never_landed(tenants, sandbox):
    """A 503 on the create (nothing made): the row is left `uncertain` and the caller never retries.
    Before the deadline the reconciler leaves it alone; after it, it creates the event once."""
    from booking.background import reconcile_stuck

    since, wait, row = left_uncertain(tenants, sandbox, "never-1", status=503)
    assert reconcile_stuck() == {}  # it may still land: nothing is sent
    assert [e["status"] for e in creates(sandbox, since)] == [503]
    clock.sleep(wait + 0.5)
    assert reconcile_stuck() == {"confirmed": 1}
    assert [e["status"] for e in creates(sandbox, since)] == [503, 201]
    assert len(events(sandbox, "ada@fabrikam.example")) == 1
    assert len(events(sandbox, "grace@fabrikam.example")) == 1
    replays_confirmed(tenants, "never-1", row.bookingId)
    assert reconcile_stuck() == {}
    assert len(creates(sandbox, since)) == 2


def attempts_of(tenant: str) -> set[str]:
    """The booking ids of the tenant's attempt markers."""
    from shared.clients import repositories
    from shared.storage import ATTEMPTS_PARTITION, BookingAttempt

    return {a.bookingId for a in repositories().store.query(BookingAttempt, "PartitionKey eq @p",
                                                             {"p": ATTEMPTS_PARTITION}) if a.tenantId == tenant}


def test_the_reconciler_finds_stuck_bookings_by_their_markers_and_a_daily_scan_the_rest(tenants, sandbox):
    """Every create is marked before its row is written, so the two-minute run reads the markers
    (one partition) rather than filtering every tenant's rows; a marker goes once its booking is
    decided, or is gone and older than a hold. A stuck row without a marker (written before
    markers existed) is left to the daily scan across partitions, which finishes it."""
    from booking.background import reconcile_stuck
    from shared.clients import repositories
    from shared.storage import BookingAttempt, utcnow

    booked = book(tenants, "marked-1", start=at(0, "12:00:00-05:00"), end=at(0, "12:30:00-05:00"))
    assert booked.status_code == 201, booked.text
    assert booked.json()["bookingId"] in attempts_of(DOMAIN)
    since, first_wait, marked = left_uncertain(tenants, sandbox, "marked-2", status=503)
    assert marked.bookingId in attempts_of(DOMAIN)
    fault(sandbox, path="/events$", method="POST", count=1, status=503)
    second_wait = unknown(book(tenants, "unmarked-1", start=at(0, "11:00:00-05:00"), end=at(0, "11:30:00-05:00")))
    unmarked = _row_of("unmarked-1")
    assert unmarked.status == "uncertain"
    store = repositories().store
    store.delete(BookingAttempt(tenantId=DOMAIN, bookingId=unmarked.bookingId), if_unchanged=False)
    # A marker whose create never wrote its row, from over a hold ago; and one being written now.
    store.upsert(BookingAttempt(tenantId=DOMAIN, bookingId="never-written", createdAt=utcnow() - timedelta(hours=1)))
    store.upsert(BookingAttempt(tenantId=DOMAIN, bookingId="being-written", createdAt=utcnow()))

    clock.sleep(max(first_wait, second_wait) + 0.5)
    assert reconcile_stuck() == {"confirmed": 1}
    assert _row_of("marked-2").status == "confirmed" and _row_of("unmarked-1").status == "uncertain"
    remaining = attempts_of(DOMAIN)
    assert {booked.json()["bookingId"], "never-written"}.isdisjoint(remaining)  # decided; gone
    assert "being-written" in remaining
    assert reconcile_stuck() == {}
    assert marked.bookingId not in attempts_of(DOMAIN)  # decided by the run before

    assert reconcile_stuck(scan=True) == {"confirmed": 1}
    assert _row_of("unmarked-1").status == "confirmed"
    assert [e["status"] for e in creates(sandbox, since)] == [503, 503, 201, 201]
    assert len(events(sandbox, "ada@fabrikam.example")) == 3


def test_the_reconciler_timer_is_registered_on_the_app(app_env, caplog):
    import function_app
    from devhost.config import resolve_setting_expressions
    from devhost.host import load_functions
    from devhost.ncrontab import CronSchedule
    from shared.clients import job_queue

    timer = {f.name: f for f in load_functions(function_app.app)}["booking_reconciler"]
    assert timer.trigger_type == "timerTrigger"
    assert timer.trigger["schedule"] == "%BOOKING_RECONCILE_SCHEDULE%"
    assert timer.trigger["runOnStartup"] is False and timer.trigger["useMonitor"] is True
    CronSchedule.parse(resolve_setting_expressions(timer.trigger["schedule"]))  # the setting resolves
    caplog.set_level("INFO")
    timer.user_function(timer=None)
    timer.user_function(timer=None)  # at once again: reconciliation waits RECONCILE_HOURS / 2

    def sweeps():
        return sorted(json.loads(m.content)["sweep"] for m in job_queue().client.peek_messages(max_messages=32))

    assert sweeps() == ["reconcile", "stuck-bookings", "stuck-bookings", "stuck-scan", "subscriptions",
                        "subscriptions", "webhooks", "webhooks"]  # the scan, like reconciliation, once a day
    depths = [r.getMessage() for r in caplog.records if r.getMessage().startswith("queue depth ")]
    assert depths[-2:] == [f"queue depth {job_queue().name}: 8", f"queue depth {job_queue().name}-poison: 0"]


@pytest.mark.parametrize(
    ("key", "change", "target"),
    [
        (None, {}, "Idempotency-Key"),
        ("", {}, "Idempotency-Key"),
        ("k" * 201, {}, "Idempotency-Key"),
        ("clé", {}, "Idempotency-Key"),
        ("k", {"attendees": []}, "attendees"),
        ("k", {"attendees": ["ada@fabrikam.example"]}, "attendees"),
        ("k", {"subject": ""}, "subject"),
        ("k", {"subject": "s" * 256}, "subject"),
        ("k", {"subject": None}, "subject"),
        ("k", {"start": at(0, "10:00:00")}, "start"),
        ("k", {"end": at(0, "09:00:00-05:00")}, "end"),
        # Literal on purpose: a meeting that ended long ago, and stays in the past whatever today is.
        ("k", {"start": "2020-12-01T10:00:00Z", "end": "2020-12-01T10:30:00Z"}, "end"),
        ("k", {"onlineMeeting": "yes"}, "onlineMeeting"),
        ("k", {"checkAvailability": 0}, "checkAvailability"),
        ("k", {"timeZone": "Pacific Standard Time"}, "timeZone"),
        ("k", {"body": 5}, "body"),
        ("k", {"location": "Room 1"}, "location"),
    ],
)
def test_bad_booking_requests_are_400(tenants, key, change, target):
    answer = book(tenants, key, **change)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["target"] == target
