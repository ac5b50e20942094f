"""Availability through the whole local stack: the service's own time per request beside the
sandbox's time for the same getSchedule, and the Graph calls each request makes.

20 participants, 14 days, 10 events a day each; the app served by the local host over HTTP,
Azurite for tables, the sandbox for the identity platform, Graph and Key Vault. Loopback only.
Usage: python bench/availability.py [--requests 40]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TENANT = "b0b0b0b0-0000-4000-8000-00000000be01"
DAYS = 14
PEOPLE = 20
EVENTS_PER_DAY = 10
FIRST_DAY = datetime(2026, 12, 7, tzinfo=UTC)  # a Monday


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


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()

    import requests

    from sandbox.testing import start_sandbox
    from tools.azurite import start_azurite

    work = Path(tempfile.mkdtemp(prefix="bench-availability-"))
    base_seed = json.loads((ROOT / "tests" / "sandbox_seed.json").read_text())
    app = base_seed["apps"][0]
    azurite = start_azurite(work / "azurite")
    sandbox = start_sandbox(work / "sandbox", ROOT / "tests" / "sandbox_seed.json")
    host = None
    try:
        sandbox.reset(seed(app))
        os.environ.update({
            "PUBLIC_BASE_URL": "http://127.0.0.1:7071", "ALLOWED_RETURN_ORIGINS": "http://127.0.0.1:3000",
            "APP_CLIENT_ID": app["clientId"], "KEY_VAULT_URL": sandbox.base_url,
            "IDENTITY_AUTHORITY_HOST": sandbox.base_url, "GRAPH_BASE_URL": sandbox.base_url + "/v1.0",
            "SERVICE_STORAGE": azurite.connection_string, "LOG_LEVEL": "WARNING", **sandbox.managed_identity_env(),
        })
        import function_app
        from devhost import LocalHost
        from shared.clients import repositories
        from shared.storage import Tenant, utcnow

        repositories().store.insert(Tenant(tenantId=TENANT, organizationId="bench", organizationName="Bench",
                                           mode="domain", status="enabled", defaultTimeZone="America/New_York",
                                           consentedAt=utcnow(), createdAt=utcnow(), updatedAt=utcnow()))
        host = LocalHost(function_app.app, port=0).start()
        session = requests.Session()
        session.trust_env = False
        body = {"organizer": "u00@bench.example", "attendees": [f"u{i:02d}@bench.example" for i in range(1, PEOPLE)],
                "start": (FIRST_DAY + timedelta(hours=13)).isoformat(),
                "end": (FIRST_DAY + timedelta(days=DAYS, hours=13)).isoformat(), "durationMinutes": 30,
                "timeZone": "America/New_York", "slotStepMinutes": 15, "maxSlots": 500}
        url = f"{host.base_url}/api/tenants/{TENANT}/availability"
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
        print(f"  request latency      p50 {statistics.median(totals):7.1f} ms  p95 {percentile(totals, .95):7.1f} ms")
        print(f"  sandbox getSchedule  p50 {statistics.median(graph_times):7.1f} ms  "
              f"p95 {percentile(graph_times, .95):7.1f} ms (server side)")
        print(f"  service's own share  p50 {statistics.median(own):7.1f} ms  p95 {percentile(own, .95):7.1f} ms "
              "(latency minus the sandbox's time)")
        print(f"  Graph calls/request  {statistics.mean(calls):.1f} getSchedule; token requests in all: {token_calls}")
    finally:
        if host is not None:
            host.stop()
        sandbox.stop()
        azurite.stop()


if __name__ == "__main__":
    main()
