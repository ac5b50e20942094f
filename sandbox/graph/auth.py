"""Who is calling Graph, on which mailbox, and whether they may: the checks every Graph call
passes, in this order.

1. Bearer token (``verify_access_token``; audience ``https://graph.microsoft.com`` or Graph's app
   id ``00000003-0000-0000-c000-000000000000``): else 401 ``InvalidAuthenticationToken`` with
   Graph's messages ("Access token is empty.", "Lifetime validation failed, the token is
   expired.", "Access token validation failure. Invalid audience."; e.g.
   github.com/microsoftgraph/microsoft-graph-docs-contrib/issues/2362) and a ``WWW-Authenticate``
   challenge.
2. ``/me`` with an app-only token: 400 ``BadRequest`` "/me request is only valid with delegated
   authentication flow." (github.com/microsoftgraph/msgraph-sdk-php/issues/1163).
3. Permission: app-only tokens need a role in ``roles``, delegated ones a scope in ``scp``
   (Calendars.Read or Calendars.ReadWrite; writes need ReadWrite; getSchedule also takes
   Calendars.ReadBasic, findMeetingTimes the .Shared scopes); findMeetingTimes is delegated only.
   Else 403 ``ErrorAccessDenied`` "Access is denied. Check credentials and try again."
   (github.com/microsoftgraph/microsoft-graph-docs/issues/2341).
4. The path mailbox: a user of the token's tenant (``tid``) by object id or userPrincipalName,
   case-insensitive, on every ``/users/{x}`` route, as Microsoft documents the segment
   (``/users/{id | userPrincipalName}``, https://learn.microsoft.com/en-us/graph/api/user-get).
   Anything else, the user's mail when it differs from the UPN and proxy addresses included, is
   404 ``ErrorInvalidUser`` "The requested user '<x>' is invalid."
   (github.com/microsoftgraph/microsoft-graph-docs/issues/7909): Exchange may resolve an SMTP
   address there, but Microsoft does not document it, so the sandbox does not. ``/me`` is the
   token's ``oid``. A delegated caller reaches only its own mailbox (the sandbox's choice:
   calendars are not shared); another one is 403.
5. Application access policy (app-only): a path mailbox outside the policy's group is 403
   ``ErrorAccessDenied`` "Access to OData is disabled." (learn.microsoft.com/graph/auth-limit-mailbox-access).
6. Concurrency: more than 4 requests in flight for one mailbox from one app is 429
   ``ApplicationThrottled`` "Application is over its MailboxConcurrency limit." with
   ``Retry-After`` (learn.microsoft.com/graph/throttling-limits#outlook-service-limits).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from ..identity import GRAPH_APP_ID, GRAPH_RESOURCE, InvalidToken, verify_access_token
from ..web import HttpError, Request, Response, graph_error
from .common import fail
from .timezones import Preferences, parse_prefer

if TYPE_CHECKING:
    from .store import CalendarStore, Mailbox

GRAPH_AUDIENCES = (GRAPH_RESOURCE, GRAPH_RESOURCE + "/", GRAPH_APP_ID)
TOKEN_LEEWAY = 60  # verify_access_token's
VERIFIED_TOKEN_CACHE = 4096
RETRY_AFTER_SECONDS = 1  # the sandbox's choice: Microsoft gives no figure for MailboxConcurrency
ACCESS_DENIED = "Access is denied. Check credentials and try again."

READ = "read"
WRITE = "write"
SCHEDULE = "schedule"
FIND_TIMES = "findMeetingTimes"

APP_ROLES = {
    READ: {"calendars.read", "calendars.readwrite"},
    WRITE: {"calendars.readwrite"},
    SCHEDULE: {"calendars.readbasic", "calendars.read", "calendars.readwrite"},
    FIND_TIMES: set(),  # application permissions: "Not supported" (user-findmeetingtimes page)
}
DELEGATED_SCOPES = {
    READ: {"calendars.read", "calendars.readwrite", "calendars.read.shared", "calendars.readwrite.shared"},
    WRITE: {"calendars.readwrite", "calendars.readwrite.shared"},
    SCHEDULE: {"calendars.readbasic", "calendars.read", "calendars.readwrite", "calendars.read.shared",
               "calendars.readwrite.shared"},
    FIND_TIMES: {"calendars.read", "calendars.readwrite", "calendars.read.shared", "calendars.readwrite.shared"},
}


@dataclass
class Caller:
    claims: dict[str, Any]
    tenant_id: str
    app_id: str
    delegated: bool
    permissions: set[str] = field(default_factory=set)  # lower-cased roles or scopes

    @property
    def user_id(self) -> str | None:
        if not self.delegated:
            return None
        return str(self.claims.get("oid") or "").lower() or None


@dataclass
class GraphCall:
    """A checked call on one mailbox: handlers get this with the request."""

    req: Request
    caller: Caller
    store: CalendarStore
    mailbox: Mailbox
    segment: str  # the mailbox as the path named it ("me" or the id/UPN given)
    prefs: Preferences

    @property
    def user(self) -> dict[str, Any]:
        return self.mailbox.user

    @property
    def context_segment(self) -> str:
        """How ``@odata.context`` names the user: the path's id/UPN, or the id for /me."""
        return str(self.user["id"]) if self.segment == "me" else self.segment


def _unauthorized(req: Request, message: str) -> HttpError:
    challenge = (f'Bearer realm="", authorization_uri="{req.base_url}/common/oauth2/authorize", '
                 f'client_id="{GRAPH_APP_ID}"')
    return fail(req, 401, "InvalidAuthenticationToken", message, [("WWW-Authenticate", challenge)])


def _verified(req: Request, token: str) -> dict[str, Any]:
    """``verify_access_token``, remembering tokens that passed until they expire (a signature
    check per request would be most of a warm getSchedule's time)."""
    store: CalendarStore = req.sandbox.calendars
    cache = store.verified_tokens
    claims = cache.get(token)
    if claims is not None and claims["exp"] + TOKEN_LEEWAY > time.time():
        return claims
    claims = verify_access_token(req.sandbox, token, audiences=GRAPH_AUDIENCES)
    with store.lock:
        if len(cache) >= VERIFIED_TOKEN_CACHE:
            cache.clear()
        cache[token] = claims
    return claims


def authenticate(req: Request) -> Caller:
    """Check the bearer token; 401 otherwise."""
    header = req.header("authorization") or ""
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized(req, "Access token is empty.")
    try:
        claims = _verified(req, token)
    except InvalidToken as exc:
        messages = {
            "malformed": "IDX14100: JWT is not well formed, there are no dots (.).\nThe token needs to be in JWS or "
                         "JWE Compact Serialization Format.",
            "expired": "Lifetime validation failed, the token is expired.",
            "audience": "Access token validation failure. Invalid audience.",
        }
        raise _unauthorized(req, messages.get(exc.kind, "Access token validation failure.")) from None
    delegated = "scp" in claims
    if delegated:
        permissions = {s.lower() for s in str(claims.get("scp") or "").split()}
    else:
        permissions = {str(r).lower() for r in claims.get("roles") or []}
    return Caller(claims=claims, tenant_id=str(claims["tid"]).lower(), app_id=str(claims.get("appid") or
                  claims.get("azp") or "").lower(), delegated=delegated, permissions=permissions)


def check_permission(req: Request, caller: Caller, need: str) -> None:
    allowed = DELEGATED_SCOPES[need] if caller.delegated else APP_ROLES[need]
    if not caller.permissions & allowed:
        raise fail(req, 403, "ErrorAccessDenied", ACCESS_DENIED)


def policy_allows(req: Request, caller: Caller, user: dict[str, Any]) -> bool:
    """Whether the tenant's application access policy lets this app-only caller reach ``user``."""
    if caller.delegated:
        return True
    return access_policy_allows(req.sandbox.state, caller.tenant_id, caller.app_id, user)


def access_policy_allows(state: Any, tenant_id: str, app_id: str, user: dict[str, Any]) -> bool:
    """Whether the tenant's application access policy lets the app (app-only) reach ``user``."""
    tenant = state.tenant(tenant_id)
    if tenant is None:
        return True
    group_id = (tenant.get("applicationAccessPolicy") or {}).get(app_id)
    if not group_id:
        return True
    for group in tenant.get("groups") or []:
        if group.get("id") == group_id:
            members = {str(m).lower() for m in group.get("members") or []}
            return str(user["mail"]).lower() in members or str(user["id"]).lower() in members
    return False


def throttled(req: Request) -> Response:
    return graph_error(req, 429, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.",
                       [("Retry-After", str(RETRY_AFTER_SECONDS))])


def open_call(req: Request, need: str) -> GraphCall:
    """Run checks 1-5 for a route whose match has ``me`` or ``user``; return the call."""
    caller = authenticate(req)
    assert req.match is not None  # noqa: S101 - mailbox routes always match
    groups = req.match.groupdict()
    is_me = groups.get("user") is None
    if is_me and not caller.delegated:
        raise fail(req, 400, "BadRequest", "/me request is only valid with delegated authentication flow.")
    if need == FIND_TIMES and not caller.delegated:
        raise fail(req, 403, "ErrorAccessDenied", ACCESS_DENIED)
    check_permission(req, caller, need)
    store: CalendarStore = req.sandbox.calendars
    if is_me:
        segment = "me"
        user = store.path_user(caller.tenant_id, caller.user_id or "")
        if user is None:
            raise fail(req, 404, "ErrorInvalidUser", f"The requested user '{caller.claims.get('oid')}' is invalid.")
    else:
        segment = unquote(groups["user"])
        user = store.path_user(caller.tenant_id, segment)
        if user is None:
            raise fail(req, 404, "ErrorInvalidUser", f"The requested user '{segment}' is invalid.")
        if caller.delegated and str(user["id"]).lower() != caller.user_id:
            raise fail(req, 403, "ErrorAccessDenied", ACCESS_DENIED)
    if not policy_allows(req, caller, user):
        raise fail(req, 403, "ErrorAccessDenied", "Access to OData is disabled.")
    return GraphCall(req=req, caller=caller, store=store, mailbox=store.mailbox(user), segment=segment,
                     prefs=parse_prefer(req.header("prefer")))


def mailbox_route(need: str) -> Callable[[Callable[[GraphCall], Response]], Callable[[Request], Response]]:
    """Decorate ``handler(call)``: checks, then the handler inside a concurrency slot."""

    def wrap(handler: Callable[[GraphCall], Response]) -> Callable[[Request], Response]:
        def route(req: Request) -> Response:
            call = open_call(req, need)
            key = (call.caller.tenant_id, call.caller.app_id, call.mailbox.id)
            limiter = call.store.limiter
            if not limiter.try_acquire(key):
                return throttled(req)
            try:
                return handler(call)
            finally:
                limiter.release(key)

        route.__name__ = handler.__name__
        route.__doc__ = handler.__doc__
        return route

    return wrap
