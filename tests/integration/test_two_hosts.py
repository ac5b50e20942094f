"""Exactly one meeting whatever the hosts do: two local hosts (separate processes) on one Azurite and
one sandbox, as two Azure instances share a storage account. Races between hosts, creates that
Graph performs only after the client gave up, and a host killed with SIGKILL mid-create."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
import requests

from tests.conftest import BASE_ENV
from tests.support.callers import caller_headers
from tests.support.consent_pages import admin_consent
from tests.support.days import at
from tools.hosts import hosts

TENANT = "d2d2d2d2-0000-4000-8000-0000000000c1"
ADA, GRACE, ALAN = "ada@twohosts.example", "grace@twohosts.example", "alan@twohosts.example"
TIMEOUT, MARGIN = 2, 3  # a create's write window: 5 s


def person(uid: int, mail: str, admin: bool = False) -> dict:
    return {"id": f"d2d2d2d2-0000-4000-8000-{uid:012d}", "mail": mail, "displayName": mail.split("@")[0],
            "timeZone": "America/New_York", "isAdmin": admin, "events": []}


RACE = "d2d2d2d2-0000-4000-8000-0000000000c2"  # nobody owns it: two organizations race to
SEED = {"tenants": [{"tenantId": TENANT, "domain": "twohosts.example",
                     "users": [person(1, ADA, admin=True), person(2, GRACE), person(3, ALAN)]},
                    {"tenantId": RACE, "domain": "race.example",
                     "users": [person(4, "root@race.example", admin=True)]}]}


@pytest.fixture
def pair(azurite, sandbox, sandbox_env, tmp_path):
    sandbox.reset(SEED)
    env = {**BASE_ENV, **sandbox_env, "SERVICE_STORAGE": azurite.connection_string,
           "STORAGE_TABLE_PREFIX": "t" + uuid.uuid4().hex[:12], "JOBS_QUEUE_NAME": "q" + uuid.uuid4().hex[:12],
           "HTTP_TIMEOUT_SECONDS": str(TIMEOUT), "GRAPH_WRITE_MARGIN_SECONDS": str(MARGIN),
           "LOG_LEVEL": "INFO"}
    with hosts(env, tmp_path, count=2) as (one, two):
        one.headers = two.headers = caller_headers(sandbox)  # the 10KC web app's token, org-42
        admin_consent(one.api(), sandbox, TENANT, ADA)
        yield one, two
    sandbox.session().delete(f"{sandbox.base_url}/_sandbox/faults", timeout=10)
    sandbox.session().patch(f"{sandbox.base_url}/_sandbox/graph", json={"transactionIdWindowSeconds": 120},
                            timeout=10)


def body(**changes) -> dict:
    return {"organizer": ADA, "attendees": [GRACE], "start": at(0, "10:00:00-05:00"), "end": at(0, "10:30:00-05:00"),
            "timeZone": "America/New_York", "subject": "Two hosts", **changes}


def book(host, key: str, **changes):
    return host.api().post(f"/tenants/{TENANT}/bookings", json=body(**changes), headers={"Idempotency-Key": key})


def events(sandbox, email: str) -> list[dict]:
    return sandbox.session().get(f"{sandbox.base_url}/_sandbox/users/{email}/events", timeout=10).json()["value"]


def creates(sandbox, since: int) -> list[dict]:
    return [e for e in sandbox.requests(since=since) if e["method"] == "POST" and e["path"].endswith("/events")]


def fault(sandbox, **rule) -> None:
    sandbox.session().post(f"{sandbox.base_url}/_sandbox/faults", json=rule, timeout=10).raise_for_status()


def pending_faults(sandbox) -> list[dict]:
    """Fault rules not yet taken: a rule for one create is taken when that create arrives."""
    return sandbox.session().get(f"{sandbox.base_url}/_sandbox/faults", timeout=10).json()["value"]


def until_booked(host, key: str, *, within: float = 40, **changes):
    """Retry as a caller would (same key, after Retry-After) until the booking is answered."""
    deadline = time.monotonic() + within
    while True:
        answer = book(host, key, **changes)
        if answer.status_code in (200, 201) or time.monotonic() > deadline:
            return answer
        assert answer.status_code in (409, 503), answer.text
        assert answer.json()["error"]["code"] in ("booking_outcome_unknown", "idempotency_in_progress",
                                                  "upstream_throttled"), answer.text
        time.sleep(float(answer.headers.get("Retry-After", "1")))


def test_one_key_over_both_hosts_makes_one_event(pair, sandbox):
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: book(pair[i % 2], "same-key"), range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201], [a.text for a in answers]
    assert len({a.json()["bookingId"] for a in answers}) == 1
    assert len(events(sandbox, ADA)) == 1
    assert len(events(sandbox, GRACE)) == 1


def test_overlapping_bookings_with_different_keys_over_both_hosts_give_one_201(pair, sandbox):
    base = datetime.fromisoformat(at(0, "10:00:00-05:00"))
    minutes = (0, 10, -10, 5, -5, -15)  # every slot holds 10:10-10:15
    slots = [(base + timedelta(minutes=m), base + timedelta(minutes=m + 30)) for m in minutes]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda i: book(pair[i % 2], f"k-{i}", start=slots[i][0].isoformat(),
                                               end=slots[i][1].isoformat()), range(len(slots))))
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5, [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {"slot_unavailable"}
    assert len(events(sandbox, ADA)) == 1


def test_a_create_slower_than_the_lease_still_leaves_one_event_in_the_slot(pair, sandbox):
    """Graph makes the first event 4 s after it was asked, 2 s after the client gave up. The other
    host's overlapping booking (another key) may not pass its re-check before that create's
    deadline: the organizer's lease is fenced until then. It then sees the event: 409."""
    one, two = pair
    fault(sandbox, path="/events$", method="POST", latencyMs=4000, count=1)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(book, one, "slow-a")
        time.sleep(0.5)
        second = pool.submit(book, two, "slow-b", start=at(0, "10:15:00-05:00"), end=at(0, "10:45:00-05:00"))
        first_answer, second_answer = first.result(), second.result()
    assert first_answer.status_code == 503, first_answer.text
    assert first_answer.json()["error"]["code"] == "booking_outcome_unknown"
    assert second_answer.status_code == 409, second_answer.text
    assert second_answer.json()["error"]["code"] == "slot_unavailable"
    assert until_booked(two, "slow-a").status_code == 201  # the late event, adopted by its tag
    assert len(events(sandbox, ADA)) == 1


def test_creates_performed_after_the_clients_timeout_never_make_a_second_event(pair, sandbox):
    """Microsoft documents no window for transactionId: with the sandbox's turned off, and no
    re-check, several rounds of creates that land only after the client gave up still give one
    event per key, and each key completes on a later request, on either host."""
    sandbox.session().patch(f"{sandbox.base_url}/_sandbox/graph", json={"transactionIdWindowSeconds": 0},
                            timeout=10).raise_for_status()
    one, two = pair
    for round_ in range(3):
        key = f"late-{round_}"
        slot = {"start": at(0, f"{11 + round_:02d}:00:00-05:00"), "end": at(0, f"{11 + round_:02d}:30:00-05:00"),
                "checkAvailability": False}
        fault(sandbox, path="/events$", method="POST", latencyMs=3000, count=1)
        since = sandbox.next_request_index()
        first = book(one, key, **slot)
        assert first.status_code == 503, first.text
        assert first.json()["error"]["code"] == "booking_outcome_unknown"
        early = book(two, key, **slot)  # before the first create's deadline: nothing new is sent
        assert early.status_code in (201, 409, 503), early.text  # 201: the late event had landed
        done = until_booked(two, key, **slot)
        assert done.status_code == (200 if early.status_code == 201 else 201), done.text
        assert len(creates(sandbox, since)) == 1  # one create in all: the late one was adopted
    assert len(events(sandbox, ADA)) == 3


def killed_mid_create(host, sandbox, key: str) -> int:
    """Book on `host` and SIGKILL it while Graph works on the create (2.5 s); answers the sandbox's
    request index from before it."""
    fault(sandbox, path="/events$", method="POST", latencyMs=2500, count=1)
    since = sandbox.next_request_index()
    with ThreadPoolExecutor(1) as pool:
        dying = pool.submit(book, host, key)
        deadline = time.monotonic() + 10
        while pending_faults(sandbox) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pending_faults(sandbox), "the create never reached the sandbox"
        assert events(sandbox, ADA) == []  # Graph is still working on it
        host.kill()
        with pytest.raises(requests.ConnectionError):  # the caller's connection dies with the host
            dying.result()
    return since


def test_a_host_killed_mid_create_is_completed_by_the_other_with_one_event(pair, sandbox):
    one, two = pair
    since = killed_mid_create(one, sandbox, "killed")
    answer = until_booked(two, "killed")
    assert answer.status_code == 201, answer.text
    assert len(events(sandbox, ADA)) == 1
    assert len(creates(sandbox, since)) == 1
    assert book(two, "killed").status_code == 200


def test_a_host_killed_mid_create_that_no_one_retries_is_finished_by_the_reconciler(pair, sandbox):
    """The caller never comes back after its host dies with the create in flight. The booking was
    marked before its row was written, so the reconciler (the timer on the other host, whose queue
    poller runs the sweep) finds it once the create can no longer land, adopts the event that did
    land, and it is listed confirmed: one event in all, no scan of the bookings table."""
    one, two = pair
    since = killed_mid_create(one, sandbox, "orphan")
    listed: list[dict] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ran = requests.post(f"{two.base_url}/admin/functions/booking_reconciler", json={"input": ""}, timeout=30)
        assert ran.status_code == 202, ran.text
        time.sleep(1)
        listed = two.api().get(f"/tenants/{TENANT}/bookings").json()["bookings"]
        if listed:
            break
    assert [b["status"] for b in listed] == ["confirmed"], listed
    assert len(events(sandbox, ADA)) == 1 and len(creates(sandbox, since)) == 1


def test_two_organizations_proving_consent_on_two_hosts_make_exactly_one_owner(pair, sandbox):
    """Each organization's admin consent, on its own host and browser, is proven up to its last
    callback; the two last callbacks then race: exactly one owner, the other the 409 page."""
    from urllib.parse import urlsplit

    from tests.support.consent_pages import click_through, microsoft_browser, service_path

    apis, finals = [], []
    for host, organization in zip(pair, ("org-a", "org-b"), strict=True):
        api = host.api()
        api.headers["X-Organization-Id"] = organization
        assert api.put(f"/tenants/{RACE}", json={"mode": "domain"}).status_code == 201
        link = api.post(f"/tenants/{RACE}/consent", json={"kind": "admin", "returnUrl": "http://127.0.0.1:3000/a"})
        to_microsoft = api.get(service_path(link.json()["redirectUrl"]))
        microsoft = microsoft_browser(sandbox)
        to_sign_in = api.get(service_path(click_through(microsoft, to_microsoft.headers["Location"],
                                                        "root@race.example")))
        assert to_sign_in.status_code == 302, to_sign_in.text
        signed_in = microsoft.get(to_sign_in.headers["Location"], allow_redirects=False).headers["Location"]
        assert "code=" in urlsplit(signed_in).query
        apis.append(api)
        finals.append(service_path(signed_in))
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda pair_: pair_[0].get(pair_[1]), zip(apis, finals, strict=True)))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text[:200] for a in answers]
    winner = 0 if answers[0].status_code == 200 else 1
    assert apis[winner].get(f"/tenants/{RACE}").json()["status"] == "enabled"
    assert apis[1 - winner].get(f"/tenants/{RACE}").status_code == 404
    assert apis[1 - winner].put(f"/tenants/{RACE}", json={"mode": "domain"}).status_code == 409


def test_two_hosts_rescheduling_one_booking_with_two_keys_make_one_move(pair, sandbox):
    """Both hosts move one booking to the same new time at once, with two keys: the organizer's
    lease serialises them; the second finds the event already there and writes nothing. Then both
    move it to different times with the etag they read: one moves it, the other is 412."""
    one, two = pair
    booked = book(one, "move-me")
    assert booked.status_code == 201, booked.text
    booking = booked.json()
    path = f"/tenants/{TENANT}/bookings/{booking['bookingId']}"
    target = {"start": at(1, "14:00:00-05:00"), "end": at(1, "14:30:00-05:00")}
    since = sandbox.next_request_index()
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda pair_: pair_[0].api().patch(path, json=target,
                                                                     headers={"Idempotency-Key": pair_[1]}),
                                [(one, "move-a"), (two, "move-b")]))
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    patched = [e for e in sandbox.requests(since=since) if e["method"] == "PATCH" and "/events/" in e["path"]]
    assert len(patched) == 1
    assert {a.json()["version"] for a in answers} == {2}
    changes = one.api().get(f"/tenants/{TENANT}/changes").json()["changes"]
    assert [c["cause"] for c in changes if c["type"] == "booking.updated"] == ["rescheduled"]

    etag = answers[0].json()["etag"]
    moves = [(one, "move-c", at(1, "15:00:00-05:00"), at(1, "15:30:00-05:00")),
             (two, "move-d", at(1, "16:00:00-05:00"), at(1, "16:30:00-05:00"))]
    with ThreadPoolExecutor(2) as pool:
        raced = list(pool.map(lambda m: m[0].api().patch(path, json={"start": m[2], "end": m[3]},
                                                         headers={"Idempotency-Key": m[1], "If-Match": etag}), moves))
    assert sorted(a.status_code for a in raced) == [200, 412], [a.text for a in raced]
