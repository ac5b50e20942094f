"""Tenants (one Entra tenant, owned by one 10KC organization) and their members' connections."""

from __future__ import annotations

import logging
from typing import Any

from shared import validation as v
from shared.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    InvalidRequest,
    TenantOwnedElsewhere,
    WrongMode,
)
from shared.http import utc_stamp
from shared.members import MemberTokens
from shared.storage import ConnectedUser, Repositories, Tenant, backoff, utcnow

log = logging.getLogger(__name__)

MODES = ("domain", "delegated")
TENANT_FIELDS = {"organizationId", "organizationName", "mode", "securityGroupId", "defaultTimeZone"}


def tenant_view(tenant: Tenant, users: list[ConnectedUser]) -> dict[str, Any]:
    return {
        "tenantId": tenant.tenantId,
        "organizationId": tenant.organizationId,
        "organizationName": tenant.organizationName,
        "mode": tenant.mode,
        "status": tenant.status,
        "securityGroupId": tenant.securityGroupId,
        "defaultTimeZone": tenant.defaultTimeZone,
        "consentedAt": utc_stamp(tenant.consentedAt),
        "updatedAt": utc_stamp(tenant.updatedAt),
        "connectedUsers": sum(1 for u in users if u.status == "connected"),
        "usersNeedingReconnect": sum(1 for u in users if u.status == "needs_reconnect"),
    }


def member_view(user: ConnectedUser | None, asked: str) -> dict[str, Any]:
    if user is None:
        is_email = "@" in asked
        return {"userId": None if is_email else asked, "email": asked.lower() if is_email else None,
                "status": "not_connected", "connectedAt": None, "lastRefreshAt": None}
    return {"userId": user.userId, "email": user.email, "status": user.status,
            "connectedAt": utc_stamp(user.connectedAt), "lastRefreshAt": utc_stamp(user.lastRefreshAt)}


class TenantService:
    def __init__(self, repos: Repositories, members: MemberTokens) -> None:
        self.repos = repos
        self.members = members

    def require(self, tenant_id: str, organization_id: str) -> Tenant:
        """The organization's tenant, or 404 (also when another organization owns it)."""
        return self.repos.require_tenant(tenant_id, organization_id=organization_id)

    def register(self, tenant_id: str, organization_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create (True) or update (False) the organization's tenant from a PUT body. The body's
        `organizationId`, when given, must be the organization the caller acts for."""
        v.only_fields(body, TENANT_FIELDS)
        if body.get("organizationId") is not None:
            named = v.plain_id(body.get("organizationId"), "organizationId")
            if named != organization_id:
                raise InvalidRequest("organizationId must be the organization of the X-Organization-Id header "
                                     "(or be left out).", target="organizationId")
        mode = body.get("mode")
        if mode not in MODES:
            raise InvalidRequest("mode must be 'domain' or 'delegated'.", target="mode")
        name = v.string(body, "organizationName", default=organization_id, min_length=1, max_length=200)
        time_zone = v.time_zone(body.get("defaultTimeZone") or "UTC", "defaultTimeZone")
        group = body.get("securityGroupId")
        if group is not None:
            if not isinstance(group, str):
                raise InvalidRequest("securityGroupId must be a GUID or null.", target="securityGroupId")
            group = v.guid(group, "securityGroupId")
            if mode != "domain":
                raise WrongMode("securityGroupId applies to domain-wide tenants only.", target="securityGroupId")

        now = utcnow()
        for _ in range(20):
            current = self.repos.tenant(tenant_id)
            if current is None:
                tenant = Tenant(tenantId=tenant_id, organizationId=organization_id, organizationName=name or "",
                                mode=mode, securityGroupId=group, defaultTimeZone=time_zone, createdAt=now,
                                updatedAt=now)
                try:
                    self.repos.store.insert(tenant)
                except AlreadyExists:
                    continue
                log.info("tenant registered (mode %s)", mode)
                return tenant_view(tenant, []), True
            if current.organizationId != organization_id:
                raise TenantOwnedElsewhere("This tenant is connected to another 10KC organization.",
                                           target="organizationId")
            if current.mode != mode:
                current.status = "pending_consent"  # a new mode needs its own consent
                current.consentedAt = None
            current.mode, current.organizationName = mode, name or ""
            current.securityGroupId, current.defaultTimeZone, current.updatedAt = group, time_zone, now
            try:
                self.repos.store.update(current)
            except ConcurrencyConflict:
                backoff()
                continue
            return tenant_view(current, list(self.repos.users(tenant_id))), False
        raise ConcurrencyConflict("the tenant kept changing")

    def view(self, tenant_id: str, organization_id: str) -> dict[str, Any]:
        tenant = self.require(tenant_id, organization_id)
        return tenant_view(tenant, list(self.repos.users(tenant_id)))

    def disconnect(self, tenant_id: str, organization_id: str) -> None:
        """Status `disabled`, every stored token deleted, bookings kept. Idempotent."""
        self.require(tenant_id, organization_id)

        def disable(tenant: Tenant) -> Tenant | None:
            if tenant.status == "disabled":
                return None
            tenant.status, tenant.updatedAt = "disabled", utcnow()
            return tenant

        self.repos.store.modify(Tenant, tenant_id, "tenant", disable)
        count = self.members.disconnect_tenant(tenant_id)
        log.info("tenant disconnected; %d stored token(s) deleted", count)

    def _member(self, tenant_id: str, user_id: str) -> ConnectedUser | None:
        return self.repos.member(tenant_id, user_id)  # object id, UPN or e-mail

    def member(self, tenant_id: str, organization_id: str, user_id: str) -> dict[str, Any]:
        self.require(tenant_id, organization_id)
        return member_view(self._member(tenant_id, user_id), user_id)

    def disconnect_member(self, tenant_id: str, organization_id: str, user_id: str) -> None:
        self.require(tenant_id, organization_id)
        user = self._member(tenant_id, user_id)
        if user is not None:
            self.members.disconnect(tenant_id, user.userId)
