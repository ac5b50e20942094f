"""`make run` twice in a row: the second starts at once, though the first left sockets in TIME_WAIT.

Runs the real `make run` (Azurite, the sandbox, the local host on their fixed ports), with its
state in a temporary folder (RUN_LOCAL_DIR), never the repository's own .local/."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

from tools.run_local import AZURITE_PORTS, HOST_PORT, SANDBOX_PORT, _port_free

ROOT = Path(__file__).resolve().parents[2]
HEALTH = f"http://127.0.0.1:{HOST_PORT}/api/health"


def _start(state: Path, log: Path) -> subprocess.Popen:
    # As a developer's shell runs it: without the settings the test suite put in its own environment
    # (the environment wins over local.settings.json).
    from tests.conftest import BASE_ENV

    env = {**{k: v for k, v in os.environ.items() if k not in BASE_ENV}, "RUN_LOCAL_DIR": str(state)}
    with log.open("ab") as out:
        return subprocess.Popen(["make", "--no-print-directory", "run"], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _wait_healthy(process: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"make run exited with {process.returncode}:\n{log.read_text()[-3000:]}"
        try:
            if requests.get(HEALTH, timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"no health answer in {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGINT)
    process.wait(timeout=30)


def _time_wait_ports() -> set[int]:
    out = subprocess.run(["ss", "-Htan", "state", "time-wait"], capture_output=True, text=True, check=True).stdout
    return {int(line.split()[2].rsplit(":", 1)[1]) for line in out.splitlines() if line.strip()}


def test_make_run_twice_in_a_row_both_serve(tmp_path):
    ports = (*AZURITE_PORTS, SANDBOX_PORT, HOST_PORT)
    assert all(_port_free(p) for p in ports), f"another `make run` holds {ports}: stop it to run this test"
    log = tmp_path / "make-run.log"
    first = _start(tmp_path / "state", log)
    try:
        _wait_healthy(first, log)
        # Traffic whose connections the server closes first, so the host's port has TIME_WAIT sockets.
        for _ in range(20):
            assert requests.get(HEALTH, headers={"Connection": "close"}, timeout=5).status_code == 200
        assert "The service is running." in log.read_text()
        _printed_commands_work(log)
        # While it runs, another `make run` refuses at once with the clear message.
        other = subprocess.run(["make", "--no-print-directory", "run"], cwd=ROOT, capture_output=True, text=True,
                               env={**os.environ, "RUN_LOCAL_DIR": str(tmp_path / "other")}, timeout=60)
        assert other.returncode != 0
        assert "ports already in use" in other.stderr and "another `make run`" in other.stderr
    finally:
        _stop(first)
    assert HOST_PORT in _time_wait_ports()  # the premise: a plain bind would call the port busy

    began = time.monotonic()
    second = _start(tmp_path / "state", log)
    try:
        _wait_healthy(second, log)
        assert requests.get(HEALTH, timeout=5).json()["status"] == "ok"
        assert time.monotonic() - began < 60
    finally:
        _stop(second)
    assert "ports already in use" not in log.read_text()
    assert (tmp_path / "state" / "sandbox" / "ca.pem").exists()  # its state went to RUN_LOCAL_DIR


def _printed_commands_work(log: Path) -> None:
    """The printed one-liner gets the demo web app's token into TOKEN; the printed PUT, with that
    token and the demo organization, registers the demo tenant."""
    import json

    lines = log.read_text().splitlines()
    get_token = next(line.strip() for line in lines if line.strip().startswith("TOKEN=$(curl "))
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("curl -s -X PUT "))
    put = "\n".join(lines[start:start + 2])
    assert lines[start].rstrip().endswith("\\") and '-H "Authorization: Bearer $TOKEN"' in put
    answer = subprocess.run(["bash", "-c", f"set -eo pipefail\n{get_token}\n{put}"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert answer.returncode == 0, answer.stderr
    tenant = json.loads(answer.stdout)
    assert tenant.get("organizationId") == "org-demo", (tenant, log.read_text()[-3000:])
    assert tenant["status"] == "pending_consent"


def test_a_port_that_something_listens_on_is_busy():
    import socket

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not _port_free(port)
    assert _port_free(port)
