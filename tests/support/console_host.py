"""A local host process serving the console (`python -m devhost --console`), as `make run` starts it,
on the tests' Azurite and sandbox, with the people of the demo seed (sandbox/demo.py: next week's
calendars, made from today) and a second, delegated tenant."""

from __future__ import annotations

import contextlib
import copy
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import requests

from tools.hosts import ROOT, HostProcess
from tools.procs import free_port

__all__ = ["console_seed", "free_port", "host_env", "start_console_host", "write_seed"]

NORTHWIND = "7d1e2c3b-4a5f-4e6d-8c7b-9a0f1e2d3c4b"  # the delegated tenant of these tests


def _person(n: int, mail: str, name: str, zone: str, admin: bool = False) -> dict[str, Any]:
    return {"id": f"7d1e2c3b-0000-4000-8000-{n:012d}", "mail": mail, "displayName": name, "timeZone": zone,
            "isAdmin": admin, "workingHours": {"daysOfWeek": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                                               "startTime": "08:30:00", "endTime": "16:30:00"}}


DELEGATED_TENANT = {
    "tenantId": NORTHWIND, "domain": "northwind.example", "displayName": "Northwind (delegated demo)",
    "users": [_person(1, "nina@northwind.example", "Nina Admin", "Europe/Berlin", admin=True),
              _person(2, "omar@northwind.example", "Omar Member", "Europe/Berlin"),
              _person(3, "pia@northwind.example", "Pia Member", "Europe/London")],
}


def console_seed(test_seed: dict[str, Any], callback: str) -> dict[str, Any]:
    """The tests' home tenant and apps (its callers; the service's app with `callback` registered),
    the demo seed's tenant with its calendars, and the delegated tenant above."""
    from sandbox.demo import demo_seed

    apps = copy.deepcopy(test_seed["apps"])
    apps[0]["redirectUris"] = [*apps[0]["redirectUris"], callback]
    return {"homeTenantId": test_seed["homeTenantId"], "apps": apps,
            "tenants": [*demo_seed()["tenants"], copy.deepcopy(DELEGATED_TENANT)]}


def start_console_host(env: dict[str, str], log_dir: Path, seed: Path, port: int, *,
                       timeout: float = 60) -> HostProcess:
    """`python -m devhost --console` on `port` (from `free_port()`); PUBLIC_BASE_URL is its own
    address, so Graph's notifications and the consent callback reach it, and the console's origin
    may be a returnUrl."""
    base = f"http://127.0.0.1:{port}"
    env = {**env, "PUBLIC_BASE_URL": base,
           "ALLOWED_RETURN_ORIGINS": ",".join(filter(None, [env.get("ALLOWED_RETURN_ORIGINS"), base]))}
    log = log_dir / "console-host.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--port", str(port), "--settings", str(log_dir / "no-settings.json"),
             "--console", "--console-seed", str(seed)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    host = HostProcess(process, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the console host exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{base}/api/health", timeout=1).status_code == 200:
                return host
        time.sleep(0.1)
    host.stop()
    raise TimeoutError(f"the console host did not answer in {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def host_env(base_env: dict[str, str], sandbox_env: dict[str, str], storage: str) -> dict[str, str]:
    """The service's settings for a host of its own: tables and a jobs queue no other test uses."""
    import os

    return {**os.environ, **base_env, **sandbox_env, "SERVICE_STORAGE": storage,
            "STORAGE_TABLE_PREFIX": "t" + uuid.uuid4().hex[:12], "JOBS_QUEUE_NAME": "q" + uuid.uuid4().hex[:12],
            "LOG_LEVEL": "INFO"}


def write_seed(path: Path, seed: dict[str, Any]) -> Path:
    path.write_text(json.dumps(seed, indent=1), encoding="utf-8")
    return path
