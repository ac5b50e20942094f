"""The sandbox's mutable state: the seeded directory (home tenant, apps, customer tenants, managed
identity), the vault, and the request log, with the lock that guards them.

Reset semantics (SANDBOX.md): ``POST /_sandbox/reset`` replaces ``tenants``. Apps, the home
tenant, the managed identity, vault secrets and the signing key stay, unless the body names
``apps`` (replaced), ``homeTenantId`` (replaced), ``managedIdentity`` (replaced), ``vault`` (the
vault then holds exactly those secrets) or ``"resetVault": true`` (the vault is emptied first).

Graph's settings (``graph``, SANDBOX.md "Control"): ``transactionIdWindowSeconds`` (default 120) and
the change notifications' timeouts and retries (``seed.GRAPH_SETTINGS``).
The seed file's ``graph`` object sets them at start; a reset sets them from its body's ``graph``
object, and a reset without one restores the defaults (the sandbox's choice: a reset puts a test
back on known ground, like the tenants it replaces); ``PATCH /_sandbox/graph`` changes them in
between (``sandbox.graph.control``).

Sign-in sessions (``sessions``, ``sandbox.sessions``): the browsers' sessions with the consent and
sign-in pages. A reset ends them all, since the accounts they name are replaced with the tenants.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .seed import DEFAULT_IDENTITY_HEADER, GRAPH_SETTINGS, is_guid, validate_seed
from .sessions import SignInSessions

if TYPE_CHECKING:
    from .keyvault import VaultStore

# Namespace for the sandbox's deterministic ids (service principals, the managed identity).
SANDBOX_NAMESPACE = uuid.UUID("5a4d6b0e-7c1f-4f53-9a0e-3b7f0c2d9e11")
REQUEST_LOG_LIMIT = 100_000


def service_principal_id(tenant_id: str, client_id: str) -> str:
    """The object id of ``client_id``'s service principal in ``tenant_id`` (stable across runs)."""
    return str(uuid.uuid5(SANDBOX_NAMESPACE, f"servicePrincipal/{tenant_id.lower()}/{client_id.lower()}"))


def default_graph_settings() -> dict[str, Any]:
    return {name: default for name, (default, *_) in GRAPH_SETTINGS.items()}


class RequestLog:
    """Every request received outside ``/_sandbox/``: method, path, query, status, time, duration.

    Entries carry a running ``index`` that is never reused, also across ``clear()``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_LIMIT)
        self._next_index = 0

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._entries.append({"index": self._next_index, **entry})
            self._next_index += 1

    def since(self, index: int = 0) -> tuple[list[dict[str, Any]], int]:
        with self._lock:
            return [dict(e) for e in self._entries if e["index"] >= index], self._next_index

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class SandboxState:
    def __init__(self, seed: dict[str, Any], vault: VaultStore):
        """``seed``: a seed already validated with ``require_home=True``."""
        self.lock = threading.RLock()
        self.vault = vault
        self.home_tenant_id: str = seed["homeTenantId"]
        self.apps: dict[str, dict[str, Any]] = {}
        self.tenants: list[dict[str, Any]] = []
        self.managed_identity: dict[str, str] = {}
        self._managed_identity_config: dict[str, Any] = {}
        self.graph_settings: dict[str, Any] = default_graph_settings()
        self.sessions = SignInSessions()
        self._apply_graph(seed.get("graph"))
        self._apply_apps(seed.get("apps", []))
        self._apply_managed_identity(seed.get("managedIdentity"))
        self._apply_tenants(seed.get("tenants", []))
        self.reset_count = 0

    # -- loading and reset ---------------------------------------------------------------

    @classmethod
    def from_seed_file(cls, seed_path: Path, vault: VaultStore) -> SandboxState:
        raw = json.loads(seed_path.read_text(encoding="utf-8"))
        seed = validate_seed(raw, require_home=True)
        state = cls(seed, vault)
        # A restart keeps the persisted vault; the seed's secrets are only added where missing.
        vault.ensure_secrets(seed.get("vault", {}).get("secrets", {}))
        return state

    def reset(self, raw: Any) -> dict[str, Any]:
        """Apply a reset body (raises ``SeedError`` without changing anything on a bad body)."""
        with self.lock:
            current_ids = set(self.apps)
            seed = validate_seed(raw, require_home=False, current_app_ids=current_ids)
            if "homeTenantId" in seed:
                self.home_tenant_id = seed["homeTenantId"]
            if "apps" in seed:
                self._apply_apps(seed["apps"])
            if "managedIdentity" in seed or "homeTenantId" in seed:
                # The managed identity's default ids derive from the home tenant.
                self._apply_managed_identity(seed.get("managedIdentity", self._managed_identity_config))
            self._apply_tenants(seed.get("tenants", []))
            self.sessions.clear()
            self._apply_graph(seed.get("graph"))
            if seed.get("resetVault") or "vault" in seed:
                self.vault.clear()
            if "vault" in seed:
                self.vault.ensure_secrets(seed["vault"]["secrets"])
            self.reset_count += 1
            return {"homeTenantId": self.home_tenant_id, "apps": sorted(self.apps),
                    "tenants": [t["tenantId"] for t in self.tenants],
                    "vaultReset": bool(seed.get("resetVault") or "vault" in seed),
                    "graph": dict(self.graph_settings)}

    def _apply_graph(self, graph: dict[str, Any] | None) -> None:
        self.graph_settings = {**default_graph_settings(), **(graph or {})}

    def _apply_apps(self, apps: list[dict[str, Any]]) -> None:
        self.apps = {app["clientId"]: copy.deepcopy(app) for app in apps}

    def _apply_tenants(self, tenants: list[dict[str, Any]]) -> None:
        self.tenants = copy.deepcopy(tenants)

    def _apply_managed_identity(self, mi: dict[str, Any] | None) -> None:
        mi = mi or {}
        self._managed_identity_config = dict(mi)
        home = self.home_tenant_id
        self.managed_identity = {
            "identityHeader": mi.get("identityHeader") or DEFAULT_IDENTITY_HEADER,
            "principalId": mi.get("principalId") or str(uuid.uuid5(SANDBOX_NAMESPACE, f"mi/principal/{home}")),
            "clientId": mi.get("clientId") or str(uuid.uuid5(SANDBOX_NAMESPACE, f"mi/client/{home}")),
        }

    # -- lookups ---------------------------------------------------------------------------

    def app(self, client_id: str | None) -> dict[str, Any] | None:
        return self.apps.get((client_id or "").lower())

    def api_app(self, resource: str) -> dict[str, Any] | None:
        """The app that exposes an API (``identifierUri`` or ``appRoles``) under ``resource``: its
        application ID URI (case-insensitive) or its client id."""
        wanted = resource.lower()
        for app in self.apps.values():
            if not (app["identifierUri"] or app["appRoles"]):
                continue
            if wanted in {app["clientId"], (app["identifierUri"] or "").lower()}:
                return app
        return None

    def tenant(self, tenant_id: str) -> dict[str, Any] | None:
        """A tenant by GUID: a seeded customer tenant, or the home tenant (a bare entry if unseeded)."""
        tid = tenant_id.lower()
        for tenant in self.tenants:
            if tenant["tenantId"] == tid:
                return tenant
        if tid == self.home_tenant_id:
            return {"tenantId": tid, "domain": None, "displayName": "Home tenant", "consented": {},
                    "applicationAccessPolicy": {}, "groups": [], "users": []}
        return None

    def resolve_tenant(self, segment: str) -> dict[str, Any] | None:
        """The tenant a path segment names: a tenant GUID or a seeded tenant's domain."""
        if is_guid(segment):
            return self.tenant(segment)
        domain = segment.lower()
        for tenant in self.tenants:
            if tenant["domain"] == domain:
                return tenant
        return None

    def has_service_principal(self, tenant_id: str, client_id: str) -> bool:
        """Whether the app is present in the tenant: its home tenant, or one that consented to it."""
        if tenant_id == self.home_tenant_id and client_id in self.apps:
            return True
        tenant = self.tenant(tenant_id)
        return bool(tenant and client_id in tenant["consented"])

    def application_roles(self, tenant_id: str, client_id: str) -> list[str]:
        tenant = self.tenant(tenant_id)
        grant = tenant["consented"].get(client_id) if tenant else None
        return list(grant["application"]) if grant else []
