"""Availability through the whole local stack: the service's own time per request beside the
sandbox's time for the same getSchedule, and the Graph calls each request makes.

20 participants, 14 days, 10 events a day each; the app served by the local host over HTTP,
Azurite for tables, the sandbox for the identity platform, Graph and Key Vault. Loopback only.
The service's own share of a request is its latency less the sandbox's own time for the
getSchedule it made (the sandbox's request log); ends with one `BENCH {json}` line.
Usage: python bench/availability.py [--requests 40]
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

TENANT = "b0b0b0b0-0000-4000-8000-00000000be01"
DAYS = 14
PEOPLE = 20
EVENTS_PER_DAY = 10
FIRST_DAY = utc_at(quiet_day(weekday=MONDAY, span_days=DAYS + 7), 0)  # a Monday ahead, New York at UTC-5


def seed(app: dict) -> dict:
    users = []
    for index in range(PEOPLE):
        events = []
        for day in range(DAYS):
            base = FIRST_DAY + timedelta(days=day, hours=13)
            for slot in range(EVENTS_PER_DAY):
                start = base + timedelta(minutes=45 * slot + (index % 3) * 15)
                events.append({"subject": f"e{slot}", "start": start.isoformat(),
                               "end": (start + timedelta(minutes=30)).isoformat(),
                               "showAs": ["busy", "tentative", "oof", "free"][slot % 4]})
        users.append({"id": f"b0b0b0b0-0000-4000-8000-{index:012d}", "mail": f"u{index:02d}@bench.example",
                      "displayName": f"User {index}", "timeZone": ["America/New_York", "Europe/London"][index % 2],
                      "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                                       "startTime": "08:00:00", "endTime": "18:00:00"},
                      "events": events})
    consented = {app["clientId"]: {"application": ["Calendars.ReadWrite"], "delegated": []}}
    return {"tenants": [{"tenantId": TENANT, "domain": "bench.example", "consented": consented, "users": users}]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()

    from bench.stack import APP, line, local_stack

    with local_stack(seed(APP)["tenants"], [(TENANT, "America/New_York")]) as stack:
        session, sandbox = stack.session, stack.sandbox
        body = {"organizer": "u00@bench.example", "attendees": [f"u{i:02d}@bench.example" for i in range(1, PEOPLE)],
                "start": (FIRST_DAY + timedelta(hours=13)).isoformat(),
                "end": (FIRST_DAY + timedelta(days=DAYS, hours=13)).isoformat(), "durationMinutes": 30,
                "timeZone": "America/New_York", "slotStepMinutes": 15, "maxSlots": 500}
        url = stack.url(f"/tenants/{TENANT}/availability")
        for _ in range(3):  # warm: MSAL app, token cache, TLS connections
            session.post(url, json=body, timeout=60).raise_for_status()
        totals, graph_times, calls, token_calls, slots = [], [], [], 0, 0
        for _ in range(args.requests):
            since = sandbox.next_request_index()
            began = time.perf_counter()
            answer = session.post(url, json=body, timeout=60)
            totals.append((time.perf_counter() - began) * 1000)
            answer.raise_for_status()
            slots = len(answer.json()["slots"])
            log = sandbox.requests(since=since)
            schedule = [e for e in log if e["path"].endswith("/calendar/getSchedule")]
            token_calls += sum(1 for e in log if e["path"].endswith("/token"))
            calls.append(len(schedule))
            graph_times.append(sum(e["durationMs"] for e in schedule))
        own = [t - g for t, g in zip(totals, graph_times, strict=True)]
        print(f"availability: {PEOPLE} participants x {DAYS} days, {EVENTS_PER_DAY} events/day each, "
              f"{args.requests} requests, {slots} slots per answer")
        print(line("request latency", totals))
        print(line("sandbox getSchedule", graph_times) + " (server side)")
        print(line("service's own share", own) + " (latency minus the sandbox's time)")
        print(f"  Graph calls/request  {statistics.mean(calls):.1f} getSchedule; token requests in all: {token_calls}")
        own_p50, graph_p50 = statistics.median(own), statistics.median(graph_times)
        print(f"  own share / getSchedule, p50: {own_p50 / graph_p50:.2f}x")
        print("BENCH " + json.dumps({"bench": "availability", "request_p50_ms": round(statistics.median(totals), 1),
                                     "own_share_p50_ms": round(own_p50, 1), "getschedule_p50_ms": round(graph_p50, 1),
                                     "own_share_ratio": round(own_p50 / graph_p50, 2)}))


if __name__ == "__main__":
    main()
