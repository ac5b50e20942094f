"""Rescheduling a booking through the HTTP API, against the sandbox's Graph (attendees' copies,
If-Match with the event's etag, 412) on Azurite: exactly once per key, the row moving only when
Graph moved the event, and one `booking.updated` / `rescheduled` change."""

from __future__ import annotations

import pytest

from tests.integration.test_bookings import DOMAIN, TENANTS, book, events, fault
from tests.integration.test_bookings_instants import (
    ADA,
    BOB,
    SECOND_0130,
    booked_events,
    graph_instant,
    instant,
    local,
)
from tests.integration.test_bookings_instants import (
    TENANT as INSTANTS,
)
from tests.integration.test_bookings_instants import (
    TENANTS as INSTANT_TENANTS,
)
from tests.support.consent_pages import admin_consent
from tests.support.days import at


@pytest.fixture
def tenants(api, sandbox, short_write_window):
    sandbox.reset({"tenants": TENANTS})
    admin_consent(api, sandbox, DOMAIN, "ada@fabrikam.example")
    return api


def move(api, booking_id, key, start, end, tenant=DOMAIN, if_match=None, **extra):
    headers = {"Idempotency-Key": key} if key is not None else {}
    if if_match is not None:
        headers["If-Match"] = if_match
    return api.patch(f"/tenants/{tenant}/bookings/{booking_id}", json={"start": start, "end": end, **extra},
                     headers=headers)


def patches(sandbox, since):
    return [e for e in sandbox.requests(since=since) if e["method"] == "PATCH" and "/events/" in e["path"]]


def test_a_reschedule_lands_once_in_every_copy_and_replays_without_a_second_write(tenants, sandbox):
    booking = book(tenants, "bk-1").json()
    new_start, new_end = at(1, "11:00:00-05:00"), at(1, "11:45:00-05:00")
    since = sandbox.next_request_index()
    answer = move(tenants, booking["bookingId"], "mv-1", new_start, new_end)
    assert answer.status_code == 200, answer.text
    moved = answer.json()
    assert (moved["start"], moved["end"]) == (new_start, new_end)
    assert moved["version"] == 2 and moved["etag"] == '"2"'
    assert {a["response"] for a in moved["attendees"]} == {"none"}
    assert len(patches(sandbox, since)) == 1
    for mail in ("ada@fabrikam.example", "grace@fabrikam.example"):
        copies = [e for e in events(sandbox, mail)]
        assert len(copies) == 1, mail
        assert graph_instant(copies[0]["start"]) == instant(new_start)
        assert graph_instant(copies[0]["end"]) == instant(new_end)
    # The same key again: the same answer, no second Graph write.
    again = move(tenants, booking["bookingId"], "mv-1", new_start, new_end)
    assert again.status_code == 200 and again.json()["version"] == 2
    assert len(patches(sandbox, since)) == 1
    # The same key with another body is 422.
    other = move(tenants, booking["bookingId"], "mv-1", at(1, "12:00:00-05:00"), at(1, "12:30:00-05:00"))
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_conflict"
    # One change recorded, after the creation.
    changes = tenants.get(f"/tenants/{DOMAIN}/changes").json()["changes"]
    assert [(c["type"], c["cause"]) for c in changes][-2:] == [("booking.created", "api"),
                                                               ("booking.updated", "rescheduled")]
    read = tenants.get(f"/tenants/{DOMAIN}/bookings/{booking['bookingId']}").json()
    assert (read["start"], read["end"], read["version"]) == (new_start, new_end, 2)


def test_if_match_stale_is_412_and_current_moves(tenants, sandbox):
    booking = book(tenants, "bk-2").json()
    where = events(sandbox, "ada@fabrikam.example")[0]["start"]
    stale = move(tenants, booking["bookingId"], "mv-2", at(1, "11:00:00-05:00"), at(1, "11:30:00-05:00"),
                 if_match='"7"')
    assert stale.status_code == 412 and stale.json()["error"]["code"] == "precondition_failed"
    # Nothing moved and the key is free again.
    assert events(sandbox, "ada@fabrikam.example")[0]["start"] == where
    ok = move(tenants, booking["bookingId"], "mv-2", at(1, "11:00:00-05:00"), at(1, "11:30:00-05:00"),
              if_match=booking["etag"])
    assert ok.status_code == 200, ok.text
    late = move(tenants, booking["bookingId"], "mv-3", at(1, "12:00:00-05:00"), at(1, "12:30:00-05:00"),
                if_match=booking["etag"])  # the etag of version 1, read before the move
    assert late.status_code == 412
    bad = move(tenants, booking["bookingId"], "mv-4", at(1, "12:00:00-05:00"), at(1, "12:30:00-05:00"),
               if_match="W/nonsense")
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "If-Match"


def test_onto_another_bookings_slot_is_409_and_a_move_overlapping_its_own_time_is_not(tenants, sandbox):
    first = book(tenants, "bk-a").json()  # 10:00-10:30
    book(tenants, "bk-b", start=at(0, "11:00:00-05:00"), end=at(0, "11:30:00-05:00"))
    onto = move(tenants, first["bookingId"], "mv-a", at(0, "11:00:00-05:00"), at(0, "11:30:00-05:00"))
    assert onto.status_code == 409 and onto.json()["error"]["code"] == "slot_unavailable"
    shifted = move(tenants, first["bookingId"], "mv-b", at(0, "10:15:00-05:00"), at(0, "10:45:00-05:00"))
    assert shifted.status_code == 200, shifted.text  # only its own current time is in the way
    forced = move(tenants, first["bookingId"], "mv-c", at(0, "11:00:00-05:00"), at(0, "11:30:00-05:00"),
                  checkAvailability=False)
    assert forced.status_code == 200


def test_a_cancelled_booking_is_409_and_bad_requests_are_400(tenants, sandbox):
    booking = book(tenants, "bk-c").json()
    for key, body, target in ((None, {}, "Idempotency-Key"),
                              ("k1", {"subject": "x"}, "subject"),
                              ("k2", {"start": at(1, "11:00:00"), "end": at(1, "11:30:00-05:00")}, "start")):
        answer = tenants.patch(f"/tenants/{DOMAIN}/bookings/{booking['bookingId']}",
                               json=body | ({"start": at(1, "11:00:00-05:00"), "end": at(1, "11:30:00-05:00")}
                                            if target == "subject" else {}),
                               headers={"Idempotency-Key": key} if key else {})
        assert answer.status_code == 400, (key, body)
        assert answer.json()["error"]["target"] == target
    assert move(tenants, "bk_nope", "k3", at(1, "11:00:00-05:00"), at(1, "11:30:00-05:00")).status_code == 404
    assert tenants.delete(f"/tenants/{DOMAIN}/bookings/{booking['bookingId']}").status_code == 200
    answer = move(tenants, booking["bookingId"], "k4", at(1, "11:00:00-05:00"), at(1, "11:30:00-05:00"))
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "booking_cancelled"


def test_graphs_412_is_retried_unless_the_caller_sent_if_match(tenants, sandbox):
    """Grace answers while the service's update is on its way (the update is held up 1.5 s before
    Graph does it): Graph refuses the stale etag with 412; without If-Match the service reads the
    event again and sends once more; with the caller's If-Match the caller hears 412."""
    import threading
    import time

    booking = book(tenants, "bk-d").json()
    grace = events(sandbox, "grace@fabrikam.example")[0]

    def answer_meanwhile(response):
        time.sleep(0.5)
        sandbox.session().post(f"{sandbox.base_url}/_sandbox/users/grace@fabrikam.example/events/{grace['id']}"
                               "/respond", json={"response": response}, timeout=10).raise_for_status()

    fault(sandbox, path="/events/", method="PATCH", count=1, latencyMs=1500)
    since = sandbox.next_request_index()
    racer = threading.Thread(target=answer_meanwhile, args=("accepted",))
    racer.start()
    answer = move(tenants, booking["bookingId"], "mv-d", at(1, "11:00:00-05:00"), at(1, "11:30:00-05:00"))
    racer.join()
    assert answer.status_code == 200, answer.text
    sent = patches(sandbox, since)
    assert [e["status"] for e in sent] == [412, 200]  # refused, read again, sent again
    fault(sandbox, path="/events/", method="PATCH", count=1, latencyMs=1500)
    racer = threading.Thread(target=answer_meanwhile, args=("declined",))
    racer.start()
    refused = move(tenants, booking["bookingId"], "mv-e", at(1, "12:00:00-05:00"), at(1, "12:30:00-05:00"),
                   if_match=answer.json()["etag"])
    racer.join()
    assert refused.status_code == 412 and refused.json()["error"]["code"] == "precondition_failed"
    assert tenants.get(f"/tenants/{DOMAIN}/bookings/{booking['bookingId']}").json()["start"] == \
        at(1, "11:00:00-05:00")


def test_an_unknown_outcome_keeps_the_key_and_the_retry_finishes_once(tenants, sandbox, short_write_window):
    booking = book(tenants, "bk-u").json()
    new_start, new_end = at(1, "13:00:00-05:00"), at(1, "13:30:00-05:00")
    fault(sandbox, path="/events/", method="PATCH", count=1, status=503)
    unknown = move(tenants, booking["bookingId"], "mv-u", new_start, new_end)
    assert unknown.status_code == 503 and unknown.json()["error"]["code"] == "booking_outcome_unknown"
    assert int(unknown.headers["Retry-After"]) >= 1
    # Another change of the booking waits until the first can no longer land, then goes ahead.
    since = sandbox.next_request_index()
    other = move(tenants, booking["bookingId"], "mv-other", at(1, "15:00:00-05:00"), at(1, "15:30:00-05:00"))
    assert other.status_code == 200, other.text
    assert len(patches(sandbox, since)) == 1
    # The caller retries its key: it is still reserved for it, and the move is made once.
    since = sandbox.next_request_index()
    done = move(tenants, booking["bookingId"], "mv-u", new_start, new_end)
    assert done.status_code == 200, done.text
    assert (done.json()["start"], done.json()["end"]) == (new_start, new_end)
    assert len(patches(sandbox, since)) == 1
    assert move(tenants, booking["bookingId"], "mv-u", new_start, new_end).json()["version"] == done.json()["version"]


@pytest.fixture
def instants(api, sandbox, short_write_window):
    sandbox.reset({"tenants": INSTANT_TENANTS})
    admin_consent(api, sandbox, INSTANTS, ADA)
    return api


def test_a_move_across_a_fall_back_change_lands_at_exactly_the_instants_asked(instants, sandbox):
    body = {"organizer": ADA, "attendees": [BOB], "start": local("09:00", "-05:00"), "end": local("09:30", "-05:00"),
            "timeZone": "America/New_York", "subject": "Instants"}
    created = instants.post(f"/tenants/{INSTANTS}/bookings", json=body, headers={"Idempotency-Key": "fb-1"})
    assert created.status_code == 201, created.text
    start, end = local("00:30", "-04:00"), SECOND_0130  # two hours across the change
    answer = move(instants, created.json()["bookingId"], "fb-mv", start, end, tenant=INSTANTS)
    assert answer.status_code == 200, answer.text
    assert (answer.json()["start"], answer.json()["end"]) == (start, end)
    for copy in (booked_events(sandbox, ADA)[0], booked_events(sandbox, BOB)[0]):
        assert graph_instant(copy["start"]) == instant(start)
        assert graph_instant(copy["end"]) == instant(end)
        assert copy["end"]["timeZone"] == "UTC"  # 01:30 that day names two instants: sent in UTC
