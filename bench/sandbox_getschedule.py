"""getSchedule latency of the sandbox, warm: 20 schedules over 14 days, as the service asks.

Starts the sandbox (``python -m sandbox`` on a free port), seeds a consented tenant with 20 users,
each with a working fortnight of meetings (about 6 a working day, some straddling midnight, some
private, tentative or out of office), gets an app token with MSAL, then times ``POST
/users/{id}/calendar/getSchedule`` for all 20 users over 14 days with a 30-minute interval on one
keep-alive HTTPS connection (after warm-up). Prints the count, p50 and p95 in milliseconds.

Usage: python bench/sandbox_getschedule.py [--iterations 300] [--warmup 30]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import msal  # noqa: E402
import requests  # noqa: E402

from sandbox.testing import start_sandbox  # noqa: E402
from tools.dates import MONDAY, quiet_day, utc_at  # noqa: E402

SEED = json.loads((ROOT / "tests" / "sandbox_seed.json").read_text(encoding="utf-8"))
APP = SEED["apps"][0]
TENANT = "7c1a5e8e-0f4b-4d7e-9a43-3b2f6c1d8e90"
ZONES = ["Europe/Paris", "America/New_York", "Asia/Kolkata", "UTC", "America/Los_Angeles"]
DAYS = 14
START = utc_at(quiet_day(weekday=MONDAY, span_days=DAYS + 7), 0)  # a Monday ahead


def build_seed(rng: random.Random) -> dict[str, Any]:
    users = []
    for n in range(20):
        events = []
        for day in range(DAYS):
            date = START + timedelta(days=day)
            if date.weekday() >= 5:
                continue
            clock = date + timedelta(hours=7 + rng.random())
            for _ in range(rng.randint(4, 8)):
                length = timedelta(minutes=rng.choice([15, 30, 30, 45, 60, 90]))
                events.append({"subject": f"Meeting {len(events)}", "start": clock.isoformat(),
                               "end": (clock + length).isoformat(),
                               "showAs": rng.choice(["busy", "busy", "busy", "tentative", "oof", "free"]),
                               "sensitivity": rng.choice(["normal", "normal", "normal", "private"]),
                               "location": {"displayName": f"Room {rng.randint(1, 9)}"}})
                clock += length + timedelta(minutes=rng.choice([0, 15, 30, 60]))
            if day % 5 == 4:  # a deployment window across midnight
                events.append({"subject": "Night deploy", "start": (date + timedelta(hours=22)).isoformat(),
                               "end": (date + timedelta(hours=26)).isoformat(), "showAs": "busy"})
        users.append({"id": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "mail": f"user{n:02d}@bench.example",
                      "displayName": f"User {n}", "timeZone": ZONES[n % len(ZONES)], "events": events})
    return {"tenants": [{"tenantId": TENANT, "domain": "bench.example", "displayName": "Bench",
                         "consented": {APP["clientId"]: {"application": ["Calendars.ReadWrite"], "delegated": []}},
                         "users": users}]}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    args = parser.parse_args()
    seed = build_seed(random.Random(20261207))
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as state:
        sandbox = start_sandbox(Path(state), ROOT / "tests" / "sandbox_seed.json")
        try:
            sandbox.reset(seed)
            os.environ["REQUESTS_CA_BUNDLE"] = str(sandbox.ca_bundle)  # MSAL's requests trust the sandbox
            app = msal.ConfidentialClientApplication(APP["clientId"], client_credential=APP["clientSecret"],
                                                     authority=f"{sandbox.base_url}/{TENANT}",
                                                     instance_discovery=False)
            token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])["access_token"]
            users = seed["tenants"][0]["users"]
            events = sum(len(u["events"]) for u in users)
            body = {"schedules": [u["mail"] for u in users], "availabilityViewInterval": 30,
                    "startTime": {"dateTime": START.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                    "endTime": {"dateTime": (START + timedelta(days=DAYS)).strftime("%Y-%m-%dT%H:%M:%S"),
                                "timeZone": "UTC"}}
            url = f"{sandbox.base_url}/v1.0/users/{users[0]['id']}/calendar/getSchedule"
            headers = {"Authorization": f"Bearer {token}", "Prefer": 'outlook.timezone="Pacific Standard Time"'}
            session = requests.Session()
            items = 0
            samples = []
            for i in range(args.warmup + args.iterations):
                started = time.perf_counter()
                response = session.post(url, json=body, headers=headers, timeout=30)
                elapsed = (time.perf_counter() - started) * 1000
                response.raise_for_status()
                if i >= args.warmup:
                    samples.append(elapsed)
                else:
                    items = sum(len(s["scheduleItems"]) for s in response.json()["value"])
            size = len(response.content)
        finally:
            sandbox.stop()
    print(f"getSchedule: 20 schedules x {DAYS} days ({events} events seeded, {items} items and "
          f"{len(body['schedules']) * DAYS * 48} availability digits per answer, {size // 1024} KiB)")
    print(f"count {len(samples)}  p50 {statistics.median(samples):.2f} ms  p95 {percentile(samples, 0.95):.2f} ms  "
          f"min {min(samples):.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
