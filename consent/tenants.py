"""Tenants (one Entra tenant, owned by one 10KC organization) and their members' connections."""

from __future__ import annotations

import base64
import json
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
from shared.storage import ConnectedUser, Repositories, Tenant, TenantClaim, backoff, utcnow

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

        fields = {"organizationName": name or "", "mode": mode, "securityGroupId": group,
                  "defaultTimeZone": time_zone}
        for _ in range(20):
            owner = self.repos.tenant(tenant_id)
            if owner is not None:
                if owner.organizationId != organization_id:
                    raise TenantOwnedElsewhere("This tenant is connected to another 10KC organization.",
                                               target="tenantId")
                if self._update(owner, fields):
                    return tenant_view(owner, list(self.repos.users(tenant_id))), False
                continue
            claim = self.repos.claim(tenant_id, organization_id)
            if claim is not None:
                if self._update(claim, fields):
                    return tenant_view(claim.as_tenant(), []), False
                continue
            now = utcnow()
            claim = TenantClaim(tenantId=tenant_id, organizationId=organization_id, createdAt=now, updatedAt=now,
                                **fields)
            try:
                self.repos.store.insert(claim)
            except AlreadyExists:
                continue
            if self._owned_before(claim):
                continue  # an owner appeared while the claim was written: the loop answers 409
            log.info("tenant claimed (mode %s)", mode)
            return tenant_view(claim.as_tenant(), []), True
        raise ConcurrencyConflict("the tenant kept changing")

    def _update(self, row: Tenant | TenantClaim, fields: dict[str, Any]) -> bool:
        """Write the PUT's fields onto the row read (its ETag); False when it changed meanwhile."""
        if row.mode != fields["mode"]:
            row.status = "pending_consent"  # a new mode needs its own consent
            if isinstance(row, Tenant):
                row.consentedAt = None
        for name, value in fields.items():
            setattr(row, name, value)
        row.updatedAt = utcnow()
        try:
            self.repos.store.update(row)
        except ConcurrencyConflict:
            backoff()
            return False
        return True

    def _owned_before(self, claim: TenantClaim) -> bool:
        """A claim written while another organization's consent made it the owner is not a claim
        "made before the ownership": it is withdrawn, and the PUT answers 409."""
        owner = self.repos.tenant(claim.tenantId)
        if owner is None or owner.organizationId == claim.organizationId:
            return False
        if owner.owned_since is not None and claim.createdAt is not None and claim.createdAt < owner.owned_since:
            return False
        self.repos.store.delete(claim, if_unchanged=False)
        return True

    def _members_of(self, tenant: Tenant) -> list[ConnectedUser]:
        """The members an organization may see: only the owner's (a claim has none)."""
        return list(self.repos.users(tenant.tenantId)) if tenant.owned else []

    def view(self, tenant_id: str, organization_id: str) -> dict[str, Any]:
        tenant = self.require(tenant_id, organization_id)
        return tenant_view(tenant, self._members_of(tenant))

    def disconnect(self, tenant_id: str, organization_id: str) -> None:
        """Status `disabled`, every stored token deleted, bookings kept. Idempotent. An open claim
        is disabled too (it has no tokens), and may be connected again."""
        tenant = self.require(tenant_id, organization_id)

        disabled: list[Any] = []

        def disable(row: Any) -> Any:
            disabled.clear()
            if row.status == "disabled" or row.organizationId != organization_id:
                return None
            row.status, row.updatedAt = "disabled", utcnow()
            disabled.append(row)
            return row

        if not tenant.owned:
            self.repos.store.modify(TenantClaim, tenant_id, TenantClaim.row_key_for(organization_id), disable)
            return
        self.repos.store.modify(Tenant, tenant_id, "tenant", disable)
        count = self.members.disconnect_tenant(tenant_id)
        log.info("tenant disconnected; %d stored token(s) deleted", count)
        if disabled:  # this call disabled it: the change is recorded once
            from sync.changes import record_tenant_status
            from sync.jobs import tenant_closed

            record_tenant_status(self.repos, disabled[0], "disconnected")
            tenant_closed(tenant_id)

    def _member(self, tenant: Tenant, user_id: str) -> ConnectedUser | None:
        if not tenant.owned:
            return None  # members connect only to an owned tenant
        return self.repos.member(tenant.tenantId, user_id)  # object id, UPN or e-mail

    def member(self, tenant_id: str, organization_id: str, user_id: str) -> dict[str, Any]:
        tenant = self.require(tenant_id, organization_id)
        return member_view(self._member(tenant, user_id), user_id)

    def disconnect_member(self, tenant_id: str, organization_id: str, user_id: str, *, erase: bool = False) -> str:
        """Disconnect the member (tokens deleted); with `erase`, also erase the person named (a member
        or not) from the tenant's bookings and changes (booking/erasure.py). Returns what happened:
        with `erase`, "done", or that a job carries on (recorded and queued before the answer)."""
        tenant = self.require(tenant_id, organization_id)
        user = self._member(tenant, user_id)
        if not erase:
            if user is not None:
                self.members.disconnect(tenant_id, user.userId)
            return "disconnected"
        if not tenant.owned:
            return "nothing to erase"  # an open claim: the organization holds none of the tenant's data
        from booking.erasure import INLINE_SECONDS, eraser

        work = eraser()
        aliases = {user.userId, user.email, user.upn or ""} if user is not None else set()
        erasure = work.begin(tenant_id, user_id, aliases)  # first: a retry finds it, a lost job is restarted
        if user is not None:
            self.members.disconnect(tenant_id, user.userId)
            work.forget_member(user)
        outcome = work.run(erasure, seconds=INLINE_SECONDS, inline=True)
        log.info("person erased from the tenant: %s", outcome)
        return outcome

    def members_page(self, tenant_id: str, organization_id: str, *, status: str | None, limit: int,
                     cursor: str | None) -> dict[str, Any]:
        """The members this service knows, by e-mail then object id, from after `cursor`. The
        cursor is opaque to callers (base64url JSON of the last member's e-mail and id, and the
        status filter it was made for)."""
        after = decode_cursor(cursor, status) if cursor else None
        tenant = self.require(tenant_id, organization_id)
        members = [u for u in self._members_of(tenant) if status is None or u.status == status]
        members.sort(key=lambda u: ((u.email or "").lower(), u.userId.lower()))
        if after is not None:
            members = [u for u in members if ((u.email or "").lower(), u.userId.lower()) > after]
        page = members[:limit]
        next_cursor = None
        if len(members) > limit:
            last = page[-1]
            next_cursor = encode_cursor((last.email or "").lower(), last.userId.lower(), status)
        return {"users": [member_view(u, u.userId) for u in page], "next": next_cursor}


MEMBER_STATUSES = ("connected", "needs_reconnect", "not_connected")


def encode_cursor(email: str, user_id: str, status: str | None) -> str:
    raw = json.dumps({"e": email, "i": user_id, "s": status}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, status: str | None) -> tuple[str, str]:
    """The (e-mail, id) a cursor continues after; 400 for anything this service did not make for
    the same filter."""
    try:
        if len(cursor) > 2048:
            raise ValueError
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(data, dict) or data.get("s") != status:
            raise ValueError
        email, user_id = data["e"], data["i"]
        if not isinstance(email, str) or not isinstance(user_id, str):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise InvalidRequest("cursor is not a cursor of this list (with this status filter).",
                             target="cursor") from None
    return email, user_id
