"""The consent pages: ``GET|POST /{tenant}/v2.0/adminconsent`` (admin consent) and
``GET|POST /{tenant}/oauth2/v2.0/authorize`` (the authorization code flow's user sign-in and consent).

A GET answers a 200 HTML page with exactly one ``<form method="post">`` posting back to the same
path: hidden inputs carry the request's parameters, a ``<select name="account">`` lists the
tenant's users by e-mail (every seeded tenant's users for ``organizations`` / ``common``; the
one the ``login_hint`` names ``selected``: by UPN, as Microsoft's sign-in takes it, or by any
other name of the user), and two buttons ``name="action"``: ``accept`` and ``cancel``.
No other inputs. The POST of that form answers a 302 to the (registered) ``redirect_uri``:

- admin consent, accept: ``admin_consent=True&tenant=<GUID>&scope=<granted>&state=...``
  (learn.microsoft.com/entra/identity-platform/v2-admin-consent, "Successful response"). With
  ``https://graph.microsoft.com/.default`` the app's statically configured permissions are
  granted, application AND delegated ones, as that page documents for ``/.default`` ("request
  consent for all scopes found in the required permissions (both user and app)"); with named
  scopes, those delegated ones, tenant-wide. ``scope`` lists what was granted, Graph permissions
  with the resource prefix. Where some user of the tenant holds a directory role (``isAdmin``, or
  ``roles`` in the seed), only a user whose roles allow it may accept (``may_grant_admin_consent``
  of ``sandbox.grants``, after learn.microsoft.com/entra/identity/enterprise-apps/
  grant-admin-consent): Global or Privileged Role Administrator for anything; Cloud Application
  or Application Administrator for delegated permissions only (the app's application permissions
  are Microsoft Graph app roles, which those roles may not grant, so ``.default`` with any is
  refused them). Anyone else gets ``admin_consent=True&error=access_denied&error_description=AADSTS90094: ...``
  (AdminConsentRequired; learn.microsoft.com/entra/identity/enterprise-apps/
  application-sign-in-unexpected-user-consent-error). A tenant where nobody holds a role lets
  anyone accept (SANDBOX.md).
- authorize, accept: the user consents for themselves to the named delegated scopes and the app
  gets ``code=<code>&state=...`` (v2-oauth2-auth-code-flow, "Successful response"; only
  ``response_mode=query``). A tenant seeded with ``"allowUserConsent": false`` refuses a user whose
  scopes are not already granted, unless the user may grant delegated permissions tenant-wide
  (the roles above): ``error=access_denied``, AADSTS90093 (same page).
- cancel: ``error=access_denied&error_description=AADSTS65004: User declined to consent to access
  the app. ...&state=...``, with ``admin_consent=True`` first for admin consent (v2-admin-consent,
  "Error response": ``admin_consent`` is there on errors too). The sandbox's choice: that page's
  example shows ``error=consent_required``; SANDBOX.md fixes ``access_denied`` (RFC 6749 4.1.2.1,
  the auth code flow's "Resource owner denied consent").

Sign-in sessions (``sandbox.sessions``; SANDBOX.md "Sign-in sessions, as Microsoft keeps them"):
Accept with an account of the tenant signs that account in to the browser, whatever the consent
outcome (the user did sign in): the answer sets the cookie ``sandbox_estsauth`` (``Path=/; Secure;
HttpOnly; SameSite=None``; an opaque id, a name distinct from any cookie of the service). Cancel
sets none. The ``prompt`` parameter of ``/authorize`` (v2-oauth2-auth-code-flow: "Valid values are
login, none, consent, and select_account"):

- ``login``, ``select_account``, ``consent``, or none at all: the page, as above, session or not
  (the sandbox's page is its sign-in, account picker and consent prompt at once).
- ``none``: never a page. The session's accounts are narrowed to the tenant of the path (any
  seeded tenant for ``organizations`` / ``common``) and, with a ``login_hint``, to the account it
  names (any of its names). Exactly one must remain, else a 302 to the redirect URI with
  ``error=login_required&error_description=AADSTS50058: ...&state=...`` ("Too many or no users
  found": no session, another tenant's account, a ``login_hint`` naming someone else, or more than
  one account and no hint; AADSTS50058 UserInformationNotProvided "might be returned to the
  application if prompt=none is specified", reference-error-codes). That account must need no
  consent: the app's service principal must exist in its tenant (else even ``openid`` needs
  consent) and every named Graph scope be granted to the user (tenant-wide or their own; the
  OpenID Connect scopes need none); else ``error=interaction_required&error_description=
  AADSTS65001: ...`` ("Another authentication step or consent is required. Retry the request
  without prompt=none", the page's table of authorization endpoint errors, which documents no
  ``consent_required``; a client should treat both, and ``login_required``, as "ask
  interactively"). Then the answer is the same ``code=...&state=...`` as Accept would give (the
  code bound to the nonce and the PKCE challenge alike), and no consent is recorded.
- any other value, or several at once: a 400 error page AADSTS90023 "Unsupported 'prompt' value."
  (InvalidRequest in reference-error-codes; the text Microsoft answers for ``prompt=consent
  select_account`` or the v1-only ``admin_consent``, as reported in
  github.com/AzureAD/passport-azure-ad/issues/331 and github.com/keycloak/keycloak/issues/15092).

The admin consent endpoint takes no ``prompt``: it is always a page.

Before any page, the request is checked; a bad one gets a 400 HTML error page, never a redirect
(so never to an unregistered URI): unknown tenant AADSTS90002, missing parameter AADSTS900144,
unknown client AADSTS700016, no ``redirect_uri`` AADSTS900971, ``redirect_uri`` not registered for
the app (exact match) AADSTS50011, ``response_type`` not ``code`` AADSTS70005, ``response_mode``
not ``query`` AADSTS70007, an unsupported ``prompt`` AADSTS90023, a bad ``scope`` AADSTS70011, a
``code_challenge`` of the wrong size AADSTS501491, an unknown ``code_challenge_method``
AADSTS90100; on POST, an account not in the tenant AADSTS50034. PKCE follows Microsoft: optional
for these confidential clients, ``S256`` or ``plain`` (the default without
``code_challenge_method``), and verified at redemption when given.
Codes are issued by ``sandbox.grants`` (opaque, single-use, 10 minutes, bound to client,
redirect URI, user, scopes, PKCE challenge and nonce).
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlencode

from .grants import (
    GrantStore,
    consented_scopes,
    find_user,
    grant_for_user,
    grant_tenant_wide,
    may_grant_admin_consent,
    tenant_has_admin,
)
from .identity import MULTI_TENANT_SEGMENTS, ScopeError, ScopeRequest, graph_scope_string, parse_scope
from .seed import user_keys
from .sessions import SESSION_COOKIE, set_cookie_header
from .web import HttpError, Request, Response, Route

__all__ = ["ROUTES", "GrantStore"]  # server.Sandbox makes its GrantStore through this module

# RFC 7636 section 4.2: code_challenge is 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
_CODE_CHALLENGE_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_FORM_CONTROLS = {"account", "action"}
# The prompt values of learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow; one at a time.
PROMPTS = ("login", "none", "consent", "select_account")
_OIDC_LABELS = {"openid": "Sign you in", "profile": "View your basic profile", "email": "View your email address",
                "offline_access": "Maintain access to data you have given it access to"}
_PAGE_HEADERS = [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache"), ("X-Frame-Options", "DENY")]


@dataclass
class ConsentRequest:
    admin: bool                       # adminconsent (True) or authorize (False)
    path: str
    tenant: dict[str, Any] | None     # None for organizations / common
    app: dict[str, Any]
    redirect_uri: str
    scope: ScopeRequest
    params: dict[str, str]            # the request's parameters, carried as hidden inputs

    @property
    def state(self) -> str | None:
        return self.params.get("state")


# -- pages -----------------------------------------------------------------------------------------

def _e(value: str) -> str:
    return html.escape(value, quote=True)


def _error_page(req: Request, code: int, message: str) -> HttpError:
    timestamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    text = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in error</title></head>\n"
            f"<body><main><h1>Sorry, but we're having trouble signing you in.</h1>\n"
            f"<p class=\"error\" id=\"error\">AADSTS{code}: {_e(message)}</p>\n"
            f"<p class=\"details\">Request Id: {_e(req.request_id)}<br>Correlation Id: {_e(req.client_request_id)}"
            f"<br>Timestamp: {timestamp}</p></main></body></html>\n")
    return HttpError(Response.html(400, text, [*_PAGE_HEADERS, ("x-ms-request-id", req.request_id)]))


def _accounts(req: Request, tenant: dict[str, Any] | None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(tenant, user) pairs the page offers: the tenant's users, or every seeded tenant's."""
    state = req.sandbox.state
    tenants = [tenant] if tenant is not None else state.tenants
    return [(t, u) for t in tenants for u in t.get("users", []) if u.get("mail")]


def _permission_items(cr: ConsentRequest) -> list[str]:
    items = []
    if cr.admin and cr.scope.default:
        items += [f"{p} (application permission, Microsoft Graph)" for p in cr.app["permissions"]["application"]]
    items += [f"{p} (delegated permission, Microsoft Graph)" for p in cr.scope.scopes]
    items += [f"{_OIDC_LABELS[s]} ({s})" for s in cr.scope.oidc]
    return items


def _consent_page(req: Request, cr: ConsentRequest) -> Response:
    with req.sandbox.state.lock:
        accounts = [(u["mail"], u["displayName"], user_keys(u)) for _, u in _accounts(req, cr.tenant)]
    hint = (cr.params.get("login_hint") or "").strip().lower()
    options = "\n".join(
        f"<option value=\"{_e(mail)}\"{' selected' if hint in keys else ''}>{_e(name)} ({_e(mail)})</option>"
        for mail, name, keys in accounts)
    hidden = "\n".join(f"<input type=\"hidden\" name=\"{_e(k)}\" value=\"{_e(v)}\">" for k, v in cr.params.items())
    permissions = "\n".join(f"<li>{_e(item)}</li>" for item in _permission_items(cr))
    app_name = _e(cr.app["displayName"])
    where = _e(cr.tenant.get("displayName") or cr.tenant["tenantId"]) if cr.tenant else "your organization"
    if cr.admin:
        intro = (f"<p><strong>{app_name}</strong> asks an administrator to grant it these permissions for every "
                 f"user of {where}. Accepting consents on behalf of your organization.</p>")
    else:
        intro = f"<p><strong>{app_name}</strong> would like to:</p>"
    text = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Permissions requested - {app_name}</title></head>\n<body><main>\n"
            f"<h1>Permissions requested</h1>\n<p class=\"app\" id=\"app\">{app_name}</p>\n{intro}\n"
            f"<ul class=\"permissions\" id=\"permissions\">\n{permissions}\n</ul>\n"
            f"<form method=\"post\" action=\"{_e(cr.path)}\">\n{hidden}\n"
            f"<label for=\"account\">Account</label>\n<select name=\"account\" id=\"account\">\n{options}\n</select>\n"
            f"<button type=\"submit\" name=\"action\" value=\"accept\">Accept</button>\n"
            f"<button type=\"submit\" name=\"action\" value=\"cancel\">Cancel</button>\n"
            f"</form>\n</main></body></html>\n")
    return Response.html(200, text, [*_PAGE_HEADERS, ("x-ms-request-id", req.request_id)])


# -- validation ------------------------------------------------------------------------------------

def _request_params(req: Request) -> dict[str, str]:
    source = req.form() if req.method == "POST" else {k: v[0] for k, v in req.query.items()}
    return {k: v for k, v in source.items() if k not in _FORM_CONTROLS}


def _validate(req: Request, *, admin: bool) -> ConsentRequest:
    state = req.sandbox.state
    params = _request_params(req)
    assert req.match is not None  # noqa: S101 - consent routes always capture {tenant}
    segment = unquote(req.match.group("tenant"))
    with state.lock:
        tenant = None
        if segment.lower() not in MULTI_TENANT_SEGMENTS:
            tenant = state.resolve_tenant(segment)
            if tenant is None:
                raise _error_page(req, 90002, f"Tenant '{segment}' not found. Check to make sure you have the correct "
                                              "tenant ID and are signing into the correct cloud.")

        def required(name: str) -> str:
            value = params.get(name)
            if not value:
                raise _error_page(req, 900144, f"The request body must contain the following parameter: '{name}'.")
            return value

        client_id = required("client_id").lower()
        app = state.app(client_id)
        if app is None:
            where = (tenant.get("displayName") or tenant["tenantId"]) if tenant else segment
            raise _error_page(req, 700016, f"Application with identifier '{client_id}' was not found in the "
                                           f"directory '{where}'. This can happen if the application has not been "
                                           "installed by the administrator of the tenant or consented to by any user "
                                           "in the tenant. You may have sent your authentication request to the "
                                           "wrong tenant.")
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            raise _error_page(req, 900971, "No reply address provided.")
        if redirect_uri not in app["redirectUris"]:
            raise _error_page(req, 50011, f"The redirect URI '{redirect_uri}' specified in the request does not match "
                                          f"the redirect URIs configured for the application '{client_id}'. Make "
                                          "sure the redirect URI sent in the request matches one added to your "
                                          "application in the Azure portal.")
        if not admin:
            _validate_authorize(req, params, required)
        try:
            scope = parse_scope(required("scope"), app)
        except ScopeError as exc:
            raise _error_page(req, 70011, exc.message) from None
        app = dict(app)
    return ConsentRequest(admin=admin, path=req.path, tenant=tenant, app=app, redirect_uri=redirect_uri,
                          scope=scope, params=params)


def _validate_authorize(req: Request, params: dict[str, str], required: Any) -> None:
    response_type = required("response_type")
    if response_type != "code":
        raise _error_page(req, 70005, f"The response_type '{response_type}' is not supported: the sandbox answers "
                                      "the authorization code flow only (response_type=code).")
    response_mode = params.get("response_mode", "query")
    if response_mode != "query":
        raise _error_page(req, 70007, f"The response_mode '{response_mode}' is not supported: the sandbox answers "
                                      "with response_mode=query only.")
    prompt = params.get("prompt")
    if prompt is not None and prompt not in PROMPTS:
        raise _error_page(req, 90023, "Unsupported 'prompt' value.")
    challenge, method = params.get("code_challenge"), params.get("code_challenge_method")
    if method is not None and not challenge:
        raise _error_page(req, 900144, "The request body must contain the following parameter: 'code_challenge'.")
    if challenge is not None:
        if not _CODE_CHALLENGE_RE.fullmatch(challenge):
            raise _error_page(req, 501491, "Invalid size of Code_Challenge parameter.")
        if method not in (None, "S256", "plain"):
            raise _error_page(req, 90100, "The 'code_challenge_method' parameter is empty or not valid: use S256 "
                                          "(or plain).")


# -- answers ---------------------------------------------------------------------------------------

def _redirect(cr: ConsentRequest, pairs: list[tuple[str, str]]) -> Response:
    if cr.state is not None:
        pairs.append(("state", cr.state))
    separator = "&" if "?" in cr.redirect_uri else "?"
    return Response.redirect(cr.redirect_uri + separator + urlencode(pairs))


def _error_redirect(req: Request, cr: ConsentRequest, code: int, message: str,
                    error: str = "access_denied") -> Response:
    timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    description = (f"AADSTS{code}: {message}\r\nTrace ID: {req.request_id}\r\n"
                   f"Correlation ID: {req.client_request_id}\r\nTimestamp: {timestamp}")
    pairs = [("admin_consent", "True")] if cr.admin else []
    pairs += [("error", error), ("error_description", description)]
    return _redirect(cr, pairs)


def _chosen_account(req: Request, cr: ConsentRequest, account: str) -> tuple[dict[str, Any], dict[str, Any]]:
    for tenant, user in _accounts(req, cr.tenant):
        if user["mail"] == account.lower():
            return tenant, user
    raise _error_page(req, 50034, f"The user account {account!r} does not exist in the directory. To sign into this "
                                  "application, the account must be added to the directory.")


def _issue_code(req: Request, cr: ConsentRequest, tenant_id: str, user_id: str) -> Response:
    """The success redirect of the authorization code flow: ``code`` (bound to client, redirect
    URI, user, scopes, PKCE challenge and nonce) and ``state``."""
    challenge = cr.params.get("code_challenge")
    code = req.sandbox.grants.issue_code(
        client_id=cr.app["clientId"], redirect_uri=cr.redirect_uri, tenant_id=tenant_id, user_id=user_id,
        scopes=cr.scope.scopes, oidc_scopes=cr.scope.oidc, code_challenge=challenge,
        code_challenge_method=(cr.params.get("code_challenge_method") or "plain") if challenge else None,
        nonce=cr.params.get("nonce"))
    return _redirect(cr, [("code", code)])


def _needs_consent(req: Request, cr: ConsentRequest, tenant: dict[str, Any], user: dict[str, Any]) -> bool:
    """Whether the user would be asked to consent: the app is not in the tenant yet (no service
    principal: even ``openid`` alone needs consent then), or a named scope is not granted to the
    user (tenant-wide or their own). Caller holds state.lock."""
    client_id = cr.app["clientId"]
    if not req.sandbox.state.has_service_principal(tenant["tenantId"], client_id):
        return True
    held = consented_scopes(tenant, client_id, user["id"])
    return any(s.lower() not in held for s in cr.scope.scopes)


def _accept(req: Request, cr: ConsentRequest, account: str) -> tuple[Response, tuple[str, str]]:
    """The answer to Accept, and the account that signed in (the answer may still refuse consent:
    the user signed in all the same, so the caller starts the session either way)."""
    state = req.sandbox.state
    client_id = cr.app["clientId"]
    app_name = cr.app["displayName"]
    with state.lock:
        # The tenant as it is now (a reset since the page was validated replaces the tenant dicts).
        if cr.tenant is not None:
            cr.tenant = state.tenant(cr.tenant["tenantId"])
            if cr.tenant is None:
                raise _error_page(req, 90002, "The tenant was not found.")
        tenant, user = _chosen_account(req, cr, account)
        signed_in = (tenant["tenantId"], user["id"])
        tenant_name = tenant.get("displayName") or tenant["tenantId"]
        if cr.admin:
            application = list(cr.app["permissions"]["application"]) if cr.scope.default else []
            if tenant_has_admin(tenant) and not may_grant_admin_consent(user, graph_app_roles=bool(application)):
                return _error_redirect(req, cr, 90094, f"{app_name} needs permission to access resources in your "
                                                       "organization that only an admin can grant. Please ask an "
                                                       "admin to grant permission to this app before you can use "
                                                       "it."), signed_in
            grant_tenant_wide(tenant, client_id, application=application, delegated=cr.scope.scopes)
            granted = list(cr.scope.scopes) + [p for p in application if p not in cr.scope.scopes]
            scope = " ".join([graph_scope_string(granted), *cr.scope.oidc]).strip()
            return _redirect(cr, [("admin_consent", "True"), ("tenant", tenant["tenantId"]),
                                  ("scope", scope)]), signed_in
        held = consented_scopes(tenant, client_id, user["id"])
        needs_consent = any(s.lower() not in held for s in cr.scope.scopes)
        if (needs_consent and not tenant.get("allowUserConsent", True)
                and not may_grant_admin_consent(user, graph_app_roles=False)):
            return _error_redirect(req, cr, 90093, f"An administrator of {tenant_name} set a policy that prevents "
                                                   f"you from granting {app_name} the permissions it is requesting. "
                                                   f"Contact an administrator of {tenant_name}, who can grant "
                                                   "permissions to this app on your behalf."), signed_in
        grant_for_user(tenant, client_id, user["id"], cr.scope.scopes)
    return _issue_code(req, cr, *signed_in), signed_in


def _silent(req: Request, cr: ConsentRequest) -> Response:
    """``prompt=none``: a code at once for the one signed-in account that fits, else an error
    redirect, never a page (see the module docstring)."""
    state = req.sandbox.state
    session = state.sessions.accounts(req.cookie(SESSION_COOKIE))
    hint = (cr.params.get("login_hint") or "").strip().lower()
    with state.lock:
        candidates = []
        for tenant_id, user_id in session:
            tenant = next((t for t in state.tenants if t["tenantId"] == tenant_id), None)
            if tenant is None:
                continue
            if cr.tenant is not None and tenant["tenantId"] != cr.tenant["tenantId"]:
                continue
            user = find_user(tenant, user_id)
            if user is None or (hint and hint not in user_keys(user)):
                continue
            candidates.append((tenant, user))
        if len(candidates) != 1:
            if not session:
                why = "A silent sign-in request was sent but no user is signed in."
            elif not candidates:
                why = ("Session information isn't sufficient for single-sign-on: no user signed in to this browser "
                       + ("matches the login_hint" if hint else "belongs to this tenant") + ".")
            else:
                why = ("Session information isn't sufficient for single-sign-on: more than one user is signed in "
                       "to this browser; send a login_hint.")
            return _error_redirect(req, cr, 50058, why, error="login_required")
        tenant, user = candidates[0]
        if _needs_consent(req, cr, tenant, user):
            return _error_redirect(req, cr, 65001, f"The user or administrator has not consented to use the "
                                                   f"application with ID '{cr.app['clientId']}' named "
                                                   f"'{cr.app['displayName']}'. Send an interactive authorization "
                                                   "request for this user and resource.",
                                   error="interaction_required")
        tenant_id, user_id = tenant["tenantId"], user["id"]
    return _issue_code(req, cr, tenant_id, user_id)


def _handle(req: Request, *, admin: bool) -> Response:
    cr = _validate(req, admin=admin)
    if req.method != "POST":
        if not admin and cr.params.get("prompt") == "none":
            return _silent(req, cr)
        return _consent_page(req, cr)
    form = req.form()
    action = form.get("action")
    if action == "cancel":
        return _error_redirect(req, cr, 65004, "User declined to consent to access the app.")
    if action != "accept":
        raise _error_page(req, 90100, "The 'action' parameter is empty or not valid: submit the consent form with "
                                      "Accept or Cancel.")
    account = form.get("account")
    if not account:
        raise _error_page(req, 900144, "The request body must contain the following parameter: 'account'.")
    response, (tenant_id, user_id) = _accept(req, cr, account)
    session_id = req.sandbox.state.sessions.sign_in(req.cookie(SESSION_COOKIE), tenant_id, user_id)
    response.headers.append(set_cookie_header(session_id))
    return response


def admin_consent(req: Request) -> Response:
    return _handle(req, admin=True)


def authorize(req: Request) -> Response:
    return _handle(req, admin=False)


_TENANT = r"/(?P<tenant>[^/]+)"
ROUTES: list[Route] = [
    ("GET", rf"{_TENANT}/v2\.0/adminconsent", admin_consent),
    ("POST", rf"{_TENANT}/v2\.0/adminconsent", admin_consent),
    ("GET", rf"{_TENANT}/oauth2/v2\.0/authorize", authorize),
    ("POST", rf"{_TENANT}/oauth2/v2\.0/authorize", authorize),
]
