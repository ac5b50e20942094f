"""Data kept, on Azurite: how fast an erasure and the retention sweep get through a tenant.

- Erasure: a tenant of N bookings (one change each), the person erased named in one booking of
  ten (as attendee, and as organizer in one of those ten); prints booking rows scanned and rows
  rewritten per second, the pages, and how many booking rows the request's own 5 s would cover.
- Retention: N bookings that ended 100 days ago (3 index rows and an !event: row each) and N that
  ended yesterday; prints rows deleted per second and the page jobs it took.

Rows are written straight into storage as the service writes them (Graph plays no part in either).
The erasure key is a fixed one (the service's comes from Key Vault). Loopback only.
Usage: python bench/data_kept.py [--sizes 1000,5000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TENANT = "b0b0b0b0-0000-4000-8000-00000000da7a"
PERSON = "erase.me@bench.example"
OTHERS = [f"p{i}@bench.example" for i in range(20)]
# The settings the service checks at start; nothing here calls them (ids are placeholders).
SETTINGS = {"PUBLIC_BASE_URL": "http://127.0.0.1:7071", "ALLOWED_RETURN_ORIGINS": "http://127.0.0.1:3000",
            "APP_CLIENT_ID": "11111111-2222-3333-4444-555555555555", "KEY_VAULT_URL": "https://127.0.0.1:9/",
            "HOME_TENANT_ID": "22222222-3333-4444-5555-666666666666",
            "API_AUDIENCE": "33333333-4444-5555-6666-777777777777",
            "ALLOWED_CALLER_APP_IDS": "44444444-5555-6666-7777-888888888888"}


def seed(repos, count: int, *, ended_days_ago: float | None, prefix: str, with_person: bool) -> None:
    from booking import listing
    from shared.storage import Booking, EventIndex, utcnow
    from sync.changes import ChangeRecord

    now = utcnow()
    bookings, extra, changes = [], [], []
    for n in range(count):
        start = now - timedelta(days=ended_days_ago, minutes=30) if ended_days_ago is not None \
            else now + timedelta(days=1, minutes=30 * n)
        organizer = PERSON if with_person and n % 100 == 0 else OTHERS[n % len(OTHERS)]
        attendees = [OTHERS[(n + 7) % len(OTHERS)]] + ([PERSON] if with_person and n % 10 == 0 and
                                                       organizer != PERSON else [])
        booking = Booking(tenantId=TENANT, bookingId=f"{prefix}{n:08d}", organizer=organizer,
                          organizerAddress=organizer, attendees=attendees, start=start,
                          end=start + timedelta(minutes=30), timeZone="UTC", subject=f"Bench {n}",
                          status="confirmed", eventId=f"{prefix}ev{n}", organizationId="bench",
                          responses=json.dumps(dict.fromkeys(attendees, "none")), createdAt=now, updatedAt=now)
        bookings.append(booking)
        extra += [*listing.rows_for(booking), EventIndex(tenantId=TENANT, eventId=booking.eventId,
                                                         bookingId=booking.bookingId)]
        if with_person:
            snapshot = {"bookingId": booking.bookingId, "organizer": organizer,
                        "attendees": [{"email": a, "response": "none"} for a in attendees]}
            changes.append(ChangeRecord(tenantId=TENANT, number=n + 1, at=now, organizationId="bench",
                                        body=json.dumps({"id": f"chg_{n}", "type": "booking.created",
                                                         "booking": snapshot}, separators=(",", ":"))))
    for rows in (bookings, extra, changes):
        for chunk in range(0, len(rows), 100):
            repos.store.transact([("upsert", r) for r in rows[chunk:chunk + 100]])


def erasure(repos, size: int) -> dict[str, float]:
    from booking.erasure import Eraser

    seed(repos, size, ended_days_ago=None, prefix=f"e{size}_", with_person=True)
    sent: list[dict] = []
    work = Eraser(repos, lambda: b"bench-key-" + b"0" * 22, sent.append)
    record = work.begin(TENANT, PERSON, set())
    pages, began = 0, time.perf_counter()
    while True:
        pages += 1
        outcome = work.step(record)
        if outcome:
            break
    took = time.perf_counter() - began
    return {"bookings": size, "seconds": took, "pages": pages, "scanned_per_s": size / took,
            "rewritten": record.bookings + record.changes, "bookings_in_5s": 5 * size / took}


def retention(repos, size: int) -> dict[str, float]:
    from background.jobs import Run
    from booking.retention import retention_page
    from shared.storage import utcnow

    seed(repos, size, ended_days_ago=100, prefix=f"r{size}_", with_person=False)
    seed(repos, size, ended_days_ago=1, prefix=f"k{size}_", with_person=False)
    continuation, pages, began = None, 0, time.perf_counter()
    while True:
        pages += 1
        _, continuation = retention_page(Run("retention", "bench", utcnow(), pages, continuation))
        if continuation is None:
            break
    took = time.perf_counter() - began
    rows = size * 5  # the booking, its !event: row, its all / organizer / attendee index rows
    return {"bookings": size, "seconds": took, "pages": pages, "rows_per_s": rows / took}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]

    from tools.azurite import start_azurite

    azurite = start_azurite(Path(tempfile.mkdtemp(prefix="bench-azurite-")))
    try:
        os.environ.update(SETTINGS)
        os.environ.update({"SERVICE_STORAGE": azurite.connection_string,
                           "STORAGE_TABLE_PREFIX": "b" + uuid.uuid4().hex[:10]})
        from shared.clients import repositories

        repos = repositories()
        for size in sizes:
            e = erasure(repos, size)
            print(f"erasure   {size:>6} bookings: {e['seconds']:6.2f} s, {e['pages']} pages, "
                  f"{e['scanned_per_s']:7.0f} booking rows scanned/s, {e['rewritten']:.0f} rows rewritten; "
                  f"the request's 5 s cover about {e['bookings_in_5s']:.0f} bookings")
        for size in sizes:
            r = retention(repos, size)
            print(f"retention {size:>6} due (+{size} kept): {r['seconds']:6.2f} s, {r['pages']} page jobs, "
                  f"{r['rows_per_s']:6.0f} rows deleted/s")
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
