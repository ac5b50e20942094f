"""The sandbox's own control endpoints, under ``/_sandbox/`` (never used by production code).

- ``GET /_sandbox/health`` -> ``{"status": "ok"}``.
- ``POST /_sandbox/reset`` with a seed body (see ``sandbox.state`` for what a reset replaces;
  Graph's settings come from the body's ``graph`` object, else go back to their defaults; every
  sign-in session ends; change-notification subscriptions, pending deliveries, notification
  faults and the notification log are cleared); a bad
  body is a 400 with a Graph-style error listing every problem, and changes nothing. Answers
  ``{"status": "reset", "homeTenantId", "apps", "tenants", "vaultReset", "graph"}``.
- ``GET /_sandbox/requests[?since=<index>]`` -> ``{"value": [{"index", "method", "path", "query",
  "status", "time", "durationMs", "clientRequestId"}], "nextIndex": n}``: the requests received
  outside ``/_sandbox/``; ``since`` keeps those with ``index >= since``; ``clientRequestId`` is
  the caller's ``client-request-id`` (or ``x-ms-client-request-id``) header, else one the
  sandbox made, as Graph echoes it. ``DELETE`` clears the log.
- ``POST /_sandbox/tenants/{tenant}/revoke`` (tenant GUID or domain; optional body
  ``{"clientId": "..."}``, default every app): withdraws the app's consent in the tenant
  (application and delegated grants, users' own consents; the service principal goes with them)
  and revokes the refresh tokens issued there. Then refresh tokens answer ``invalid_grant``
  AADSTS65001 and client credentials AADSTS700016 (see ``sandbox.identity``), and the app's
  change-notification subscriptions in the tenant pause until renewed or reauthorized
  (``sandbox.graph.subscriptions``). Answers
  ``{"tenantId", "revokedClientIds", "refreshTokensRevoked"}``.
- ``POST /_sandbox/users/{email}/revoke`` (``{email}``: any name of the user: mail, proxy
  address, UPN or id): revokes one user's refresh tokens and signs the user out of every
  browser's sign-in session (``sandbox.sessions``), as an admin's "revoke sessions" does; the
  refresh tokens then answer ``invalid_grant`` AADSTS50173, and ``prompt=none`` finds no session
  for the user. The user's delegated change-notification subscriptions pause until renewed or
  reauthorized. Answers ``{"userId", "tenantId", "refreshTokensRevoked", "signInSessionsEnded"}``.

- ``POST /_sandbox/keys/rotate``: a new token signing key, published at once in every tenant's
  JWKS (``/{tenant}/discovery/v2.0/keys``) beside the previous ones, signs every token from then
  on; tokens signed before stay valid until they expire. Answers ``{"kid": <the new key's kid>,
  "published": [kids, current first]}``.

Requests to ``/_sandbox/`` are never logged.
"""

from __future__ import annotations

from urllib.parse import unquote

from .grants import find_user, revoke_consent
from .seed import SeedError, is_guid
from .web import HttpError, Request, Response, Route, graph_error


def health(req: Request) -> Response:
    return Response.json(200, {"status": "ok"})


def reset(req: Request) -> Response:
    body = req.json(lambda message: graph_error(req, 400, "BadRequest", message))
    try:
        summary = req.sandbox.state.reset(body)
        req.sandbox.faults.clear()
        req.sandbox.subscriptions.reset()
    except SeedError as exc:
        message = "The seed is not valid: " + "; ".join(exc.problems)
        raise HttpError(graph_error(req, 400, "BadRequest", message)) from None
    return Response.json(200, {"status": "reset", **summary})


def list_requests(req: Request) -> Response:
    since_text = req.arg("since", "0") or "0"
    try:
        since = int(since_text)
    except ValueError:
        raise HttpError(graph_error(req, 400, "BadRequest", f"since must be an integer, not {since_text!r}")) from None
    entries, next_index = req.sandbox.request_log.since(since)
    return Response.json(200, {"value": entries, "nextIndex": next_index})


def clear_requests(req: Request) -> Response:
    req.sandbox.request_log.clear()
    return Response.empty(204)


def revoke_tenant(req: Request) -> Response:
    assert req.match is not None  # noqa: S101 - the route captures {tenant}
    segment = unquote(req.match.group("tenant"))
    body = req.json(lambda message: graph_error(req, 400, "BadRequest", message)) if req.body else {}
    client_id = body.get("clientId") if isinstance(body, dict) else None
    if not isinstance(body, dict) or (client_id is not None and not is_guid(client_id)) or set(body) - {"clientId"}:
        raise HttpError(graph_error(req, 400, "BadRequest", 'The body must be empty or {"clientId": "<GUID>"}.'))
    state = req.sandbox.state
    with state.lock:
        tenant = state.resolve_tenant(segment)
        if tenant is None or tenant not in state.tenants:
            raise HttpError(graph_error(req, 404, "NotFound", f"No seeded tenant '{segment}'."))
        client_id = client_id.lower() if client_id else None
        revoked = revoke_consent(tenant, client_id)
        tenant_id = tenant["tenantId"]
    count = sum(req.sandbox.grants.revoke_refresh_tokens(tenant_id=tenant_id, client_id=cid)
                for cid in ([client_id] if client_id else [None]))
    req.sandbox.subscriptions.pause(tenant_id, app_id=client_id)
    return Response.json(200, {"tenantId": tenant_id, "revokedClientIds": revoked, "refreshTokensRevoked": count})


def revoke_user(req: Request) -> Response:
    assert req.match is not None  # noqa: S101 - the route captures {email}
    email = unquote(req.match.group("email")).lower()
    state = req.sandbox.state
    with state.lock:
        found = [(t["tenantId"], u["id"]) for t in state.tenants if (u := find_user(t, email))]
    if not found:
        raise HttpError(graph_error(req, 404, "NotFound", f"No seeded user '{email}'."))
    tenant_id, user_id = found[0]
    count = req.sandbox.grants.revoke_refresh_tokens(tenant_id=tenant_id, user_id=user_id)
    sessions = state.sessions.end_for_user(tenant_id, user_id)
    req.sandbox.subscriptions.pause(tenant_id, user_id=str(user_id))
    return Response.json(200, {"userId": user_id, "tenantId": tenant_id, "refreshTokensRevoked": count,
                               "signInSessionsEnded": sessions})


def rotate_keys(req: Request) -> Response:
    keys = req.sandbox.pki.keys
    new = keys.rotate()
    return Response.json(200, {"kid": new.kid, "published": [key.kid for key in keys.published]})


ROUTES: list[Route] = [
    ("GET", r"/_sandbox/health", health),
    ("POST", r"/_sandbox/reset", reset),
    ("GET", r"/_sandbox/requests", list_requests),
    ("DELETE", r"/_sandbox/requests", clear_requests),
    ("POST", r"/_sandbox/tenants/(?P<tenant>[^/]+)/revoke", revoke_tenant),
    ("POST", r"/_sandbox/users/(?P<email>[^/]+)/revoke", revoke_user),
    ("POST", r"/_sandbox/keys/rotate", rotate_keys),
]
