"""Start and stop a sandbox process from tests (and benchmarks).

    from sandbox.testing import start_sandbox

    sbx = start_sandbox(tmp_path / "sandbox", Path("tests/sandbox_seed.json"))
    try:
        sbx.session().get(sbx.base_url + "/_sandbox/health")   # verify=sbx.ca_bundle
        sbx.reset(seed_dict)
        log = sbx.requests()
    finally:
        sbx.stop()

``start_sandbox`` runs ``python -m sandbox`` on a free port (or the one given) with the state
directory and seed given, waits for its ``sandbox listening on ...`` line (20 s by default), and
returns a ``SandboxProcess``. The process's stdout and stderr go to ``sandbox.stdout.log`` and
``sandbox.stderr.log`` in the state directory, never to a pipe that could fill up.
TLS verification stays on everywhere: clients trust ``ca_bundle`` (system CAs + the sandbox CA).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .seed import DEFAULT_IDENTITY_HEADER

PACKAGE_PARENT = Path(__file__).resolve().parent.parent
LISTENING_PREFIX = "sandbox listening on "


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SandboxProcess:
    base_url: str
    port: int
    state_dir: Path
    ca_bundle: Path
    process: subprocess.Popen[bytes]
    identity_header: str = DEFAULT_IDENTITY_HEADER
    _session: requests.Session | None = field(default=None, repr=False)

    @property
    def ca_cert(self) -> Path:
        """The sandbox CA alone (``ca_bundle`` adds the system CAs)."""
        return self.state_dir / "ca.pem"

    @property
    def identity_endpoint(self) -> str:
        """What ``IDENTITY_ENDPOINT`` should be for the App Service managed-identity endpoint."""
        return f"{self.base_url}/msi/token"

    def managed_identity_env(self) -> dict[str, str]:
        """Environment for ``ManagedIdentityCredential`` / ``DefaultAzureCredential`` against this
        sandbox: ``IDENTITY_ENDPOINT``, ``IDENTITY_HEADER`` and ``REQUESTS_CA_BUNDLE``."""
        return {"IDENTITY_ENDPOINT": self.identity_endpoint, "IDENTITY_HEADER": self.identity_header,
                "REQUESTS_CA_BUNDLE": str(self.ca_bundle)}

    def session(self) -> requests.Session:
        """A shared ``requests`` session that trusts the sandbox (``verify=ca_bundle``)."""
        if self._session is None:
            self._session = requests.Session()
            # requests lets REQUESTS_CA_BUNDLE (set machine-wide here) override a session's
            # ``verify``; not trusting the environment makes ``verify`` the sandbox bundle.
            self._session.trust_env = False
            self._session.verify = str(self.ca_bundle)
        return self._session

    def reset(self, seed: dict[str, Any] | str | Path) -> dict[str, Any]:
        """``POST /_sandbox/reset`` with a seed (a dict, or a path to a JSON file); raises on non-200."""
        body = seed if isinstance(seed, dict) else json.loads(Path(seed).read_text(encoding="utf-8"))
        response = self.session().post(f"{self.base_url}/_sandbox/reset", json=body, timeout=30)
        if response.status_code != 200:
            raise RuntimeError(f"sandbox reset failed: {response.status_code} {response.text}")
        return response.json()

    def rotate_keys(self) -> str:
        """``POST /_sandbox/keys/rotate``; answers the new signing key's ``kid``."""
        response = self.session().post(f"{self.base_url}/_sandbox/keys/rotate", timeout=30)
        response.raise_for_status()
        return str(response.json()["kid"])

    def client_token(self, tenant: str, client_id: str, client_secret: str, scope: str) -> str:
        """An access token from the client credentials flow (raises on an error answer)."""
        response = self.session().post(
            f"{self.base_url}/{tenant}/oauth2/v2.0/token", timeout=30,
            data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret,
                  "scope": scope})
        if response.status_code != 200:
            raise RuntimeError(f"token request failed: {response.status_code} {response.json().get('error')}")
        return str(response.json()["access_token"])

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        """The request log (entries with ``index >= since``)."""
        response = self.session().get(f"{self.base_url}/_sandbox/requests", params={"since": since}, timeout=30)
        response.raise_for_status()
        return list(response.json()["value"])

    def next_request_index(self) -> int:
        """The index the next logged request will get (for ``requests(since=...)``)."""
        response = self.session().get(f"{self.base_url}/_sandbox/requests",
                                      params={"since": 2**62}, timeout=30)
        response.raise_for_status()
        return int(response.json()["nextIndex"])

    def clear_requests(self) -> None:
        self.session().delete(f"{self.base_url}/_sandbox/requests", timeout=30).raise_for_status()

    def stderr_text(self) -> str:
        with contextlib.suppress(OSError):
            return (self.state_dir / "sandbox.stderr.log").read_text(encoding="utf-8", errors="replace")
        return ""

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit code."""
        if self._session is not None:
            self._session.close()
            self._session = None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        return self.process.returncode

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _identity_header(seed_path: Path) -> str:
    try:
        seed = json.loads(seed_path.read_text(encoding="utf-8"))
        return str(seed.get("managedIdentity", {}).get("identityHeader") or DEFAULT_IDENTITY_HEADER)
    except (OSError, ValueError, AttributeError):
        return DEFAULT_IDENTITY_HEADER


def _start_once(state_dir: Path, seed_path: Path, port: int, timeout: float,
                extra_env: dict[str, str] | None) -> SandboxProcess | str:
    """A started sandbox, or the reason it did not start (its stderr)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = state_dir / "sandbox.stdout.log", state_dir / "sandbox.stderr.log"
    env = {**os.environ, **(extra_env or {})}
    env["PYTHONUNBUFFERED"] = "1"
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
            [sys.executable, "-m", "sandbox", "--port", str(port), "--state-dir", str(state_dir),
             "--seed", str(seed_path), "--quiet"],
            cwd=PACKAGE_PARENT, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = stdout_path.read_text(encoding="utf-8", errors="replace")
        for line in text.splitlines():
            if line.startswith(LISTENING_PREFIX):
                return SandboxProcess(base_url=line[len(LISTENING_PREFIX):].strip(), port=port,
                                      state_dir=state_dir, ca_bundle=state_dir / "ca-bundle.pem",
                                      process=process, identity_header=_identity_header(seed_path))
        if process.poll() is not None:
            return stderr_path.read_text(encoding="utf-8", errors="replace") or f"exit code {process.returncode}"
        time.sleep(0.05)
    process.kill()
    process.wait(timeout=10)
    raise TimeoutError(f"the sandbox did not listen within {timeout} s; stderr:\n"
                       + stderr_path.read_text(encoding="utf-8", errors="replace"))


def start_sandbox(state_dir: str | Path, seed_path: str | Path, port: int | None = None, *,
                  timeout: float = 20.0, env: dict[str, str] | None = None) -> SandboxProcess:
    """Start ``python -m sandbox`` and wait until it listens.

    ``port=None`` picks a free port (and retries on another if that one was taken meanwhile).
    ``env`` adds environment variables for the sandbox process.
    """
    state_dir, seed_path = Path(state_dir).resolve(), Path(seed_path).resolve()
    attempts = 3 if port is None else 1
    reason = ""
    for _ in range(attempts):
        result = _start_once(state_dir, seed_path, port or free_port(), timeout, env)
        if isinstance(result, SandboxProcess):
            return result
        reason = result
        if "cannot listen" not in reason:
            break
    raise RuntimeError(f"the sandbox failed to start:\n{reason}")
