"""Background work at scale: 1,000 connected members across 10 delegated tenants in the sandbox.

Prints the timer's enqueue time, and the jobs per second the queue function sustains on this
machine when the local host drains the queue (pacing off, to see the function's own speed), and
from those, how many instances would refresh 100,000 members in an hour under Key Vault's limit.
Loopback only. Usage: python bench/background.py [--members 1000]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TENANTS = 10
KEY_VAULT_WRITES_PER_SECOND = 30  # about 300 secret writes per 10 seconds per vault


def tenant_id(index: int) -> str:
    return f"b0b0b0b0-0000-4000-8000-0000000b{index:04d}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=1000)
    args = parser.parse_args()
    per_tenant = args.members // TENANTS

    from bench.stack import APP, local_stack

    tenants = []
    for t in range(TENANTS):
        users = [{"id": f"b0b0b0b0-0000-4000-{t:04d}-{u:012d}", "mail": f"m{u}@t{t}.example", "displayName": f"M{u}",
                  "timeZone": "UTC"} for u in range(per_tenant)]
        tenants.append({"tenantId": tenant_id(t), "domain": f"t{t}.example", "users": users,
                        "consented": {APP["clientId"]: {"application": [], "delegated": ["Calendars.ReadWrite",
                                                                                         "User.Read"]}}})
    with local_stack(tenants, []) as stack:
        import msal

        from background.jobs import TOKEN_REFRESH_TIMER, background
        from devhost import LocalHost
        from shared.clients import job_queue, member_tokens, repositories
        from shared.storage import ConnectedUser, Tenant, utcnow
        from tests.support.consent_pages import click_through, query_of

        repos = repositories()
        for t in range(TENANTS):
            repos.store.insert(Tenant(tenantId=tenant_id(t), organizationId=f"org-{t}", organizationName=f"Org {t}",
                                      mode="delegated", status="enabled", createdAt=utcnow(), updatedAt=utcnow()))

        def connect(pair: tuple[int, int]) -> None:
            t, u = pair
            app = msal.ConfidentialClientApplication(APP["clientId"], client_credential=APP["clientSecret"],
                                                     authority=f"{stack.sandbox.base_url}/{tenant_id(t)}",
                                                     instance_discovery=False)
            flow = app.initiate_auth_code_flow(["https://graph.microsoft.com/Calendars.ReadWrite"],
                                               redirect_uri=APP["redirectUris"][0], response_mode="query",
                                               login_hint=f"m{u}@t{t}.example")
            back = click_through(stack.sandbox.session(), flow["auth_uri"], f"m{u}@t{t}.example")
            result = app.acquire_token_by_auth_code_flow(flow, query_of(back))
            claims = result["id_token_claims"]
            member_tokens().connect(tenant_id(t), claims["oid"], claims["preferred_username"], result["refresh_token"])

        began = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(connect, [(t, u) for t in range(TENANTS) for u in range(per_tenant)]))
        print(f"background: {args.members} members across {TENANTS} tenants connected in "
              f"{time.perf_counter() - began:.1f} s (setup)")

        def due(row: ConnectedUser) -> ConnectedUser:
            row.refreshDueAt = utcnow()
            return row

        for t in range(TENANTS):
            for user in list(repos.users(tenant_id(t))):
                repos.store.modify(ConnectedUser, tenant_id(t), user.row_key, due)

        import dataclasses
        import json

        import shared.settings

        # Pacing off (Key Vault's limit is the bound in production): measure the function itself.
        unpaced = dataclasses.replace(shared.settings.get_settings(), refresh_jobs_per_second=1_000_000)
        shared.settings.get_settings = lambda: unpaced
        queue = job_queue()
        began = time.perf_counter()
        background().tick(TOKEN_REFRESH_TIMER)
        tick = time.perf_counter() - began
        counts = {"members": 0}
        jobs = []
        while True:  # the sweeps' page jobs, run here; the jobs they queue are set aside for the host
            received = list(queue.client.receive_messages(max_messages=32, visibility_timeout=300))
            if not received:
                break
            for message in received:
                if json.loads(message.content)["kind"] == "sweep.page":
                    outcome = background().run(message.content)
                    if outcome.startswith("members page"):
                        counts["members"] += int(outcome.split(": ")[1].split()[0])
                else:
                    jobs.append(message.content)
                queue.client.delete_message(message)
        enqueue = time.perf_counter() - began
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(queue.client.send_message, jobs))
        print(f"  timer run {tick * 1000:.0f} ms; its page jobs queued {counts['members']} refresh jobs in "
              f"{enqueue:.2f} s ({counts['members'] / enqueue:.0f} messages/s)")

        import function_app

        options = {"extensions": {"queues": {"batchSize": 16, "newBatchThreshold": 8,
                                             "maxPollingInterval": "00:00:00.5", "visibilityTimeout": "00:00:05",
                                             "maxDequeueCount": 5}}}
        host = LocalHost(function_app.app, host_json=options, port=0).start()
        began = time.perf_counter()
        try:
            while True:
                refreshed = sum(1 for t in range(TENANTS) for u in repos.users(tenant_id(t))
                                if u.lastRefreshAt and u.refreshDueAt and u.refreshDueAt > utcnow())
                if refreshed >= counts["members"] or time.perf_counter() - began > 600:
                    break
                time.sleep(0.5)
        finally:
            host.stop()
        elapsed = time.perf_counter() - began
        rate = refreshed / elapsed
        print(f"  queue function: {refreshed} members refreshed in {elapsed:.1f} s = {rate:.1f} jobs/s "
              "on one local instance (batchSize 16)")
        needed = 100_000 / 3600
        instances = math.ceil(needed / rate)
        print(f"  100,000 members in an hour need {needed:.1f} jobs/s: {instances} instance(s) at this rate; "
              f"Key Vault allows ~{KEY_VAULT_WRITES_PER_SECOND} writes/s per vault, so the timer's pacing "
              "(REFRESH_JOBS_PER_SECOND, default 25, max 28) is the bound: 100,000 take ~67 min at 25/s, "
              "~60 min at 28/s")


if __name__ == "__main__":
    main()
