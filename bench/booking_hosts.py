"""Bookings per second over one and over two local hosts (separate processes) sharing one Azurite
and one sandbox, as Azure instances share a storage account. Each booking has its own organizer
slot (organizers rotate), so the figure is the service's throughput, not one organizer's lease.

    python bench/booking_hosts.py [--bookings 60] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.dates import MONDAY, quiet_day, utc_at

TENANT = "b0b0b0b0-0000-4000-8000-00000000be05"
FIRST = utc_at(quiet_day(weekday=MONDAY, span_days=28), 14)  # a Monday ahead, 09:00 in New York
ORGANIZERS = 12


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bookings", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    from bench.stack import APP, ORGANIZATION, consented
    from sandbox.testing import start_sandbox
    from shared.settings import StorageConnection
    from shared.storage import Repositories, TableStore, Tenant, utcnow
    from tests.support.callers import caller_env, caller_headers
    from tools.azurite import start_azurite
    from tools.hosts import hosts

    root = Path(__file__).resolve().parent.parent
    work = Path(tempfile.mkdtemp(prefix="bench-hosts-"))
    azurite = start_azurite(work / "azurite")
    sandbox = start_sandbox(work / "sandbox", root / "tests" / "sandbox_seed.json")
    users = [{"id": f"b0b0b0b0-0000-4000-8000-{i:012d}", "mail": f"u{i}@hosts.example", "displayName": f"U{i}",
              "timeZone": "America/New_York"} for i in range(ORGANIZERS + 1)]
    results = {}
    try:
        sandbox.reset({"tenants": [consented(TENANT, "hosts.example", users)]})
        for count in (1, 2):
            prefix = f"bench{count}"
            store = TableStore(StorageConnection(connection_string=azurite.connection_string), prefix=prefix)
            Repositories(store).store.insert(Tenant(
                tenantId=TENANT, organizationId=ORGANIZATION, organizationName="Bench", mode="domain", status="enabled",
                defaultTimeZone="America/New_York", consentedAt=utcnow(), createdAt=utcnow(), updatedAt=utcnow()))
            env = {"PUBLIC_BASE_URL": "self", "ALLOWED_RETURN_ORIGINS": "http://127.0.0.1:3000",
                   "APP_CLIENT_ID": APP["clientId"], "KEY_VAULT_URL": sandbox.base_url,
                   "IDENTITY_AUTHORITY_HOST": sandbox.base_url, "GRAPH_BASE_URL": sandbox.base_url + "/v1.0",
                   "SERVICE_STORAGE": azurite.connection_string, "STORAGE_TABLE_PREFIX": prefix,
                   "LOG_LEVEL": "WARNING", "TOKEN_REFRESH_SCHEDULE": "0 0 */6 * * *",
                   "BOOKING_RECONCILE_SCHEDULE": "0 */2 * * * *", "JOBS_QUEUE_NAME": f"bench-jobs-{count}",
                   **sandbox.managed_identity_env(), **caller_env()}
            with hosts(env, work, count=count) as started:
                for host in started:
                    host.headers = caller_headers(sandbox, ORGANIZATION)
                results[count] = run(started, args, week=count)
    finally:
        sandbox.stop()
        azurite.stop()
    one, two = results[1], results[2]
    print(f"bookings over local hosts ({args.bookings} bookings, {args.concurrency} concurrent, "
          f"{ORGANIZERS} organizers, re-check on; {os.cpu_count()} cores)")
    for count, figures in results.items():
        print(f"  {count} host(s): {figures['per_second']:6.1f} bookings/s, p50 {figures['p50_ms']:6.1f} ms, "
              f"p95 {figures['p95_ms']:6.1f} ms")
    print(f"  two hosts / one host: {two['per_second'] / one['per_second']:.2f}x")
    print("BENCH " + json.dumps({"bench": "booking_hosts", "one_host_per_second": round(one["per_second"], 1),
                                 "two_hosts_per_second": round(two["per_second"], 1),
                                 "ratio": round(two["per_second"] / one["per_second"], 2)}))


def run(started, args, *, week: int) -> dict[str, float]:
    sessions = [host.api() for host in started]

    def book(index: int) -> float:
        organizer = index % ORGANIZERS
        start = FIRST + timedelta(days=7 * week, minutes=30 * index)  # a slot of its own: no conflicts
        body = {"organizer": f"u{organizer}@hosts.example", "attendees": [f"u{ORGANIZERS}@hosts.example"],
                "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat(),
                "subject": f"Bench {index}", "checkAvailability": True}
        began = time.perf_counter()
        answer = sessions[index % len(sessions)].post(f"/tenants/{TENANT}/bookings", json=body,
                                                      headers={"Idempotency-Key": f"h{week}-{index}"})
        if answer.status_code != 201:
            raise RuntimeError(answer.text)
        return (time.perf_counter() - began) * 1000

    for index in range(len(sessions) * 2):  # warm-up: tokens, tables, connections on every host
        book(5_000 + index)
    began = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        latencies = list(pool.map(book, range(args.bookings)))
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {"per_second": args.bookings / elapsed, "p50_ms": statistics.median(latencies),
            "p95_ms": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]}


if __name__ == "__main__":
    main()
