"""The project's Graph path beside a bare POST and parse of the same call, on the same sandbox.

The call is bench/availability.py's getSchedule (20 people x 14 days x 10 events a day, times in
UTC, ~600 KB). Each round sends it three ways, in turn, on warm keep-alive connections:
- project: `shared.graph.GraphClient.post(...).body` (token from MSAL's cache, client-request-id,
  the mailbox gate, logging, retry policy, the parse);
- bare: a plain `requests.Session().post` with the same token and headers, then `json.loads`;
- bare+orjson: the same, parsed with `orjson.loads` (the project's general parse);
- project, typed: the project's path with availability's typed reader
  (`availability.schedule._decode`: views and working hours, each person's items kept raw).
Prints p50 / p95 of each, the project's p50 against the bare one (the target is at most 1.05x),
and one `BENCH {json}` line. Loopback only. Usage: python bench/graph_path.py [--rounds 60]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()

    import orjson
    import requests

    from bench.availability import DAYS, FIRST_DAY, PEOPLE, TENANT, seed
    from bench.stack import APP, line, local_stack

    with local_stack(seed(APP)["tenants"], [(TENANT, "America/New_York")]):
        from datetime import UTC, timedelta

        from shared.clients import graph_client, token_provider
        from shared.settings import get_settings

        graph = graph_client()
        start, end = FIRST_DAY, FIRST_DAY + timedelta(days=DAYS)
        body = {"schedules": [f"u{i:02d}@bench.example" for i in range(PEOPLE)],
                "startTime": {"dateTime": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "endTime": {"dateTime": end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"},
                "availabilityViewInterval": 15}
        path = "/users/u00%40bench.example/calendar/getSchedule"
        url = get_settings().graph_base_url + path
        bare = requests.Session()

        from availability.schedule import _decode

        def project(decode=None) -> object:
            return graph.post(path, tenant_id=TENANT, mailbox="u00@bench.example", json=body, retry=True,
                              prefer=['outlook.timezone="UTC"'], decode=decode).body

        def plain(parse) -> object:
            token = token_provider().app_token(TENANT)["access_token"]
            answer = bare.post(url, json=body, timeout=30, headers={
                "Authorization": f"Bearer {token}", "Prefer": 'outlook.timezone="UTC"'})
            answer.raise_for_status()
            return parse(answer.content)

        ways = {"project": project, "bare": lambda: plain(json.loads), "bare+orjson": lambda: plain(orjson.loads),
                "project, typed": lambda: project(_decode)}
        for way in ways.values():  # warm: token cache, TLS connections, the time-text cache
            for _ in range(3):
                way()
        size = len(bare.post(url, json=body, timeout=30, headers={
            "Authorization": f"Bearer {token_provider().app_token(TENANT)['access_token']}",
            "Prefer": 'outlook.timezone="UTC"'}).content)
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.rounds):
            for name, way in ways.items():
                began = time.perf_counter()
                way()
                times[name].append((time.perf_counter() - began) * 1000)

    print(f"getSchedule, {PEOPLE} people x {DAYS} days ({size // 1024} KiB answer), {args.rounds} rounds, "
          "the four ways in turn")
    for name, values in times.items():
        print(line(name, values))
    ratio = statistics.median(times["project"]) / statistics.median(times["bare"])
    typed_ratio = statistics.median(times["project, typed"]) / statistics.median(times["bare"])
    print(f"  project / bare p50: {ratio:.2f}x (target <= 1.05x); typed / bare: {typed_ratio:.2f}x")
    p50s = {f"{name.replace(', ', '_')}_p50_ms": round(statistics.median(values), 2) for name, values in times.items()}
    print("BENCH " + json.dumps({"bench": "graph_path", **p50s,
                                 "project_over_bare": round(ratio, 3), "typed_over_bare": round(typed_ratio, 3)}))


if __name__ == "__main__":
    main()
