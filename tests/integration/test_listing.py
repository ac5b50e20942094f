"""Listing bookings through the HTTP API: filters, order, cursor pages (a page boundary inside one
start time included), and index rows that follow cancels and moves."""

from __future__ import annotations

import pytest

from tests.integration.test_bookings import DOMAIN, TENANTS
from tests.support.consent_pages import admin_consent
from tests.support.days import at

ADA, GRACE, ALAN = "ada@fabrikam.example", "grace@fabrikam.example", "alan@fabrikam.example"


@pytest.fixture
def tenants(api, sandbox, short_write_window):
    sandbox.reset({"tenants": TENANTS})
    admin_consent(api, sandbox, DOMAIN, ADA)
    return api


def book(api, key, organizer, attendees, day, clock, minutes=30):
    start = at(day, f"{clock}:00-05:00")
    hour, minute = map(int, clock.split(":"))
    total = hour * 60 + minute + minutes
    end = at(day, f"{total // 60:02d}:{total % 60:02d}:00-05:00")
    answer = api.post(f"/tenants/{DOMAIN}/bookings", headers={"Idempotency-Key": key},
                      json={"organizer": organizer, "attendees": attendees, "start": start, "end": end,
                            "subject": key, "timeZone": "America/New_York", "checkAvailability": False})
    assert answer.status_code == 201, answer.text
    return answer.json()


def listed(api, **params):
    answer = api.get(f"/tenants/{DOMAIN}/bookings", params=params)
    assert answer.status_code == 200, answer.text
    return answer.json()


def all_pages(api, **params):
    seen, cursor, pages = [], None, 0
    while True:
        page = listed(api, **params, **({"cursor": cursor} if cursor else {}))
        pages += 1
        seen += page["bookings"]
        cursor = page["next"]
        if cursor is None:
            return seen, pages


def test_filters_order_and_pages(tenants):
    made = {
        "a1": book(tenants, "a1", ADA, [GRACE], 1, "09:00"),
        "g1": book(tenants, "g1", GRACE, [ALAN], 1, "09:00"),  # the same start: ordered by id
        "l1": book(tenants, "l1", ALAN, [ADA], 1, "09:00"),
        "a2": book(tenants, "a2", ADA, [ALAN], 2, "10:00"),
        "a3": book(tenants, "a3", ADA, [GRACE, ALAN], 3, "11:00"),
        "g2": book(tenants, "g2", GRACE, [ADA], 4, "12:00"),
    }
    assert tenants.delete(f"/tenants/{DOMAIN}/bookings/{made['a2']['bookingId']}").status_code == 200
    ids = {k: b["bookingId"] for k, b in made.items()}
    same_start = sorted([ids["a1"], ids["g1"], ids["l1"]])

    everything, pages = all_pages(tenants, limit=2)
    assert pages == 3
    assert [b["bookingId"] for b in everything] == [*same_start, ids["a2"], ids["a3"], ids["g2"]]
    assert [b["status"] for b in everything][3] == "cancelled"
    # A page boundary inside one start time (limit 2 splits the three 09:00 bookings).
    first = listed(tenants, limit=2)
    assert [b["bookingId"] for b in first["bookings"]] == same_start[:2]
    second = listed(tenants, limit=2, cursor=first["next"])["bookings"]
    assert second[0]["bookingId"] == same_start[2]

    by_ada, _ = all_pages(tenants, organizer="ADA@fabrikam.example", limit=1)
    assert [b["bookingId"] for b in by_ada] == [ids["a1"], ids["a2"], ids["a3"]]
    with_alan, _ = all_pages(tenants, attendee=ALAN, status="confirmed")
    assert [b["bookingId"] for b in with_alan] == [ids["g1"], ids["a3"]]
    cancelled, _ = all_pages(tenants, status="cancelled")
    assert [b["bookingId"] for b in cancelled] == [ids["a2"]]
    both, _ = all_pages(tenants, organizer=ADA, attendee=GRACE)
    assert [b["bookingId"] for b in both] == [ids["a1"], ids["a3"]]
    # Meetings overlapping [from, to): 09:15 on day 1 is inside the three 09:00-09:30 meetings.
    window, _ = all_pages(tenants, **{"from": at(1, "09:15:00-05:00"), "to": at(3, "11:00:00-05:00")})
    assert [b["bookingId"] for b in window] == [*same_start, ids["a2"]]
    assert listed(tenants, **{"from": at(1, "09:30:00-05:00"), "to": at(1, "23:00:00-05:00")})["bookings"] == []


def test_a_moved_booking_is_listed_at_its_new_time_only(tenants):
    first = book(tenants, "m1", ADA, [GRACE], 1, "09:00")
    second = book(tenants, "m2", ADA, [GRACE], 2, "09:00")
    moved = tenants.patch(f"/tenants/{DOMAIN}/bookings/{first['bookingId']}", headers={"Idempotency-Key": "mv"},
                          json={"start": at(3, "09:00:00-05:00"), "end": at(3, "09:30:00-05:00")})
    assert moved.status_code == 200, moved.text
    order = [b["bookingId"] for b in listed(tenants)["bookings"]]
    assert order == [second["bookingId"], first["bookingId"]]
    day_one = listed(tenants, **{"from": at(1, "00:00:00-05:00"), "to": at(1, "23:00:00-05:00")})
    assert day_one["bookings"] == []


@pytest.mark.parametrize(("query", "target"), [
    ("organizer=not-an-email", "organizer"), ("attendee=x", "attendee"), ("from=2020-01-01", "from"),
    ("status=creating", "status"), ("limit=0", "limit"), ("limit=201", "limit"), ("cursor=abc", "cursor"),
    ("colour=blue", "colour")])
def test_bad_list_queries_are_400(tenants, query, target):
    answer = tenants.get(f"/tenants/{DOMAIN}/bookings?{query}")
    assert answer.status_code == 400, query
    assert answer.json()["error"]["target"] == target


def test_a_cursor_belongs_to_its_filters_and_to_must_follow_from(tenants):
    for n in range(3):
        book(tenants, f"c{n}", ADA, [GRACE], 1, f"1{n}:00")
    first = listed(tenants, limit=1)
    other = tenants.get(f"/tenants/{DOMAIN}/bookings", params={"limit": 1, "status": "confirmed",
                                                                "cursor": first["next"]})
    assert other.status_code == 400 and other.json()["error"]["target"] == "cursor"
    backwards = tenants.get(f"/tenants/{DOMAIN}/bookings",
                            params={"from": at(2, "00:00:00-05:00"), "to": at(1, "00:00:00-05:00")})
    assert backwards.status_code == 400 and backwards.json()["error"]["target"] == "to"
