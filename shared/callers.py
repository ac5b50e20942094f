"""Who calls a server-to-server route, and for which 10KC organization.

Every route under `/api/tenants/{tenantId}` is declared with `@tenant_route`, which, in this order
and before anything else: takes the bearer token from `Authorization` (none: 401 with
`WWW-Authenticate: Bearer`), has it checked (`shared.access_tokens`: 401 for a bad token, 403 for a
caller that may not call), then reads `X-Organization-Id`, the 10KC organization the web app acts
for (missing or malformed: 400 with that target). The handler gets both as a `Caller`; it passes
the organization to every tenant lookup, so another organization's tenant answers exactly as an
unknown one (404 `tenant_not_found`).

What the service trusts the web app for, and what it never trusts: README, "Security model".
The token check imports PyJWT on the first request, never when the app loads.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import azure.functions as func

from shared.errors import Forbidden, InvalidRequest, Unauthenticated
from shared.http import Handler, endpoint

log = logging.getLogger(__name__)

ORGANIZATION_HEADER = "X-Organization-Id"
_ORGANIZATION = re.compile(r"^[A-Za-z0-9_.@+-]{1,128}$")


@dataclass(frozen=True)
class Caller:
    app_id: str  # the calling application (the token's azp), checked against ALLOWED_CALLER_APP_IDS
    organization_id: str  # the 10KC organization it acts for (X-Organization-Id)


def bearer_token(req: func.HttpRequest) -> str:
    """The token of `Authorization: Bearer <token>` (RFC 6750 section 2.1), else 401."""
    scheme, _, token = (req.headers.get("Authorization") or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated("A bearer token is required: Authorization: Bearer <access token from Microsoft "
                              "Entra ID for this API>.", token_sent=False)
    return token


def organization_of(req: func.HttpRequest) -> str:
    value = req.headers.get(ORGANIZATION_HEADER)
    if value is None or not value.strip():
        raise InvalidRequest(f"The header {ORGANIZATION_HEADER} is required: the 10KC organization this request "
                             "acts for.", target=ORGANIZATION_HEADER)
    if not _ORGANIZATION.match(value):
        raise InvalidRequest(f"{ORGANIZATION_HEADER} must be 1-128 characters of A-Z a-z 0-9 _ . @ + -.",
                             target=ORGANIZATION_HEADER)
    return value


def authenticate(req: func.HttpRequest) -> str:
    """The calling application's id, from a token the service accepts; else 401 / 403."""
    token = bearer_token(req)
    from shared.clients import caller_tokens

    try:
        return caller_tokens().verify(token)
    except Unauthenticated as refused:
        log.info("caller refused: %s", refused.message)
        raise
    except Forbidden as refused:
        log.warning("caller refused: %s", refused.message)
        raise


def tenant_route(handler: Callable[[func.HttpRequest, Caller], func.HttpResponse]) -> Handler:
    """`@endpoint` for a route under /api/tenants/{tenantId}: the caller is authenticated, then its
    organization read, before the handler sees the request."""

    def routed(req: func.HttpRequest) -> func.HttpResponse:
        app_id = authenticate(req)
        caller = Caller(app_id=app_id, organization_id=organization_of(req))
        log.info("caller app %s for organization %s", caller.app_id, caller.organization_id)
        return handler(req, caller)

    # The Functions worker binds parameters by the function's signature: it must stay (req).
    routed.__name__, routed.__qualname__ = handler.__name__, handler.__qualname__
    routed.__doc__, routed.__module__ = handler.__doc__, handler.__module__
    return endpoint(routed)
