"""The console's settings, the caller it plays, and the people it knows.

Everything comes from the app settings the local host already has (the environment after
local.settings.json) and from the sandbox seed the sandbox was started with:
- the sandbox: `IDENTITY_AUTHORITY_HOST` (the identity platform the service uses; it must be the
  sandbox on loopback, since the console drives the sandbox's control routes), trusted through
  `REQUESTS_CA_BUNDLE` (system CAs plus the sandbox CA, as `make run` sets it);
- the caller: the seed's app that the service accepts (in `ALLOWED_CALLER_APP_IDS`, holding the
  app role Calendar.Integration on `API_AUDIENCE`, with a client secret): the 10KC web app of the
  sandbox. Its secret stays in this process;
- the people: the seed's tenants and users (names, zones, working hours), the directory the web
  app would have of its own users;
- where consent pages link back to: the console's own URL when its origin is in
  `ALLOWED_RETURN_ORIGINS`, else the first allowed origin.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_ORGANIZATION = "org-demo"  # the organization `make run`'s printed commands act for
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
CALLER_ROLE = "Calendar.Integration"


class ConsoleError(ValueError):
    """The console cannot start, or cannot do what it was asked; the message says why."""


@dataclass(frozen=True)
class Caller:
    """The 10KC web app's client credentials in its home tenant, for the service's API."""

    client_id: str
    client_secret: str
    scope: str
    token_url: str

    def __repr__(self) -> str:  # never the secret, whoever prints it
        return f"Caller(client_id={self.client_id!r}, scope={self.scope!r})"


def caller_app(seed: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str] | None:
    """The seed's app the service accepts as a caller: `{"clientId", "clientSecret", "scope"}`."""
    allowed = {item.strip().lower() for item in environ.get("ALLOWED_CALLER_APP_IDS", "").split(",") if item.strip()}
    api = environ.get("API_AUDIENCE", "").strip().lower()
    apps = list(seed.get("apps") or [])
    for app in apps:
        roles = {str(k).lower(): v for k, v in (app.get("roleAssignments") or {}).items()}.get(api, [])
        if str(app.get("clientId", "")).lower() in allowed and CALLER_ROLE in roles and app.get("clientSecret"):
            exposed = next((a for a in apps if str(a.get("clientId", "")).lower() == api), {})
            return {"clientId": app["clientId"], "clientSecret": app["clientSecret"],
                    "scope": f"{exposed.get('identifierUri') or api}/.default"}
    return None


def _sandbox_url(environ: Mapping[str, str]) -> str:
    raw = (environ.get("IDENTITY_AUTHORITY_HOST") or "").strip().rstrip("/")
    parts = urlsplit(raw if "//" in raw else f"https://{raw}")
    if parts.scheme != "https" or parts.hostname not in LOOPBACK or parts.path not in ("", "/"):
        raise ConsoleError("the console runs against the local sandbox only: IDENTITY_AUTHORITY_HOST must be "
                           f"https://127.0.0.1:<port> (it is {raw or 'not set'!r})")
    return f"https://{parts.netloc}"


def _verify(environ: Mapping[str, str]) -> str | bool:
    """The CA bundle the sandbox is trusted through (never False: verification stays on)."""
    bundle = environ.get("REQUESTS_CA_BUNDLE") or ""
    return bundle if bundle and Path(bundle).is_file() else True


class Directory:
    """The seed's tenants and people, read again when the file changes (a new `make run` writes it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._seed: dict[str, Any] = {}

    def seed(self) -> dict[str, Any]:
        from sandbox.seed import SeedError, validate_seed

        try:
            status = self.path.stat()
        except OSError as error:
            raise ConsoleError(f"the console cannot read the sandbox seed {self.path}: {error.strerror}") from None
        stamp = (status.st_mtime, status.st_size)
        with self._lock:
            if stamp != self._stamp:
                try:
                    raw = json.loads(self.path.read_text(encoding="utf-8"))
                    self._seed = validate_seed(raw, require_home=True)
                except (ValueError, SeedError) as error:
                    raise ConsoleError(f"the sandbox seed {self.path} is not valid: {error}") from None
                self._stamp = stamp
            return self._seed

    def tenants(self) -> list[dict[str, Any]]:
        return list(self.seed().get("tenants") or [])

    def tenant(self, tenant_id: str) -> dict[str, Any] | None:
        return next((t for t in self.tenants() if t["tenantId"] == tenant_id.lower()), None)

    def user(self, tenant_id: str, email: str) -> dict[str, Any] | None:
        tenant = self.tenant(tenant_id)
        email = email.strip().lower()
        return next((u for u in (tenant or {}).get("users", [])
                     if email in (u["mail"], u["userPrincipalName"], u["id"], *u.get("proxyAddresses", []))), None)


@dataclass(frozen=True)
class ConsoleConfig:
    sandbox_url: str
    verify: str | bool
    caller: Caller
    directory: Directory
    return_origins: tuple[str, ...]
    organization: str = DEFAULT_ORGANIZATION

    @classmethod
    def from_environment(cls, seed_path: str | Path, environ: Mapping[str, str] | None = None) -> ConsoleConfig:
        environ = os.environ if environ is None else environ
        sandbox_url = _sandbox_url(environ)
        directory = Directory(Path(seed_path))
        seed = directory.seed()
        found = caller_app(seed, environ)
        if found is None:
            raise ConsoleError(f"no app of {seed_path} is a caller the service accepts (in ALLOWED_CALLER_APP_IDS, "
                               f"with the app role {CALLER_ROLE} on API_AUDIENCE and a client secret)")
        caller = Caller(found["clientId"], found["clientSecret"], found["scope"],
                        f"{sandbox_url}/{seed['homeTenantId']}/oauth2/v2.0/token")
        origins = tuple(o.strip().rstrip("/") for o in environ.get("ALLOWED_RETURN_ORIGINS", "").split(",")
                        if o.strip())
        return cls(sandbox_url=sandbox_url, verify=_verify(environ), caller=caller, directory=directory,
                   return_origins=origins)

    def return_url(self, console_origin: str) -> str | None:
        """Where a consent page links back to: this console if its origin may be, else the first
        allowed origin (None when there is none: the service would refuse any returnUrl)."""
        if console_origin in self.return_origins:
            return f"{console_origin}/console/"
        return f"{self.return_origins[0]}/" if self.return_origins else None
