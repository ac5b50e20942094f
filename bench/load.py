"""Load: concurrent availability and booking requests through the local host, for a fixed count.

Prints throughput, latency p50 / p95 / p99 per kind, the service's own share of the time beside
the sandbox's (from the sandbox's request log), the process's peak memory, and the cold import
time of `function_app` beside `azure.functions`, and ends with one `BENCH {json}` line.
Loopback only; bounded by the request count.
Usage: python bench/load.py [--requests 400] [--concurrency 8] [--no-import-time]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools.dates import MONDAY, quiet_day, utc_at  # noqa: E402

TENANT = "b0b0b0b0-0000-4000-8000-00000000be03"
PEOPLE = 12
FIRST = utc_at(quiet_day(weekday=MONDAY, span_days=28), 14)  # a Monday ahead, 09:00 in New York


def people() -> list[dict]:
    users = []
    for index in range(PEOPLE):
        events = []
        for day in range(5):
            for hour in (1, 3, 5):
                start = FIRST + timedelta(days=day, hours=hour + (index % 2))
                events.append({"subject": "busy", "start": start.isoformat(),
                               "end": (start + timedelta(minutes=45)).isoformat(), "showAs": "busy"})
        users.append({"id": f"b0b0b0b0-0000-4000-8000-{index:012d}", "mail": f"p{index}@load.example",
                      "displayName": f"P{index}", "timeZone": "America/New_York", "events": events,
                      "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                                       "startTime": "09:00:00", "endTime": "17:00:00"}})
    return users


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-import-time", action="store_true", help="skip bench/import_time.py")
    args = parser.parse_args()

    from bench.stack import consented, local_stack, percentile

    with local_stack([consented(TENANT, "load.example", people())], [(TENANT, "America/New_York")]) as stack:
        # The service's public URL is where the local host listens, as in a real deployment: Graph's
        # subscription validation (one subscription per organizer's mailbox, sync/) then reaches it,
        # instead of each booking's subscription job failing and being retried five times.
        from shared.settings import get_settings

        os.environ["PUBLIC_BASE_URL"] = stack.host.base_url
        get_settings.cache_clear()
        local = threading.local()

        def session():
            if not hasattr(local, "session"):
                import requests

                local.session = requests.Session()
                local.session.trust_env = False
                local.session.headers.update(stack.caller_headers)
            return local.session

        def availability(index: int):
            organizer = index % PEOPLE
            body = {"organizer": f"p{organizer}@load.example",
                    "attendees": [f"p{(organizer + k) % PEOPLE}@load.example" for k in (1, 2, 3, 4)],
                    "start": FIRST.isoformat(), "end": (FIRST + timedelta(days=5, hours=8)).isoformat(),
                    "durationMinutes": 30, "timeZone": "America/New_York"}
            return session().post(stack.url(f"/tenants/{TENANT}/availability"), json=body, timeout=60)

        def booking(index: int):
            organizer = index % PEOPLE
            start = FIRST + timedelta(days=7 + index // PEOPLE, minutes=30 * (index % 16))
            attendee = f"p{(organizer + 1) % PEOPLE}@load.example"
            body = {"organizer": f"p{organizer}@load.example", "attendees": [attendee],
                    "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat(),
                    "subject": f"Load {index}", "checkAvailability": False}
            return session().post(stack.url(f"/tenants/{TENANT}/bookings"), json=body, timeout=60,
                                  headers={"Idempotency-Key": f"load-{index}"})

        kinds = {"availability": availability, "booking": booking}
        plan = [("booking" if i % 10 < 3 else "availability", i) for i in range(args.requests)]
        for kind, index in plan[:6]:  # warm-up: MSAL, token cache, tables, TLS pools
            kinds[kind](10_000 + index).raise_for_status()

        timings: dict[str, list[float]] = {"availability": [], "booking": []}
        failures = 0

        def run(item):
            nonlocal failures
            kind, index = item
            began = time.perf_counter()
            answer = kinds[kind](index)
            elapsed = (time.perf_counter() - began) * 1000
            if answer.status_code >= 400:
                failures += 1
            timings[kind].append(elapsed)

        since = stack.sandbox.next_request_index()
        began = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(run, plan))
        wall = time.perf_counter() - began
        sandbox_log = stack.sandbox.requests(since=since)

    sandbox_ms = sum(entry["durationMs"] for entry in sandbox_log)
    latency_ms = sum(sum(values) for values in timings.values())
    print(f"load: {args.requests} requests (70% availability of 5 people over 5 days, 30% bookings), "
          f"{args.concurrency} concurrent, {failures} failed")
    print(f"  throughput           {args.requests / wall:7.1f} requests/s over {wall:.1f} s")
    for kind, values in timings.items():
        print(f"  {kind:<20} p50 {statistics.median(values):6.1f} ms  p95 {percentile(values, .95):6.1f} ms  "
              f"p99 {percentile(values, .99):6.1f} ms  (n={len(values)})")
    print(f"  time in the sandbox  {sandbox_ms / args.requests:6.1f} ms per request "
          f"({len(sandbox_log) / args.requests:.1f} calls); the service's own share "
          f"{100 * (1 - sandbox_ms / latency_ms):.0f}% of the summed latency")
    print(f"  peak memory          {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:6.1f} MiB RSS "
          "(bench client, app and local host in one process)")
    if not args.no_import_time:
        figures = subprocess.run([sys.executable, str(ROOT / "bench" / "import_time.py"), "--runs", "15"],
                                 capture_output=True, text=True, check=True, cwd=ROOT).stdout
        print("  " + "\n  ".join(figures.strip().splitlines()))
    print("BENCH " + json.dumps({
        "bench": "load", "requests_per_second": round(args.requests / wall, 1), "failed": failures,
        **{f"{kind}_p50_ms": round(statistics.median(values), 1) for kind, values in timings.items()},
        **{f"{kind}_p99_ms": round(percentile(values, .99), 1) for kind, values in timings.items()}}))


if __name__ == "__main__":
    main()
