"""Local hosts as separate processes (`python -m devhost`), several on one Azurite and one sandbox,
as two Azure instances share a storage account: for proofs across processes (races between
hosts, a host killed with SIGKILL), which threads in one process cannot give."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tools.procs import free_port

ROOT = Path(__file__).resolve().parent.parent


class HostApi(requests.Session):
    """A session on one host's `/api` (`api.get("/tenants/…")`), as the tests' `api` fixture is."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.base_url = base_url
        self.trust_env = False  # plain http on loopback: no proxies, no CA bundle
        self.headers.update(headers or {})  # the caller's token and X-Organization-Id

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        kwargs.setdefault("timeout", 60)
        kwargs["allow_redirects"] = False
        return super().request(method, f"{self.base_url}/api{url}", *args, **kwargs)


@dataclass
class HostProcess:
    process: subprocess.Popen
    port: int
    log: Path
    headers: dict[str, str] = field(default_factory=dict)  # sent on every request of `api()`

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self) -> HostApi:
        return HostApi(self.base_url, self.headers)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, as when an instance dies."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def start_host(env: dict[str, str], log_dir: Path, *, name: str, timeout: float = 60) -> HostProcess:
    """A host process; `PUBLIC_BASE_URL: "self"` in `env` becomes the host's own address (so the
    URLs it hands out, such as Graph's notification URL, reach it)."""
    port = free_port()
    if env.get("PUBLIC_BASE_URL") == "self":
        env = {**env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--port", str(port), "--settings", str(log_dir / "no-settings.json")],
            cwd=ROOT, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    host = HostProcess(process, port, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"host {name} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{host.base_url}/api/health", timeout=1).status_code == 200:
                return host
        time.sleep(0.1)
    host.stop()
    raise TimeoutError(f"host {name} did not answer in {timeout:.0f}s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def hosts(env: dict[str, str], log_dir: Path, count: int = 2) -> Iterator[list[HostProcess]]:
    started: list[HostProcess] = []
    try:
        for index in range(count):
            started.append(start_host(env, log_dir, name=f"host-{index + 1}"))
        yield started
    finally:
        for host in started:
            host.stop()
