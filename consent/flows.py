"""The consent flow: a consent link for the web app, the redirect to Microsoft, and the callback.

Security, in order of the callback's checks:
- `state` is 32 random bytes, minted on each visit to the redirect (link scanners and reloads
  don't use the request up), stored only as its SHA-256, bound to the request (and so to the
  tenant and the kind of consent), single-use (deleted with an ETag when it comes back), and
  expiring with the request (15 minutes).
- `error` is read before anything else Microsoft sends (it arrives beside `admin_consent=True`).
- The tenant Microsoft names (admin consent) or the ID token's `tid` (a member) must be the
  tenant the request was for; a domain-wide consent is proved by an app-only token whose
  `roles` hold the calendar permission before the tenant is `enabled`.
- The request is claimed with an ETag by the first callback with a valid state, so only one
  callback can ever act on it; a callback that fails changes nothing else (no tenant status, no
  token), and the admin starts again from 10KC.
- Pages carry our own sentences and at most Microsoft's AADSTS code, never its text; no token,
  code or state reaches a log line or a page.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

import azure.functions as func

from consent import pages
from shared import validation as v
from shared.errors import ConcurrencyConflict, InvalidRequest, TenantNotEnabled, WrongMode
from shared.http import utc_stamp
from shared.members import MemberTokens
from shared.settings import Settings, origin_of
from shared.storage import ConsentRequest, ConsentState, Repositories, Tenant, utcnow
from shared.tokens import CALENDAR_ROLES, IdentityError, TokenProvider, token_claims

log = logging.getLogger(__name__)

REQUEST_LIFETIME = timedelta(minutes=15)
CONSENT_FIELDS = {"kind", "returnUrl", "loginHint"}
# What Microsoft sends when the admin or member did not grant access (403); anything else is a
# failure on Microsoft's side (502).
DECLINED_ERRORS = frozenset({"access_denied", "consent_required", "interaction_required", "invalid_grant"})
PROPAGATION_WAIT_SECONDS = 30.0
_AADSTS = re.compile(r"AADSTS(\d{4,9})")


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def check_return_url(value: Any, allowed_origins: frozenset[str]) -> str:
    """An absolute https URL (http only on loopback) on an allowed origin, without user info,
    backslashes or control characters, at most 2,048 characters."""
    if not isinstance(value, str) or not value:
        raise InvalidRequest("returnUrl is required.", target="returnUrl")
    if len(value) > 2048 or "\\" in value or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        raise InvalidRequest("returnUrl must be a plain absolute URL of at most 2,048 characters.", target="returnUrl")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise InvalidRequest("returnUrl is not a valid URL.", target="returnUrl") from None
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password \
            or "@" in parts.netloc:
        raise InvalidRequest("returnUrl must be an absolute https URL without user info.", target="returnUrl")
    loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
    if parts.scheme == "http" and not loopback:
        raise InvalidRequest("returnUrl must use https.", target="returnUrl")
    if origin_of(value) not in allowed_origins:
        raise InvalidRequest("returnUrl is not on an allowed origin.", target="returnUrl")
    return value


class ConsentService:
    def __init__(self, settings: Settings, repos: Repositories, tokens: TokenProvider, members: MemberTokens,
                 *, clock: Callable[[], datetime] = utcnow, sleep: Callable[[float], None] = time.sleep) -> None:
        self.settings = settings
        self.repos = repos
        self.tokens = tokens
        self.members = members
        self.clock = clock
        self.sleep = sleep
        self.propagation_wait = PROPAGATION_WAIT_SECONDS

    # -- POST /api/tenants/{tenantId}/consent ------------------------------------------------------

    def create_request(self, tenant: Tenant, body: dict[str, Any]) -> dict[str, Any]:
        v.only_fields(body, CONSENT_FIELDS)
        kind = body.get("kind")
        if kind not in ("admin", "user"):
            raise InvalidRequest("kind must be 'admin' or 'user'.", target="kind")
        return_url = check_return_url(body.get("returnUrl"), self.settings.allowed_return_origins)
        login_hint = body.get("loginHint")
        if login_hint is not None:
            login_hint = v.email(login_hint, "loginHint")
        if kind == "user":
            if tenant.mode != "delegated":
                raise WrongMode("Members connect their own calendars only in a delegated tenant.", target="kind")
            if tenant.status != "enabled":
                raise TenantNotEnabled("The tenant's admin has not completed consent yet.")
        now = self.clock()
        request = ConsentRequest(requestId=secrets.token_urlsafe(24), tenantId=tenant.tenantId, kind=kind,
                                 returnUrl=return_url, loginHint=login_hint, expiresAt=now + REQUEST_LIFETIME,
                                 createdAt=now)
        self.repos.store.insert(request)
        redirect = f"{self.settings.public_base_url}/api/consent/redirect?{urlencode({'request': request.requestId})}"
        return {"consentRequestId": request.requestId, "redirectUrl": redirect,
                "expiresAt": utc_stamp(request.expiresAt)}

    # -- GET /api/consent/redirect -------------------------------------------------------------------

    def redirect(self, request_id: str | None) -> func.HttpResponse:
        request = self.repos.consent_request(request_id) if request_id and len(request_id) <= 128 else None
        if request is None:
            return pages.unknown_request()
        if request.usedAt is not None or request.expiresAt <= self.clock():
            return pages.expired(request.returnUrl)
        tenant = self.repos.tenant(request.tenantId)
        if tenant is None:
            return pages.unknown_request()
        state = secrets.token_urlsafe(32)
        flow_json = None
        if request.kind == "admin":
            location = self._admin_consent_url(tenant, state)
        else:
            flow = self.tokens.start_auth_code_flow(tenant.tenantId, state=state, login_hint=request.loginHint)
            location = flow["auth_uri"]
            flow_json = json.dumps(flow)
        self.repos.store.insert(ConsentState(stateHash=_hash(state), requestId=request.requestId,
                                             tenantId=tenant.tenantId, kind=request.kind,
                                             expiresAt=request.expiresAt, flow=flow_json, createdAt=self.clock()))
        headers = dict(pages.SECURITY_HEADERS)
        headers["Location"] = location
        return func.HttpResponse(status_code=302, headers=headers)

    def _admin_consent_url(self, tenant: Tenant, state: str) -> str:
        graph = self.settings.graph_resource
        if tenant.mode == "domain":
            scope = f"{graph}/.default"  # the registration's application permissions
        else:
            # Named delegated scopes: `.default` would also grant the application permissions.
            scope = " ".join([*self.tokens.delegated_scopes, "offline_access", "openid", "profile"])
        query = urlencode({"client_id": self.settings.app_client_id, "scope": scope,
                           "redirect_uri": self.settings.consent_callback_url, "state": state})
        return f"{self.settings.authority_host}/{tenant.tenantId}/v2.0/adminconsent?{query}"

    # -- GET /api/consent/callback ---------------------------------------------------------------------

    def callback(self, params: dict[str, str]) -> func.HttpResponse:
        state = params.get("state") or ""
        record = self.repos.consent_state(_hash(state)) if 0 < len(state) <= 512 else None
        request = self.repos.consent_request(record.requestId) if record else None
        tenant = self.repos.tenant(request.tenantId) if request else None
        if record is None or request is None or tenant is None:
            log.warning("consent callback with an unknown state")
            return pages.forged_state()
        # The state is single-use whatever happens next.
        if not self.repos.store.delete(record):
            return pages.forged_state()
        if request.usedAt is not None or request.expiresAt <= self.clock():
            return pages.expired(request.returnUrl)
        # The first callback with a valid state uses the request up, whatever Microsoft answered:
        # a declined or failed consent starts again from 10KC with a new link.
        if not self._claim(request):
            return pages.expired(request.returnUrl)
        organization, back = tenant.organizationName, request.returnUrl

        error = params.get("error")
        if error:
            code = self._aadsts(params.get("error_description"))
            log.info("consent callback: Microsoft answered %s (%s)", error[:64], code)
            if error in DECLINED_ERRORS:
                return pages.declined(organization, back, code)
            return pages.upstream_failed(organization, back, code)
        if request.kind == "admin":
            return self._admin_consented(tenant, request, params)
        return self._member_connected(tenant, request, record, params)

    def _aadsts(self, description: str | None) -> str | None:
        found = _AADSTS.search(description or "")
        return f"AADSTS{found.group(1)}" if found else None

    def _claim(self, request: ConsentRequest) -> bool:
        request.usedAt = self.clock()
        try:
            self.repos.store.update(request)
        except ConcurrencyConflict:
            return False
        return True

    def _admin_consented(self, tenant: Tenant, request: ConsentRequest, params: dict[str, str]) -> func.HttpResponse:
        named = (params.get("tenant") or "").strip().lower()
        if named != tenant.tenantId.lower():
            log.warning("admin consent came back for another tenant than requested")
            return pages.wrong_tenant(tenant.organizationName, request.returnUrl)
        if (params.get("admin_consent") or "").lower() != "true":
            return pages.upstream_failed(tenant.organizationName, request.returnUrl, None)
        if tenant.mode == "domain":
            failure = self._prove_app_consent(tenant.tenantId)
            if failure is not None:
                return failure(tenant.organizationName, request.returnUrl)
        self._enable(tenant.tenantId)
        log.info("admin consent completed (mode %s)", tenant.mode)
        return pages.admin_enabled(tenant.organizationName, request.returnUrl)

    def _prove_app_consent(self, tenant_id: str) -> Callable[[str, str], func.HttpResponse] | None:
        """Get a new app-only token for the tenant whose `roles` hold the calendar permission,
        retrying for up to 30 s while the consent propagates. None when proved."""
        deadline = time.monotonic() + self.propagation_wait
        delay = 1.0
        last: IdentityError | None = None
        while True:
            try:
                result = self.tokens.app_token(tenant_id, fresh=True)
                roles = set(token_claims(result.get("access_token", "")).get("roles") or ())
                if roles >= CALENDAR_ROLES:
                    return None
                last = IdentityError("missing_roles")
            except IdentityError as error:
                last = error
                if not error.is_consent_error:
                    log.warning("proving consent failed: %s", error)
                    code = error.aadsts
                    return lambda org, back: pages.upstream_failed(org, back, code)
            if time.monotonic() + delay > deadline:
                break
            self.sleep(delay)
            delay = min(delay * 2, 8.0)
        log.warning("consent not visible after %.0fs: %s", self.propagation_wait, last)
        return lambda org, back: pages.upstream_failed(org, back, last.aadsts if last else None)

    def _enable(self, tenant_id: str) -> None:
        def enable(tenant: Tenant) -> Tenant:
            tenant.status = "enabled"
            tenant.consentedAt = tenant.updatedAt = self.clock()
            return tenant

        self.repos.store.modify(Tenant, tenant_id, "tenant", enable)

    def _member_connected(self, tenant: Tenant, request: ConsentRequest, record: ConsentState,
                          params: dict[str, str]) -> func.HttpResponse:
        if tenant.mode != "delegated" or not record.flow:
            return pages.upstream_failed(tenant.organizationName, request.returnUrl, None)
        try:
            result = self.tokens.finish_auth_code_flow(tenant.tenantId, json.loads(record.flow), dict(params))
        except IdentityError as error:
            log.warning("redeeming the member's code failed: %s", error)
            if error.error in DECLINED_ERRORS and not error.is_credential_error:
                return pages.declined(tenant.organizationName, request.returnUrl, error.aadsts)
            return pages.upstream_failed(tenant.organizationName, request.returnUrl, error.aadsts)
        claims = result.get("id_token_claims") or {}
        if str(claims.get("tid", "")).lower() != tenant.tenantId.lower():
            log.warning("member signed in with an account of another tenant")
            return pages.wrong_tenant(tenant.organizationName, request.returnUrl)
        user_id = claims.get("oid")
        # A member is known by all three: object id, UPN (`preferred_username`) and mail (`email`).
        upn = claims.get("preferred_username")
        email = claims.get("email") or upn
        refresh_token = result.get("refresh_token")
        if not user_id or not email or not refresh_token:
            return pages.upstream_failed(tenant.organizationName, request.returnUrl, None)
        self.members.connect(tenant.tenantId, str(user_id), str(email), refresh_token, upn=upn and str(upn),
                             now=self.clock())
        log.info("member connected")
        return pages.member_connected(tenant.organizationName, request.returnUrl)
