"""Listing bookings as a tenant's history grows: time per page of `GET /bookings` (through the
local host, on Azurite) with 1,000, 5,000 and 10,000 bookings in one tenant. The target: the time
per page stays flat (the 10,000 / 1,000 ratio near 1), since a page reads about a page of index
rows whatever the history.

The bookings are written straight into storage (rows and index rows as the service writes them):
the list makes no Graph call, and booking 10,000 meetings through Graph would only measure Graph.
Loopback only. Usage: python bench/listing.py [--sizes 1000,5000,10000] [--limit 50] [--rounds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.dates import MONDAY, quiet_day, utc_at

TENANT = "b0b0b0b0-0000-4000-8000-00000000be06"
FIRST = utc_at(quiet_day(weekday=MONDAY, span_days=14), 14)
PEOPLE = [f"p{i}@bench.example" for i in range(20)]


def write(repos, start_index: int, count: int) -> None:
    from booking import listing
    from shared.storage import Booking, utcnow

    rows, index_rows = [], []
    for n in range(start_index, start_index + count):
        start = FIRST + timedelta(minutes=30 * n)
        organizer, attendee = PEOPLE[n % len(PEOPLE)], PEOPLE[(n + 7) % len(PEOPLE)]
        booking = Booking(tenantId=TENANT, bookingId=f"bk_{n:08d}", organizer=organizer, organizerAddress=organizer,
                          attendees=[attendee], start=start, end=start + timedelta(minutes=30),
                          timeZone="America/New_York", subject=f"Bench {n}", status="confirmed",
                          eventId=f"ev{n}", organizationId="bench", responses=json.dumps({attendee: "none"}),
                          createdAt=utcnow(), updatedAt=utcnow())
        rows.append(booking)
        index_rows += listing.rows_for(booking)
    for chunk in range(0, len(rows), 100):
        repos.store.transact([("insert", r) for r in rows[chunk:chunk + 100]])
    for chunk in range(0, len(index_rows), 100):
        repos.store.transact([("insert", r) for r in index_rows[chunk:chunk + 100]])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    from bench.stack import local_stack

    with local_stack([], [(TENANT, "America/New_York")]) as stack:
        from shared.clients import repositories

        repos = repositories()
        url = stack.url(f"/tenants/{TENANT}/bookings")
        import os
        from urllib.parse import urlsplit

        from bench.booking import count_requests_to

        table_port = str(urlsplit(os.environ["SERVICE_STORAGE"].split("TableEndpoint=")[1]).port)
        storage_calls = count_requests_to(table_port)
        per_page_calls: dict[int, float] = {}
        point_read: dict[int, float] = {}
        results: dict[int, dict[str, float]] = {}
        written = 0
        for size in sizes:
            write(repos, written, size - written)
            written = size
            middle = (FIRST + timedelta(minutes=30 * (size // 2))).isoformat()
            queries = {"first page": {}, "from the middle": {"from": middle},
                       "by organizer": {"organizer": PEOPLE[3]}, "next page": None}
            timings: dict[str, list[float]] = {name: [] for name in queries}
            # Azurite's own cost of one point read at this size (it grows with the table).
            reads = []
            for n in range(20):
                started = time.perf_counter()
                repos.booking(TENANT, f"bk_{(n * 37) % size:08d}")
                reads.append((time.perf_counter() - started) * 1000)
            point_read[size] = statistics.median(reads)
            before_calls = len(storage_calls)
            for _ in range(args.rounds):
                for name, params in queries.items():
                    if params is None:
                        first = stack.session.get(url, params={"limit": args.limit}).json()
                        params = {"limit": args.limit, "cursor": first["next"]}
                    started = time.perf_counter()
                    answer = stack.session.get(url, params={"limit": args.limit, **params})
                    timings[name].append((time.perf_counter() - started) * 1000)
                    if answer.status_code != 200 or len(answer.json()["bookings"]) != args.limit:
                        raise SystemExit(f"a page went wrong: {answer.text[:300]}")
            results[size] = {name: statistics.median(values) for name, values in timings.items()}
            pages = args.rounds * (len(queries) + 1)  # the next-page query reads a first page too
            per_page_calls[size] = (len(storage_calls) - before_calls - 20) / pages
            print(f"{size:>6} bookings: " + ", ".join(f"{name} p50 {ms:.1f} ms" for name, ms in results[size].items())
                  + f"; storage requests per page {per_page_calls[size]:.1f}; one Azurite point read "
                    f"{point_read[size]:.1f} ms")
        low, high = results[sizes[0]], results[sizes[-1]]
        ratios = {name: round(high[name] / low[name], 2) for name in low}
        print(f"ratio {sizes[-1]} / {sizes[0]} bookings (flat is 1.0): " +
              ", ".join(f"{name} {ratio}" for name, ratio in ratios.items()))
        calls = {name: round(per_page_calls[sizes[-1]] / per_page_calls[sizes[0]], 2) for name in ["all"]}
        print(f"storage requests per page, {sizes[-1]} / {sizes[0]}: {calls['all']} (the service's own work); "
              f"Azurite's point read {sizes[-1]} / {sizes[0]}: {point_read[sizes[-1]] / point_read[sizes[0]]:.2f}")
        print("BENCH " + json.dumps({"list_page_limit": args.limit,
                                     "storage_requests_per_page": {str(k): round(v, 1) for k, v in
                                                                   per_page_calls.items()},
                                     "azurite_point_read_ms": {str(k): round(v, 1) for k, v in point_read.items()},
                                     "list_page_p50_ms": {str(k): {n: round(v, 1) for n, v in r.items()}
                                                          for k, r in results.items()},
                                     "list_page_ratio_largest_to_smallest": ratios}))


if __name__ == "__main__":
    main()
