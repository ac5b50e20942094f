"""`make run`: Azurite, the sandbox and the function host, together, until Ctrl-C.

The host is Azure Functions Core Tools' `func start` where it is installed, else the project's
small local host (`python -m devhost`). Both read `local.settings.json`. The local console (a page
that plays the 10KC web app, devhost/console) is served by the local host at /console/, or beside
`func start` on a port of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import date
from pathlib import Path

from sandbox.demo import write_demo_seed
from tools.azurite import start_azurite
from tools.dates import iso
from tools.procs import stop, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
# Where the run keeps its state (Azurite's data, the sandbox's CA and vault). Tests point it at a
# temporary folder, so they never write the repository's own .local/.
LOCAL = Path(os.environ.get("RUN_LOCAL_DIR") or ROOT / ".local")
SANDBOX_PORT = 8443
HOST_PORT = 7071
CONSOLE_PORT = 7072  # the console's own port, only beside `func start` (devhost serves it on HOST_PORT)
AZURITE_PORTS = (10000, 10001, 10002)


def _port_free(port: int) -> bool:
    """Whether a server could listen on the port now. The bind uses SO_REUSEADDR, as Azurite, the
    sandbox and the local host do, so sockets of a previous run still in TIME_WAIT do not count as
    busy (they would for a minute without it); a socket that listens on the port still does."""
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def settings_with_sample_defaults() -> tuple[dict[str, str], list[str]]:
    """local.settings.json's values, plus the sample's for settings it lacks (a file made before a
    setting was added); answers the values and the names taken from the sample."""
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    values = json.loads((ROOT / "local.settings.json").read_text())["Values"]
    missing = sorted(name for name in sample if name not in values)
    return {**{name: sample[name] for name in missing}, **values}, missing


def demo_caller(settings: dict[str, str]) -> dict[str, str] | None:
    """The demo seed's app that may call the service (in ALLOWED_CALLER_APP_IDS, holding the app
    role Calendar.Integration on API_AUDIENCE, with a secret): the 10KC web app of the sandbox."""
    allowed = {item.strip().lower() for item in settings.get("ALLOWED_CALLER_APP_IDS", "").split(",")}
    api = settings.get("API_AUDIENCE", "").lower()
    apps = json.loads((ROOT / "sandbox" / "seed.json").read_text(encoding="utf-8"))["apps"]
    for app in apps:
        roles = app.get("roleAssignments", {}).get(api, [])
        if app["clientId"].lower() in allowed and "Calendar.Integration" in roles and app.get("clientSecret"):
            exposed = next((a for a in apps if a["clientId"].lower() == api), {})
            return {"clientId": app["clientId"], "clientSecret": app["clientSecret"],
                    "scope": f"{exposed.get('identifierUri') or api}/.default"}
    return None


def _host_command(seed: Path) -> tuple[list[str], str, str]:
    """The host's command, its name, and the console's URL."""
    func = shutil.which("func")
    if func:
        return ([func, "start", "--port", str(HOST_PORT)], "Azure Functions Core Tools (func start)",
                f"http://127.0.0.1:{CONSOLE_PORT}/console/")
    return ([sys.executable, "-m", "devhost", "--port", str(HOST_PORT), "--console", "--console-seed", str(seed)],
            "the project's local host (devhost)", f"http://127.0.0.1:{HOST_PORT}/console/")


def with_console_origin(origins: str, console_url: str) -> str:
    """ALLOWED_RETURN_ORIGINS plus the console's origin, so that consent pages link back to it."""
    origin = console_url.split("/console/")[0]
    listed = [o.strip() for o in origins.split(",") if o.strip()]
    return ",".join(listed if origin in listed else [*listed, origin])


def main() -> int:
    ports = (*AZURITE_PORTS, SANDBOX_PORT, HOST_PORT, *((CONSOLE_PORT,) if shutil.which("func") else ()))
    busy = [p for p in ports if not _port_free(p)]
    if busy:
        print(f"make run: ports already in use on 127.0.0.1: {busy}; is another `make run` going?", file=sys.stderr)
        return 1
    LOCAL.mkdir(parents=True, exist_ok=True)
    day = write_demo_seed(LOCAL / "sandbox-seed.json")  # next week's calendars, made from today
    settings, missing = settings_with_sample_defaults()
    if missing:
        print(f"local.settings.json has no {', '.join(missing)}: using local.settings.sample.json's values "
              "(copy them into local.settings.json to keep your own)", flush=True)
    started: list[subprocess.Popen] = []
    stopping = threading.Event()

    def shut_down(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, shut_down)
    signal.signal(signal.SIGTERM, shut_down)
    try:
        print("starting Azurite (tables, queues) on 127.0.0.1:10000-10002 ...", flush=True)
        azurite = start_azurite(LOCAL / "azurite", ports=AZURITE_PORTS, log_file=LOCAL / "azurite.log")
        started.append(azurite.process)

        print(f"starting the Microsoft cloud sandbox on https://127.0.0.1:{SANDBOX_PORT} ...", flush=True)
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--port", str(SANDBOX_PORT), "--state-dir", str(LOCAL / "sandbox"),
             "--seed", str(LOCAL / "sandbox-seed.json")],
            cwd=ROOT, start_new_session=True,
        )
        started.append(sandbox)
        wait_for_port(SANDBOX_PORT, timeout=30, process=sandbox)

        command, name, console_url = _host_command(LOCAL / "sandbox-seed.json")
        print(f"starting {name} on http://127.0.0.1:{HOST_PORT} ...", flush=True)
        env = dict(os.environ)
        # The machine may set REQUESTS_CA_BUNDLE for everything; the host must trust the sandbox CA
        # too (the bundle holds the system CAs plus the sandbox's). Verification stays on.
        env["REQUESTS_CA_BUNDLE"] = str(LOCAL / "sandbox" / "ca-bundle.pem")
        for name in missing:  # the environment wins over local.settings.json, as under Core Tools
            env.setdefault(name, settings[name])
        env["ALLOWED_RETURN_ORIGINS"] = with_console_origin(
            env.get("ALLOWED_RETURN_ORIGINS") or settings.get("ALLOWED_RETURN_ORIGINS", ""), console_url)
        host = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True)
        started.append(host)
        if command[0] != sys.executable:  # beside func start: the console on its own port
            console = subprocess.Popen(
                [sys.executable, "-m", "devhost.console", "--port", str(CONSOLE_PORT),
                 "--service", f"http://127.0.0.1:{HOST_PORT}", "--seed", str(LOCAL / "sandbox-seed.json")],
                cwd=ROOT, env=env, start_new_session=True)
            started.append(console)
            wait_for_port(CONSOLE_PORT, timeout=30, process=console)
        wait_for_port(HOST_PORT, timeout=60, process=host)
        _print_try(settings, day, console_url)

        while not stopping.is_set():
            for process in started:
                if process.poll() is not None:
                    print(f"make run: a process exited ({process.args[0]}, code {process.returncode}); stopping",
                          file=sys.stderr)
                    stopping.set()
            stopping.wait(0.5)
    finally:
        print("\nstopping ...", flush=True)
        began = time.monotonic()
        threads = [threading.Thread(target=stop, args=(p,), kwargs={"timeout": 8}) for p in reversed(started)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print(f"stopped in {time.monotonic() - began:.1f}s", flush=True)
    return 0


DEMO_TENANT = "9611863f-3d0e-49af-8fcb-1bf70cb3bd01"  # contoso.example in the demo seed (sandbox/demo.py)


DEMO_ORGANIZATION = "org-demo"


def token_command(settings: dict[str, str], ca_shown: Path | str) -> str | None:
    """One shell line that gets the demo web app's caller token from the sandbox into TOKEN."""
    caller = demo_caller(settings)
    if caller is None:
        return None
    endpoint = f"https://127.0.0.1:{SANDBOX_PORT}/{settings.get('HOME_TENANT_ID')}/oauth2/v2.0/token"
    return (f"TOKEN=$(curl -s --cacert {ca_shown} {endpoint} -d grant_type=client_credentials "
            f"-d client_id={caller['clientId']} --data-urlencode client_secret={caller['clientSecret']} "
            f"--data-urlencode scope={caller['scope']} "
            """| python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')""")


def _print_try(settings: dict[str, str], day: date, console_url: str) -> None:
    ca = LOCAL / "sandbox" / "ca.pem"
    ca_shown = ca.relative_to(ROOT) if ca.is_relative_to(ROOT) else ca
    base = f"http://127.0.0.1:{HOST_PORT}/api"
    get_token = token_command(settings, ca_shown) or (
        "(no app of sandbox/seed.json is in ALLOWED_CALLER_APP_IDS with the role Calendar.Integration on "
        "API_AUDIENCE: see README, Security model)")
    caller = '-H "Authorization: Bearer $TOKEN" -H "X-Organization-Id: ' + DEMO_ORGANIZATION + '"'
    print(
        f"""
The service is running. Open the console, which plays the 10KC web app in your browser:

  {console_url}

  health:          curl -s {base}/health
  API document:    curl -s {base}/openapi.yaml
  functions:       curl -s http://127.0.0.1:{HOST_PORT}/admin/functions
Routes under /api/tenants need the 10KC web app's Entra ID token (it lasts an hour) and its organization.
Get a token from the sandbox (the demo web app's client credentials) into TOKEN:
  {get_token}
Connect the demo tenant (contoso.example, not consented yet):
  curl -s -X PUT {base}/tenants/{DEMO_TENANT} {caller} \\
       -H 'Content-Type: application/json' -d '{{"mode": "domain"}}'
  curl -s -X POST {base}/tenants/{DEMO_TENANT}/consent {caller} \\
       -H 'Content-Type: application/json' -d '{{"kind": "admin", "returnUrl": "http://127.0.0.1:3000/admin"}}'
  then open the redirectUrl in a browser that trusts {ca_shown}, pick ada@contoso.example,
  click Accept (the service then checks, silently, that Ada signed in as the tenant's admin),
  and find the tenant enabled: curl -s {base}/tenants/{DEMO_TENANT} {caller}
  (how a consent ended: curl -s {base}/tenants/{DEMO_TENANT}/consent/<consentRequestId> {caller})
Free time and a booking:
  curl -s -X POST {base}/tenants/{DEMO_TENANT}/availability {caller} \\
       -H 'Content-Type: application/json' \\
       -d '{{"organizer": "ada@contoso.example", "attendees": ["grace@contoso.example"],
            "start": "{iso(day, "09:00", "America/New_York")}", "end": "{iso(day, "17:00", "America/New_York")}",
            "durationMinutes": 30}}'
The sandbox (https://127.0.0.1:{SANDBOX_PORT}, CA {ca_shown}) logs every call:
  curl -s --cacert {ca_shown} https://127.0.0.1:{SANDBOX_PORT}/_sandbox/requests
Settings come from local.settings.json (app client id {settings.get("APP_CLIENT_ID")}).
Ctrl-C stops everything.""",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
