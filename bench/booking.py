"""Bookings through the whole local stack: the service's own time per booking beside the Graph
round trips it made (re-check getSchedule, create event) and the sandbox's time for them.

Each booking is a fresh Idempotency-Key and a fresh slot in the organizer's calendar, with the
re-check on (the default). Requests are counted where `requests` sends them, under the Azure
SDK's transport (a batch transaction is one request), and only those made for the booking's own
request (by its request id; a Graph call is matched in the sandbox's log by its client-request-id):
what the local host's background jobs send meanwhile is printed apart. Ends with one
`BENCH {json}` line. Loopback only. Usage: python bench/booking.py [--bookings 40]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.dates import MONDAY, quiet_day, utc_at

TENANT = "b0b0b0b0-0000-4000-8000-00000000be02"
FIRST = utc_at(quiet_day(weekday=MONDAY, span_days=14), 14)  # a Monday ahead, 09:00 in New York


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bookings", type=int, default=40)
    args = parser.parse_args()

    from bench.stack import consented, line, local_stack

    users = [{"id": f"b0b0b0b0-0000-4000-8000-{i:012d}", "mail": f"u{i}@bench.example", "displayName": f"U{i}",
              "timeZone": "America/New_York"} for i in range(3)]
    with local_stack([consented(TENANT, "bench.example", users)], [(TENANT, "America/New_York")]) as stack:
        table_port = str(urlsplit(os.environ["SERVICE_STORAGE"].split("TableEndpoint=")[1]).port)
        counted = count_requests_to(table_port)
        sent = count_requests_to(str(urlsplit(stack.sandbox.base_url).port))
        totals, graph_times, kinds, storage, calls, meanwhile = [], [], Counter(), [], Counter(), Counter()
        for index in range(args.bookings + 2):
            start = FIRST + timedelta(hours=index)
            body = {"organizer": "u0@bench.example", "attendees": ["u1@bench.example", "u2@bench.example"],
                    "start": start.isoformat(), "end": (start + timedelta(minutes=30)).isoformat(),
                    "subject": f"Bench {index}", "onlineMeeting": index % 2 == 0}
            since = stack.sandbox.next_request_index()
            counted.clear()
            sent.clear()
            request_id = f"bench-booking-{index}"
            began = time.perf_counter()
            answer = stack.session.post(stack.url(f"/tenants/{TENANT}/bookings"), json=body, timeout=60,
                                        headers={"Idempotency-Key": f"bench-{index}", "x-request-id": request_id})
            elapsed = (time.perf_counter() - began) * 1000
            answer.raise_for_status()
            if index < 2:
                continue  # warm-up: MSAL app, token cache, tables, TLS connections
            # The sandbox's log holds everything it was sent meanwhile, the booking's own calls and
            # the background's (subscribing the organizer, reading the events notified back); the
            # booking's are those whose client-request-id its request sent.
            own = {s.client_request_id for s in sent if s.request_id == request_id}
            log = []
            for entry in stack.sandbox.requests(since=since):
                if entry["clientRequestId"] in own:
                    log.append(entry)
                else:
                    meanwhile[f"{entry['method']} {_last_segment(entry['path'])}"] += 1
            mine = [s.call for s in counted if s.request_id == request_id]
            storage.append(len(mine))
            # An entity's keys name the booking or the organizer: one line per kind of request.
            calls.update(re.sub(r"\(PartitionKey=.*\)$", "(…)", call.split("?")[0]) for call in mine)
            totals.append(elapsed)
            graph_times.append(sum(e["durationMs"] for e in log))
            kinds.update(f"{e['method']} {_last_segment(e['path'])}" for e in log)
        own = [t - g for t, g in zip(totals, graph_times, strict=True)]
        print(f"booking: {args.bookings} bookings, 1 organizer + 2 attendees, re-check on")
        print(line("request latency", totals))
        print(line("sandbox time", graph_times) + " (server side, all calls of the request)")
        print(line("service's own share", own) + " (incl. Table Storage on Azurite)")
        per = ", ".join(f"{name} {count / args.bookings:.1f}" for name, count in sorted(kinds.items()))
        print(f"  round trips/booking  {per}")
        print(f"  mean Graph round trips per booking: {sum(kinds.values()) / args.bookings:.1f}; "
              f"p50 latency {statistics.median(totals):.1f} ms")
        background = ", ".join(f"{name} {count}" for name, count in sorted(meanwhile.items())) or "none"
        print(f"  sandbox requests off the bookings' path meanwhile (background, {args.bookings} bookings): "
              f"{background}")
        per_booking = statistics.mean(storage)
        print(f"  Table Storage requests per booking (counted where sent): {per_booking:.1f}")
        for call, count in sorted(calls.items(), key=lambda item: -item[1]):
            print(f"    {count / args.bookings:4.1f}  {call}")
        print("BENCH " + json.dumps({"bench": "booking", "p50_ms": round(statistics.median(totals), 1),
                                     "storage_requests_per_booking": round(per_booking, 1),
                                     "graph_round_trips_per_booking": round(sum(kinds.values()) / args.bookings, 1)}))


def _last_segment(path: str) -> str:
    """The call's kind: the path's last segment, an event id shown as {id}."""
    last = path.rsplit("/", 1)[-1]
    return "events/{id}" if len(last) > 40 else last


class Sent(NamedTuple):
    request_id: str  # of the service request it was made for
    call: str  # "METHOD path"
    client_request_id: str | None  # Graph's client-request-id, the Azure SDK's x-ms-client-request-id


def count_requests_to(port: str) -> list[Sent]:
    """Every HTTP request sent to `port` from now on, by the Azure SDK, MSAL or the service's own
    sessions alike: `requests.Session.send` is wrapped, under every one of them, so a batch
    transaction counts once."""
    import requests

    from shared.logs import current_request_id

    seen: list[Sent] = []
    original = requests.Session.send

    def send(self, request, **kwargs):
        url = urlsplit(request.url)
        if str(url.port) == port:
            seen.append(Sent(current_request_id(), f"{request.method} {url.path}",
                             request.headers.get("client-request-id")
                             or request.headers.get("x-ms-client-request-id")))
        return original(self, request, **kwargs)

    requests.Session.send = send
    return seen


if __name__ == "__main__":
    main()
