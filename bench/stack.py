"""The whole local stack for benchmarks: Azurite, the sandbox, and the app on the local host, in a
temporary folder, on free loopback ports; stopped on exit."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BASE_SEED = json.loads((ROOT / "tests" / "sandbox_seed.json").read_text())
APP = BASE_SEED["apps"][0]


ORGANIZATION = "bench"


@dataclass
class Stack:
    host: Any
    sandbox: Any
    session: Any  # sends the 10KC web app's token and X-Organization-Id, as the web app does
    caller_headers: dict[str, str]

    def url(self, path: str) -> str:
        return f"{self.host.base_url}/api{path}"


def consented(tenant_id: str, domain: str, users: list[dict[str, Any]]) -> dict[str, Any]:
    return {"tenantId": tenant_id, "domain": domain, "users": users,
            "consented": {APP["clientId"]: {"application": ["Calendars.ReadWrite"], "delegated": []}}}


@contextlib.contextmanager
def local_stack(tenants: list[dict[str, Any]], enabled: list[tuple[str, str]], *,
                azurite_in_memory: bool = False) -> Iterator[Stack]:
    """`tenants`: the sandbox's tenants; `enabled`: (tenant id, default time zone) registered as
    enabled domain-wide tenants in the service's storage (benchmarks skip the consent pages);
    `azurite_in_memory`: Azurite without its periodic saves to disk (tools/azurite.py)."""
    import requests

    from sandbox.testing import start_sandbox
    from tests.support.callers import caller_env, caller_headers
    from tools.azurite import start_azurite
    from tools.procs import free_port

    os.environ.pop("REQUESTS_CA_BUNDLE", None)  # the sandbox's bundle is set below
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    azurite = start_azurite(work / "azurite", in_memory=azurite_in_memory)
    sandbox = start_sandbox(work / "sandbox", ROOT / "tests" / "sandbox_seed.json")
    host = None
    try:
        sandbox.reset({"tenants": tenants})
        port = free_port()  # the URLs the host hands out (Graph's notification URL) reach it
        os.environ.update({
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "ALLOWED_RETURN_ORIGINS": "http://127.0.0.1:3000",
            "APP_CLIENT_ID": APP["clientId"], "KEY_VAULT_URL": sandbox.base_url,
            "IDENTITY_AUTHORITY_HOST": sandbox.base_url, "GRAPH_BASE_URL": sandbox.base_url + "/v1.0",
            "SERVICE_STORAGE": azurite.connection_string, "LOG_LEVEL": "WARNING", **sandbox.managed_identity_env(),
            "TOKEN_REFRESH_SCHEDULE": "0 0 */6 * * *", "BOOKING_RECONCILE_SCHEDULE": "0 */2 * * * *",
            "JOBS_QUEUE_NAME": "bench-jobs", **caller_env(),
        })
        import function_app
        from devhost import LocalHost
        from shared.clients import repositories
        from shared.storage import Tenant, utcnow

        for tenant_id, zone in enabled:
            repositories().store.insert(Tenant(tenantId=tenant_id, organizationId=ORGANIZATION,
                                               organizationName="Bench", mode="domain", status="enabled",
                                               defaultTimeZone=zone,
                                               consentedAt=utcnow(), createdAt=utcnow(), updatedAt=utcnow()))
        host = LocalHost(function_app.app, port=port).start()
        session = requests.Session()
        session.trust_env = False
        headers = caller_headers(sandbox, ORGANIZATION)
        session.headers.update(headers)
        yield Stack(host, sandbox, session, headers)
    finally:
        if host is not None:
            host.stop()
        sandbox.stop()
        azurite.stop()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def line(label: str, values: list[float], unit: str = "ms") -> str:
    return f"  {label:<22} p50 {statistics.median(values):7.1f} {unit}  p95 {percentile(values, .95):7.1f} {unit}"
