"""The consent flow: a consent link for the web app, the redirect to Microsoft, and the callback.

A callback is believed only when it is proven. Anyone holding a consent link can read a valid
`state` off the redirect's `Location` and call the callback by hand, and in domain mode an
app-only token shows only that *someone* consented in the tenant. So, in order of the checks:
- `state` is 32 random bytes, minted on each visit to the redirect (link scanners and reloads
  don't use the request up), stored only as its SHA-256, bound to the request (and so to the
  tenant, the organization and the kind of consent), single-use (deleted with an ETag when it
  comes back), and expiring with the request (15 minutes).
- The browser: the redirect sets a cookie of our own (`tenkc_consent`: 32 random bytes, HttpOnly,
  SameSite=Lax, Path /api/consent, Secure on https), and each state stores the SHA-256 of it. A
  callback without the matching cookie is refused before anything is used up, so a link holder
  firing callbacks cannot spend the real admin's request either.
- `error` is read before anything else Microsoft sends (it arrives beside `admin_consent=True`).
- Admin consent is then proven by the admin's own sign-in in the same browser: the callback of
  Microsoft's consent page sends the browser on through the authorization code flow (PKCE, a
  nonce, `openid profile`, `prompt=none`; on login_required / interaction_required /
  consent_required once more with `prompt=select_account`). The ID token must be of the tenant
  (`tid`) and hold a directory role in `wids` that may grant the consent asked for. Its tokens
  are used for nothing else: no refresh token kept, no member connected.
- A domain-wide consent is then proven to work by an app-only token whose `roles` hold the
  calendar permission, before the tenant is `enabled`.
- Ownership (see `_take_ownership`): the first proven admin consent makes its organization the
  owner; one proven through another organization's claim made before that ownership, from a
  link opened after it, moves the tenant (the tenant's admin chose again); one whose link was
  opened before the ownership ended answers 409 (it lost the race).
- The request is claimed with an ETag by the first callback with a valid state and cookie, so
  only one consent can ever act on it; a callback that fails changes nothing else (no tenant
  status, no token), and the admin starts again from 10KC. Its outcome is kept on the request for
  the status route and added to the link back.
- Pages carry our own sentences and at most Microsoft's AADSTS code, never its text; no token,
  code, state or cookie reaches a log line or a page.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import azure.functions as func

from consent import pages
from shared import validation as v
from shared.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    InvalidRequest,
    NotFound,
    TenantNotEnabled,
    WrongMode,
)
from shared.http import utc_stamp
from shared.members import MemberTokens
from shared.settings import Settings, origin_of
from shared.storage import ConsentRequest, ConsentState, Repositories, Tenant, backoff, utcnow
from shared.tokens import CALENDAR_ROLES, IdentityError, TokenProvider, token_claims

log = logging.getLogger(__name__)

REQUEST_LIFETIME = timedelta(minutes=15)
SIGN_IN_LIFETIME = timedelta(minutes=10)  # the admin's proof sign-in, after Microsoft's consent page
COOKIE = "tenkc_consent"  # the sandbox's session cookie has another name: cookie jars ignore ports
COOKIE_PATH = "/api/consent"
CONSENT_FIELDS = {"kind", "returnUrl", "loginHint"}
# What Microsoft sends when the admin or member did not grant access (403); anything else is a
# failure on Microsoft's side (502).
DECLINED_ERRORS = frozenset({"access_denied", "consent_required", "interaction_required", "invalid_grant"})
PROPAGATION_WAIT_SECONDS = 30.0
# prompt=none could not sign the admin in silently: ask once more, letting them pick the account.
SIGN_IN_AGAIN_ERRORS = frozenset({"login_required", "interaction_required", "consent_required"})
# Directory role template ids (learn.microsoft.com/entra/identity/role-based-access-control/
# permissions-reference) that may grant tenant-wide admin consent (learn.microsoft.com/entra/
# identity/enterprise-apps/grant-admin-consent): application permissions to Microsoft Graph only
# Global Administrator and Privileged Role Administrator; delegated ones also Cloud Application
# Administrator and Application Administrator.
GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
PRIVILEGED_ROLE_ADMINISTRATOR = "e8611ab8-c189-46e8-94e1-60213ab1f814"
CLOUD_APPLICATION_ADMINISTRATOR = "158c047a-c907-4556-b7ef-446551a6b5f7"
APPLICATION_ADMINISTRATOR = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"
CONSENT_ROLES = {
    "domain": frozenset({GLOBAL_ADMINISTRATOR, PRIVILEGED_ROLE_ADMINISTRATOR}),
    "delegated": frozenset({GLOBAL_ADMINISTRATOR, PRIVILEGED_ROLE_ADMINISTRATOR, CLOUD_APPLICATION_ADMINISTRATOR,
                            APPLICATION_ADMINISTRATOR}),
}
_AADSTS = re.compile(r"AADSTS(\d{4,9})")


def _hash(state: str) -> str:
    return hashlib.sha256(state.encode("utf-8")).hexdigest()


def cookie_of(header: str | None) -> str | None:
    """Our binding cookie's value from a Cookie header, or None."""
    if not header or len(header) > 8192:
        return None
    jar = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and 0 < len(morsel.value) <= 128 else None


def outcome_url(return_url: str, status: str, tenant_id: str, request_id: str) -> str:
    """`returnUrl` with `consent`, `tenantId` and `consentRequestId` added to its own query."""
    parts = urlsplit(return_url)
    ours = {"consent", "tenantId", "consentRequestId"}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in ours]
    query += [("consent", status), ("tenantId", tenant_id), ("consentRequestId", request_id)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


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


@dataclass(frozen=True)
class Party:
    """The organization a consent request is for, as it stands to the tenant."""

    name: str  # shown on the pages
    mode: str
    owns_enabled: bool  # it owns the tenant and the tenant is enabled (members may connect)


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

    def create_request(self, tenant: Tenant, organization_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """A consent link for the organization's view of the tenant (its own, or its open claim)."""
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
                                 organizationId=organization_id, createdAt=now)
        self.repos.store.insert(request)
        redirect = f"{self.settings.public_base_url}/api/consent/redirect?{urlencode({'request': request.requestId})}"
        return {"consentRequestId": request.requestId, "redirectUrl": redirect,
                "expiresAt": utc_stamp(request.expiresAt)}

    # -- GET /api/tenants/{tenantId}/consent/{consentRequestId} ---------------------------------------

    def request_status(self, tenant: Tenant, organization_id: str, request_id: str) -> dict[str, Any]:
        request = self.repos.consent_request(request_id)
        if request is None or request.tenantId != tenant.tenantId or request.organizationId != organization_id:
            raise NotFound("No consent request with this id for this tenant.", target="consentRequestId")
        status = request.status
        if status == "pending" and request.expiresAt <= self.clock():
            status = "expired"
        return {"consentRequestId": request.requestId, "kind": request.kind, "status": status,
                "completedAt": utc_stamp(request.completedAt), "reason": request.reason}

    # -- GET /api/consent/redirect -------------------------------------------------------------------

    def redirect(self, request_id: str | None) -> func.HttpResponse:
        request = self.repos.consent_request(request_id) if request_id and len(request_id) <= 128 else None
        if request is None:
            return pages.unknown_request()
        if request.usedAt is not None or request.expiresAt <= self.clock():
            return pages.expired(self._back(request, "expired"))
        party = self._party(request)
        if party is None or (request.kind == "user" and not party.owns_enabled):
            return self._owned_elsewhere_page(request)
        mode = party.mode
        state, binding = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self.clock()
        flow_json = None
        if request.kind == "admin":
            location = self._admin_consent_url(request.tenantId, mode, state)
        else:
            flow = self.tokens.start_auth_code_flow(request.tenantId, state=state, login_hint=request.loginHint)
            location = flow["auth_uri"]
            flow_json = json.dumps(flow)
        self.repos.store.insert(ConsentState(stateHash=_hash(state), requestId=request.requestId,
                                             tenantId=request.tenantId, kind=request.kind, step="consent",
                                             browserHash=_hash(binding), visitedAt=now, mode=mode,
                                             expiresAt=request.expiresAt, flow=flow_json, createdAt=now))
        headers = dict(pages.SECURITY_HEADERS)
        headers["Location"] = location
        lifetime = int((request.expiresAt - now).total_seconds() + SIGN_IN_LIFETIME.total_seconds())
        headers["Set-Cookie"] = self._cookie(binding, lifetime)
        return func.HttpResponse(status_code=302, headers=headers)

    def _cookie(self, value: str, max_age: int) -> str:
        secure = "; Secure" if self.settings.public_base_url.startswith("https://") else ""
        return f"{COOKIE}={value}; Max-Age={max(max_age, 0)}; Path={COOKIE_PATH}; HttpOnly; SameSite=Lax{secure}"

    def _admin_consent_url(self, tenant_id: str, mode: str, state: str) -> str:
        graph = self.settings.graph_resource
        if mode == "domain":
            scope = f"{graph}/.default"  # the registration's application permissions
        else:
            # Named delegated scopes: `.default` would also grant the application permissions.
            scope = " ".join([*self.tokens.delegated_scopes, "offline_access", "openid", "profile"])
        query = urlencode({"client_id": self.settings.app_client_id, "scope": scope,
                           "redirect_uri": self.settings.consent_callback_url, "state": state})
        return f"{self.settings.authority_host}/{tenant_id}/v2.0/adminconsent?{query}"

    def _party(self, request: ConsentRequest) -> Party | None:
        """The request's organization as it stands to the tenant now: its owned tenant, or its
        claim (open, or made before another organization's ownership, which a proven consent may
        still move); None when it has neither."""
        owner = self.repos.tenant(request.tenantId)
        if owner is not None and owner.organizationId == request.organizationId:
            return Party(owner.organizationName, owner.mode, owner.status == "enabled")
        claim = self.repos.claim(request.tenantId, request.organizationId)
        if claim is None:
            return None
        if owner is not None and not (claim.createdAt and owner.owned_since and claim.createdAt < owner.owned_since):
            return None
        return Party(claim.organizationName, claim.mode, False)

    def _back(self, request: ConsentRequest, status: str) -> str:
        return outcome_url(request.returnUrl, status, request.tenantId, request.requestId)

    def _owned_elsewhere_page(self, request: ConsentRequest) -> func.HttpResponse:
        return pages.owned_elsewhere(self._back(request, "failed"))

    # -- GET /api/consent/callback ---------------------------------------------------------------------

    def callback(self, params: dict[str, str], cookie_header: str | None) -> func.HttpResponse:
        answer, used = self._callback(params, cookie_header)
        if used and answer.status_code != 302:  # this browser's visit has ended: it may forget the binding
            answer.headers["Set-Cookie"] = self._cookie("", 0)
        return answer

    def _callback(self, params: dict[str, str], cookie_header: str | None) -> tuple[func.HttpResponse, bool]:
        """The answer, and whether this browser's state was used (so its visit is over unless the
        answer sends it on)."""
        state = params.get("state") or ""
        record = self.repos.consent_state(_hash(state)) if 0 < len(state) <= 512 else None
        request = self.repos.consent_request(record.requestId) if record else None
        if record is None or request is None:
            log.warning("consent callback with an unknown state")
            return pages.forged_state(), False
        binding = cookie_of(cookie_header)
        if binding is None or not record.browserHash or not hmac.compare_digest(_hash(binding), record.browserHash):
            # Not the browser that opened the link: nothing is used up, the real one may still come.
            log.warning("consent callback without the cookie of the browser that opened the link")
            return pages.forged_state(), False
        # The state is single-use whatever happens next.
        if not self.repos.store.delete(record):
            return pages.forged_state(), False
        if record.expiresAt <= self.clock():
            return pages.expired(self._back(request, "expired")), True
        if record.step == "sign_in":
            return self._signed_in(request, record, params), True
        if request.usedAt is not None or request.expiresAt <= self.clock():
            return pages.expired(self._back(request, "expired")), True
        # The first callback with a valid state and cookie uses the request up, whatever Microsoft
        # answered: a declined or failed consent starts again from 10KC with a new link.
        if not self._claim(request):
            return pages.expired(self._back(request, "expired")), True
        party = self._party(request)
        if party is None:
            self._finish(request, "failed", "tenant_owned_elsewhere")
            return self._owned_elsewhere_page(request), True
        organization = party.name

        error = params.get("error")
        if error:
            code = self._aadsts(params.get("error_description"))
            log.info("consent callback: Microsoft answered %s (%s)", error[:64], code)
            if error in DECLINED_ERRORS:
                self._finish(request, "declined", "access_denied")
                return pages.declined(organization, self._back(request, "declined"), code), True
            self._finish(request, "failed", "upstream_error")
            return pages.upstream_failed(organization, self._back(request, "failed"), code), True
        if request.kind == "admin":
            return self._admin_consented(request, record, organization, params), True
        return self._member_connected(request, record, party, params), True

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

    def _finish(self, request: ConsentRequest, status: str, reason: str | None) -> None:
        """Keep the request's outcome for the status route (once)."""
        def record(current: ConsentRequest) -> ConsentRequest | None:
            if current.status != "pending":
                return None
            current.status, current.reason, current.completedAt = status, reason, self.clock()
            return current

        self.repos.store.modify(ConsentRequest, request.partition_key, request.row_key, record)
        log.info("consent request ended: %s (%s)", status, reason or "-")

    def _failed(self, request: ConsentRequest, organization: str, reason: str,
                code: str | None = None) -> func.HttpResponse:
        self._finish(request, "failed", reason)
        return pages.upstream_failed(organization, self._back(request, "failed"), code)

    # -- admin consent: Microsoft's page, then the admin's own sign-in ------------------------------

    def _admin_consented(self, request: ConsentRequest, record: ConsentState, organization: str,
                         params: dict[str, str]) -> func.HttpResponse:
        named = (params.get("tenant") or "").strip().lower()
        if named != request.tenantId.lower():
            log.warning("admin consent came back for another tenant than requested")
            self._finish(request, "failed", "wrong_tenant")
            return pages.wrong_tenant(organization, self._back(request, "failed"))
        if (params.get("admin_consent") or "").lower() != "true":
            return self._failed(request, organization, "upstream_error")
        return self._sign_in(request, record, organization, prompt="none")

    def _sign_in(self, request: ConsentRequest, record: ConsentState, organization: str, *,
                 prompt: str) -> func.HttpResponse:
        """Send the browser through the admin's own sign-in in the tenant (the proof)."""
        state = secrets.token_urlsafe(32)
        try:
            flow = self.tokens.start_sign_in(request.tenantId, state=state, prompt=prompt)
        except IdentityError as error:
            log.warning("starting the admin's sign-in failed: %s", error)
            return self._failed(request, organization, "upstream_error", error.aadsts)
        now = self.clock()
        self.repos.store.insert(ConsentState(stateHash=_hash(state), requestId=request.requestId,
                                             tenantId=request.tenantId, kind=request.kind, step="sign_in",
                                             browserHash=record.browserHash, prompt=prompt, mode=record.mode,
                                             visitedAt=record.visitedAt or record.createdAt,
                                             expiresAt=now + SIGN_IN_LIFETIME, flow=json.dumps(flow), createdAt=now))
        headers = dict(pages.SECURITY_HEADERS)
        headers["Location"] = flow["auth_uri"]
        return func.HttpResponse(status_code=302, headers=headers)

    def _signed_in(self, request: ConsentRequest, record: ConsentState, params: dict[str, str]) -> func.HttpResponse:
        party = self._party(request)
        if party is None:
            self._finish(request, "failed", "tenant_owned_elsewhere")
            return self._owned_elsewhere_page(request)
        organization, mode = party.name, party.mode
        error = params.get("error")
        if error:
            code = self._aadsts(params.get("error_description"))
            log.info("admin sign-in: Microsoft answered %s (%s)", error[:64], code)
            if error in SIGN_IN_AGAIN_ERRORS and record.prompt == "none":
                return self._sign_in(request, record, organization, prompt="select_account")
            if error in DECLINED_ERRORS or error in SIGN_IN_AGAIN_ERRORS:
                self._finish(request, "declined", "access_denied" if error == "access_denied" else "not_signed_in")
                return pages.declined(organization, self._back(request, "declined"), code)
            return self._failed(request, organization, "upstream_error", code)
        signed_in = self._redeemed(request, organization, self.tokens.finish_sign_in, record, params, "admin's")
        if isinstance(signed_in, func.HttpResponse):
            return signed_in
        claims, _ = signed_in
        roles = {str(role).lower() for role in claims.get("wids") or () if isinstance(role, str)}
        wanted = record.mode or mode
        if not roles & CONSENT_ROLES.get(wanted, frozenset()):
            log.warning("the account that signed in may not grant this consent (no admin role in wids)")
            self._finish(request, "failed", "not_an_admin")
            return pages.not_an_admin(organization, self._back(request, "failed"))
        if wanted == "domain":
            failure = self._prove_app_consent(request.tenantId)
            if failure is not None:
                self._finish(request, "failed", "upstream_error")
                return failure(organization, self._back(request, "failed"))
        visited = record.visitedAt or record.createdAt or self.clock()
        outcome = self._take_ownership(request, wanted, visited)
        if outcome == "owned_elsewhere":
            self._finish(request, "failed", "tenant_owned_elsewhere")
            return self._owned_elsewhere_page(request)
        if outcome == "mode_changed":
            return self._failed(request, organization, "tenant_changed")
        self._finish(request, "completed", None)
        log.info("admin consent completed and proven (mode %s)", wanted)
        return pages.admin_enabled(organization, self._back(request, "completed"))

    def _redeemed(self, request: ConsentRequest, organization: str, redeem: Callable[..., dict[str, Any]],
                  record: ConsentState, params: dict[str, str], whose: str
                  ) -> tuple[dict[str, Any], dict[str, Any]] | func.HttpResponse:
        """Redeem a sign-in's code (the member's or the admin's): its ID token's claims and the
        whole result, or the page when Microsoft refused or the account is of another tenant."""
        try:
            result = redeem(request.tenantId, json.loads(record.flow or "{}"), dict(params))
        except IdentityError as error:
            log.warning("redeeming the %s sign-in failed: %s", whose, error)
            if error.error in DECLINED_ERRORS and not error.is_credential_error:
                self._finish(request, "declined", "access_denied")
                return pages.declined(organization, self._back(request, "declined"), error.aadsts)
            return self._failed(request, organization, "upstream_error", error.aadsts)
        claims = result.get("id_token_claims") or {}
        if str(claims.get("tid", "")).lower() != request.tenantId.lower():
            log.warning("the %s sign-in was with an account of another tenant", whose)
            self._finish(request, "failed", "wrong_tenant")
            return pages.wrong_tenant(organization, self._back(request, "failed"))
        return claims, result

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

    def _take_ownership(self, request: ConsentRequest, mode: str, visited: datetime) -> str:
        """After a proven admin consent through `request`'s organization: `enabled`, `owned_elsewhere`
        or `mode_changed`. With ETags throughout, so of racing consents exactly one makes the owner:
        - nobody owns the tenant: the organization's claim becomes the owner (insert; a lost race
          re-reads);
        - the organization owns it: enabled again;
        - another organization owns it: the tenant moves only when this organization's claim was
          made before that ownership and the admin opened this link after it (the admin chose
          again); the previous owner's members and their tokens are deleted, tokens first. A link
          opened before the ownership lost a race: 409."""
        tenant_id, organization = request.tenantId, request.organizationId
        for _ in range(20):
            now = self.clock()
            owner = self.repos.tenant(tenant_id)
            if owner is not None and owner.organizationId == organization:
                if owner.mode != mode:
                    return "mode_changed"
                was = owner.status
                owner.status, owner.consentedAt, owner.updatedAt = "enabled", now, now
                try:
                    self.repos.store.update(owner)
                except ConcurrencyConflict:
                    backoff()
                    continue
                if was != "enabled":
                    self._completed(owner)
                return "enabled"
            claim = self.repos.claim(tenant_id, organization)
            if claim is None:
                return "owned_elsewhere"
            if claim.mode != mode:
                return "mode_changed"
            fields = {"organizationId": organization, "organizationName": claim.organizationName, "mode": claim.mode,
                      "status": "enabled", "securityGroupId": claim.securityGroupId,
                      "defaultTimeZone": claim.defaultTimeZone, "consentedAt": now, "createdAt": claim.createdAt,
                      "updatedAt": now, "ownedAt": now}
            if owner is None:
                owned = Tenant(tenantId=tenant_id, **fields)
                try:
                    self.repos.store.insert(owned)
                except AlreadyExists:
                    backoff()
                    continue
                log.info("tenant owned through a proven admin consent")
                self._completed(owned)
                return "enabled"
            if not (claim.createdAt and owner.owned_since and claim.createdAt < owner.owned_since <= visited):
                return "owned_elsewhere"
            removed = self.members.remove_tenant_members(tenant_id)  # the previous owner's, tokens first
            moved = Tenant(tenantId=tenant_id, **fields)
            moved.etag = owner.etag
            try:
                self.repos.store.update(moved)
            except ConcurrencyConflict:
                backoff()
                continue
            removed += self.members.remove_tenant_members(tenant_id)  # any that connected meanwhile
            log.info("tenant moved to another organization by its admin's proven consent; %d member(s) removed",
                     removed)
            from sync.jobs import tenant_closed

            tenant_closed(tenant_id)  # the previous owner's subscriptions
            self._completed(moved)
            return "enabled"
        raise ConcurrencyConflict("the tenant kept changing")

    def _completed(self, tenant: Tenant) -> None:
        from sync.changes import record_tenant_status

        record_tenant_status(self.repos, tenant, "consent_completed")

    # -- a member's own connection (delegated) -------------------------------------------------------

    def _member_connected(self, request: ConsentRequest, record: ConsentState, party: Party,
                          params: dict[str, str]) -> func.HttpResponse:
        organization = party.name
        if not party.owns_enabled:
            return self._failed(request, organization, "tenant_not_enabled")
        if record.mode != "delegated" or not record.flow:
            return self._failed(request, organization, "upstream_error")
        signed_in = self._redeemed(request, organization, self.tokens.finish_auth_code_flow, record, params,
                                   "member's")
        if isinstance(signed_in, func.HttpResponse):
            return signed_in
        claims, result = signed_in
        user_id = claims.get("oid")
        # A member is known by all three: object id, UPN (`preferred_username`) and mail (`email`).
        upn = claims.get("preferred_username")
        email = claims.get("email") or upn
        refresh_token = result.get("refresh_token")
        if not user_id or not email or not refresh_token:
            return self._failed(request, organization, "upstream_error")
        self.members.connect(request.tenantId, str(user_id), str(email), refresh_token, upn=upn and str(upn),
                             now=self.clock())
        self._finish(request, "completed", None)
        log.info("member connected")
        return pages.member_connected(organization, self._back(request, "completed"))
