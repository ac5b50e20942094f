"""Delegated grants: authorization codes, refresh tokens, and the consent records they depend on.

``GrantStore`` (``sandbox.grants`` on the ``Sandbox`` object) keeps, in memory, the authorization
codes the consent pages issue and the refresh tokens the token endpoint issues. Neither is kept
in clear: both are opaque random strings, stored by their SHA-256 hash, and never logged. The
store's ``clock`` (``time.time`` by default) decides expiry, so in-process tests can move time on.

- Codes live ``CODE_LIFETIME`` (10 minutes: "Authorization codes are short lived. Typically, they
  expire after about 10 minutes", learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow)
  and are single-use: any redemption attempt by the client they were issued to consumes them.
- Refresh tokens live ``REFRESH_TOKEN_LIFETIME`` (90 days) and are bound to user + client.
  Each use answers a new one while the old one stays valid until revoked or expired ("Refresh
  tokens replace themselves with a fresh token upon every use. The Microsoft identity platform
  doesn't revoke old refresh tokens", learn.microsoft.com/entra/identity-platform/refresh-tokens).

Consent records live in the tenant dicts of ``SandboxState`` (so a reset, which replaces the
tenants, replaces them too): the tenant-wide grants in ``tenant["consented"][clientId]``
(``application`` and ``delegated`` lists, as in the seed) and each user's own consent in
``tenant["userConsents"][clientId][userId]`` (a list of delegated scopes). A ``consented`` entry
is also what makes the app's service principal exist in the tenant, so user consent creates an
empty one, as consenting creates the service principal in Entra ID. The helpers below expect
the caller to hold ``state.lock``.

Who may grant tenant-wide admin consent (``may_grant_admin_consent``), by the user's directory
roles (``seed.directory_roles``: ``isAdmin`` is Global Administrator, plus the seed's ``roles``), as
learn.microsoft.com/entra/identity/enterprise-apps/grant-admin-consent lists them: "Privileged Role
Administrator, for granting consent for apps requesting any permission, for any API" (and Global
Administrator, whose rights include it); "Cloud Application Administrator or Application
Administrator, for granting consent for apps requesting any permission for any API, except
Microsoft Graph app roles (application permissions)". The sandbox's application permissions are
all Microsoft Graph app roles, so those two roles may grant delegated permissions only. Newer
revisions of that page add an "AI Administrator"; the sandbox does not (the harsher reading), and
custom roles are not modelled. A tenant where no user holds any directory role
(``tenant_has_admin`` false) lets anyone grant admin consent, the sandbox's own rule for seeds
without admins (SANDBOX.md).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .seed import (
    APPLICATION_ADMINISTRATOR,
    CLOUD_APPLICATION_ADMINISTRATOR,
    GLOBAL_ADMINISTRATOR,
    PRIVILEGED_ROLE_ADMINISTRATOR,
    directory_roles,
    user_keys,
)

CODE_LIFETIME = 600
REFRESH_TOKEN_LIFETIME = 90 * 24 * 3600
# Codes and refresh tokens stay known this long past expiry, so that an expired one is told
# from an unknown one (AADSTS70008 / AADSTS700082 rather than "not valid"); then they are dropped.
_FORGET_AFTER = 24 * 3600


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuthorizationCode:
    client_id: str
    redirect_uri: str
    tenant_id: str
    user_id: str
    scopes: tuple[str, ...]          # Graph delegated permissions, e.g. ("Calendars.ReadWrite",)
    oidc_scopes: tuple[str, ...]     # openid / profile / email / offline_access asked for
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    issued_at: float
    expires_at: float
    redeemed: bool = False


@dataclass
class RefreshToken:
    client_id: str
    tenant_id: str
    user_id: str
    scopes: tuple[str, ...]
    oidc_scopes: tuple[str, ...]
    issued_at: float
    expires_at: float
    revoked: bool = False


@dataclass
class GrantStore:
    clock: Callable[[], float] = time.time
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _codes: dict[str, AuthorizationCode] = field(default_factory=dict, repr=False)
    _refresh_tokens: dict[str, RefreshToken] = field(default_factory=dict, repr=False)

    def now(self) -> float:
        return self.clock()

    # -- authorization codes ------------------------------------------------------------------

    def issue_code(self, *, client_id: str, redirect_uri: str, tenant_id: str, user_id: str,
                   scopes: Iterable[str], oidc_scopes: Iterable[str], code_challenge: str | None,
                   code_challenge_method: str | None, nonce: str | None) -> str:
        now = self.now()
        code = "1.sbx." + secrets.token_urlsafe(48)
        record = AuthorizationCode(client_id=client_id, redirect_uri=redirect_uri, tenant_id=tenant_id,
                                   user_id=user_id, scopes=tuple(scopes), oidc_scopes=tuple(oidc_scopes),
                                   code_challenge=code_challenge, code_challenge_method=code_challenge_method,
                                   nonce=nonce, issued_at=now, expires_at=now + CODE_LIFETIME)
        with self._lock:
            self._forget_old(now)
            self._codes[_digest(code)] = record
        return code

    def consume_code(self, code: str, client_id: str) -> AuthorizationCode | None:
        """The code's record as it was before this call (``redeemed`` tells a reuse), or None
        for an unknown code or one issued to another client. The code is consumed either way."""
        with self._lock:
            key = _digest(code)
            record = self._codes.get(key)
            if record is None or record.client_id != client_id:
                return None
            self._codes[key] = replace(record, redeemed=True)
            return record

    # -- refresh tokens ---------------------------------------------------------------------

    def issue_refresh_token(self, *, client_id: str, tenant_id: str, user_id: str, scopes: Iterable[str],
                            oidc_scopes: Iterable[str]) -> str:
        now = self.now()
        token = "1.sbx-rt." + secrets.token_urlsafe(64)
        record = RefreshToken(client_id=client_id, tenant_id=tenant_id, user_id=user_id, scopes=tuple(scopes),
                              oidc_scopes=tuple(oidc_scopes), issued_at=now, expires_at=now + REFRESH_TOKEN_LIFETIME)
        with self._lock:
            self._forget_old(now)
            self._refresh_tokens[_digest(token)] = record
        return token

    def refresh_token(self, token: str) -> RefreshToken | None:
        with self._lock:
            record = self._refresh_tokens.get(_digest(token))
            return replace(record) if record else None

    def revoke_refresh_tokens(self, *, tenant_id: str, client_id: str | None = None,
                              user_id: str | None = None) -> int:
        """Revoke the live refresh tokens of a tenant, narrowed to one client and/or one user."""
        count = 0
        with self._lock:
            for record in self._refresh_tokens.values():
                if (record.tenant_id == tenant_id and not record.revoked
                        and (client_id is None or record.client_id == client_id)
                        and (user_id is None or record.user_id == user_id)):
                    record.revoked = True
                    count += 1
        return count

    def _forget_old(self, now: float) -> None:
        for table in (self._codes, self._refresh_tokens):
            for key in [k for k, r in table.items() if r.expires_at + _FORGET_AFTER < now]:
                del table[key]


# -- consent records in the tenant dicts (caller holds state.lock) ------------------------------

def _merge(existing: list[str], added: Iterable[str]) -> list[str]:
    known = {s.lower() for s in existing}
    merged = list(existing)
    for scope in added:
        if scope.lower() not in known:
            merged.append(scope)
            known.add(scope.lower())
    return merged


def grant_tenant_wide(tenant: dict[str, Any], client_id: str, *, application: Iterable[str] = (),
                      delegated: Iterable[str] = ()) -> None:
    """Admin consent: add application and delegated grants for every user of the tenant."""
    grant = tenant["consented"].setdefault(client_id, {"application": [], "delegated": []})
    grant["application"] = _merge(grant["application"], application)
    grant["delegated"] = _merge(grant["delegated"], delegated)


def grant_for_user(tenant: dict[str, Any], client_id: str, user_id: str, scopes: Iterable[str]) -> None:
    """User consent: the user's own delegated grant (and the service principal, if missing)."""
    tenant["consented"].setdefault(client_id, {"application": [], "delegated": []})
    users = tenant.setdefault("userConsents", {}).setdefault(client_id, {})
    users[user_id] = _merge(users.get(user_id, []), scopes)


def consented_scopes(tenant: dict[str, Any], client_id: str, user_id: str) -> set[str]:
    """The delegated scopes (lower-cased) the app holds for this user: tenant-wide plus the user's own."""
    grant = tenant["consented"].get(client_id) or {}
    own = tenant.get("userConsents", {}).get(client_id, {}).get(user_id, [])
    return {s.lower() for s in [*grant.get("delegated", []), *own]}


def revoke_consent(tenant: dict[str, Any], client_id: str | None = None) -> list[str]:
    """Withdraw the app's (or every app's) grants in the tenant: application, delegated and the
    users' own. The service principal goes with them. Returns the client ids affected."""
    user_consents = tenant.get("userConsents", {})
    clients = sorted({*tenant["consented"], *user_consents}) if client_id is None else [client_id]
    affected = []
    for cid in clients:
        had = tenant["consented"].pop(cid, None) is not None
        had = user_consents.pop(cid, None) is not None or had
        if had:
            affected.append(cid)
    return affected


# Roles that may grant admin consent: for any permission, and for any but Microsoft Graph app roles.
CONSENT_ANY_PERMISSION_ROLES = frozenset({GLOBAL_ADMINISTRATOR, PRIVILEGED_ROLE_ADMINISTRATOR})
CONSENT_EXCEPT_GRAPH_APP_ROLES = frozenset({CLOUD_APPLICATION_ADMINISTRATOR, APPLICATION_ADMINISTRATOR})


def tenant_has_admin(tenant: dict[str, Any]) -> bool:
    """Whether any user of the tenant holds a directory role (``isAdmin`` or ``roles``)."""
    return any(directory_roles(user) for user in tenant.get("users", []))


def may_grant_admin_consent(user: dict[str, Any], *, graph_app_roles: bool) -> bool:
    """Whether the user's roles let them grant admin consent, for Microsoft Graph application
    permissions (``graph_app_roles``) or for delegated permissions only."""
    roles = set(directory_roles(user))
    allowed = set(CONSENT_ANY_PERMISSION_ROLES)
    if not graph_app_roles:
        allowed |= CONSENT_EXCEPT_GRAPH_APP_ROLES
    return bool(roles & allowed)


def find_user(tenant: dict[str, Any], key: str) -> dict[str, Any] | None:
    """A tenant's user by any name: id, UPN, mail or proxy address (case-insensitive)."""
    key = key.strip().lower()
    for user in tenant.get("users", []):
        if key in user_keys(user):
            return user
    return None
