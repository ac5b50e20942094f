"""Background work at the scale of the contract: 100,000 connected members and 10,000 tenants in
Azurite (rows written straight into storage; nothing here calls the identity platform or Graph).

Prints, measured in one run: the token-refresh timer's own run (it only queues each due sweep's
first page) at 1% of the size and at full size, and their ratio (the target: under 10 s at any
size); the sweeps' pages run to their ends (members, tenants, the tenant counts): rows per
second and queue messages per second; and the cleanup's deletions per second over expired
idempotency records. Loopback only.
Usage: python bench/background_scale.py [--members 100000] [--tenants 10000] [--expired 20000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def tenant_id(index: int) -> str:
    return f"5ca1e000-0000-4000-8000-{index:012d}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--expired", type=int, default=20_000)
    args = parser.parse_args()

    from bench.stack import local_stack

    with local_stack([], []) as _stack:
        import os

        import shared.settings
        from background.jobs import TOKEN_REFRESH_TIMER, background
        from shared.clients import job_queue, repositories
        from shared.storage import TRANSACTION_LIMIT, ConnectedUser, IdempotencyRecord, Tenant, utcnow

        # A queue of the bench's own: the local host's poller (bound at start to the stack's queue)
        # would otherwise run the queued jobs against tenants the sandbox does not have.
        os.environ["JOBS_QUEUE_NAME"] = "bench-scale"
        shared.settings.get_settings.cache_clear()
        job_queue.cache_clear()
        repos, queue = repositories(), job_queue()
        # Pacing off: the bench measures the pages, not Key Vault's write limit.
        import dataclasses

        unpaced = dataclasses.replace(shared.settings.get_settings(), refresh_jobs_per_second=1_000_000)
        shared.settings.get_settings = lambda: unpaced
        now = utcnow()
        per_tenant = max(1, args.members // args.tenants)

        def settled(write, record) -> None:
            """A seed write, tried again when Azurite drops the connection or garbles its answer
            under load (a write that landed before is fine: the retry finds it there)."""
            from http.client import HTTPException

            from azure.core.exceptions import ServiceRequestError, ServiceResponseError

            from shared.errors import AlreadyExists

            for attempt in range(5):
                try:
                    write(record)
                    return
                except AlreadyExists:
                    return
                except (ServiceRequestError, ServiceResponseError, HTTPException, ConnectionError):
                    # Under load Azurite sometimes answers a batch with a broken status line.
                    time.sleep(0.5 * (attempt + 1))
            write(record)

        def seed(first: int, last: int) -> None:
            def one(t: int) -> None:
                tid = tenant_id(t)
                settled(repos.store.insert, Tenant(tenantId=tid, organizationId=f"org-{t}", organizationName="Bench",
                                          mode="delegated" if t % 2 else "domain", status="enabled",
                                          createdAt=now, updatedAt=now))
                members = [ConnectedUser(tenantId=tid, userId=f"u{u}", email=f"u{u}@t{t}.example",
                                         status="connected", secretName="rt-bench",
                                         refreshDueAt=now - timedelta(minutes=1)) for u in range(per_tenant)]
                settled(repos.store.insert_many, members)

            with ThreadPoolExecutor(16) as pool:
                list(pool.map(one, range(first, last)))

        def sweep_pages() -> dict[str, float]:
            """Every token-refresh sweep run to its last page, as the page jobs would (each sweep
            on its own thread, as several instances take the pages of different sweeps); the queue
            messages the pages put are counted, then cleared from the queue (running their jobs
            would call the identity platform)."""
            from background.jobs import SWEEPS, Run, _resolve

            names = [name for name, sweep in SWEEPS.items() if sweep.timer == TOKEN_REFRESH_TIMER
                     and name != "cleanup"]

            def run(name: str) -> tuple[int, int]:
                page, continuation, extra, pages, rows = 1, None, None, 0, 0
                while True:
                    current = Run(name, "bench", utcnow(), page, continuation, extra)
                    outcome, continuation = _resolve(SWEEPS[name].page)(current)
                    extra, pages = current.extra, pages + 1
                    count = outcome.split()[0]
                    rows += int(count) if count.isdigit() else 0
                    if continuation is None:
                        return pages, rows
                    page += 1

            started = time.perf_counter()
            with ThreadPoolExecutor(len(names)) as pool:
                results = list(pool.map(run, names))
            seconds = time.perf_counter() - started
            queued = queue.peek_count()
            queue.client.clear_messages()
            return {"seconds": seconds, "pages": sum(p for p, _ in results), "rows": sum(r for _, r in results),
                    "jobs": queued}

        def tick() -> float:
            began = time.perf_counter()
            background().tick(TOKEN_REFRESH_TIMER)
            return time.perf_counter() - began

        small = max(1, args.tenants // 100)
        began = time.perf_counter()
        seed(0, small)
        print(f"seeded {small} tenants, {small * per_tenant} members in {time.perf_counter() - began:.1f} s")
        small_tick = tick()
        queue.client.clear_messages()
        began = time.perf_counter()
        seed(small, args.tenants)
        print(f"seeded {args.tenants} tenants, {args.tenants * per_tenant} members in "
              f"{time.perf_counter() - began:.1f} s")
        full_tick = tick()
        queue.client.clear_messages()
        work = sweep_pages()
        print(f"timer run: {small_tick * 1000:.0f} ms at {small} tenants, {full_tick * 1000:.0f} ms at "
              f"{args.tenants} ({full_tick / small_tick:.2f}x for {args.tenants / small:.0f}x the rows; "
              "target under 10 s at any size)")
        print(f"the sweeps' pages (a thread per sweep): {work['pages']} pages, {work['rows']} rows, "
              f"{work['jobs']} queue messages in {work['seconds']:.1f} s = "
              f"{work['rows'] / work['seconds']:.0f} rows/s, "
              f"{work['jobs'] / work['seconds']:.0f} messages/s (the jobs visible in the same second share one)")

        expired = now - timedelta(days=31)

        def expire(t: int) -> None:
            tid = tenant_id(t)
            n = args.expired // 100
            rows = [IdempotencyRecord(tenantId=tid, key=f"k{t}-{i}", requestHash="x", expiresAt=expired)
                    for i in range(n)]
            for first in range(0, n, TRANSACTION_LIMIT):
                settled(repos.store.insert_many, rows[first:first + TRANSACTION_LIMIT])

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(expire, range(100)))
        began = time.perf_counter()
        deleted = 0
        while True:  # the cleanup sweep's pages, as its run hands them on
            from background.jobs import Run
            from consent.jobs import cleanup_page

            outcome, more = cleanup_page(Run("cleanup", "bench", utcnow(), 1))
            deleted += int(outcome.split()[0])
            if more is None:
                break
        cleanup = time.perf_counter() - began
        print(f"cleanup: {deleted} expired rows deleted in {cleanup:.1f} s = {deleted / cleanup:.0f} rows/s "
              "(a page of each kind per job)")
        print("BENCH " + json.dumps({
            "timer_run_ms_small": round(small_tick * 1000, 1), "timer_run_ms_full": round(full_tick * 1000, 1),
            "timer_run_ratio": round(full_tick / small_tick, 2), "tenants": args.tenants,
            "members": args.tenants * per_tenant, "page_rows_per_second": round(work["rows"] / work["seconds"]),
            "queue_messages_per_second": round(work["jobs"] / work["seconds"]), "queue_messages": work["jobs"],
            "cleanup_rows_per_second": round(deleted / cleanup)}))


if __name__ == "__main__":
    main()
