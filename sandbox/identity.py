"""The Microsoft identity platform (Entra ID) under ``/{tenant}/...``, and the App Service
managed-identity endpoint at ``/msi/token``.

``{tenant}`` is a tenant GUID, a seeded tenant's domain, or ``organizations`` (``common`` is
accepted for discovery too, as Microsoft does).

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``: endpoints name the tenant's GUID (as
  Microsoft's do when asked by domain); for ``organizations`` the issuer holds the literal
  ``{tenantid}``. The issuer has the sandbox's own origin, so MSAL's ``oidc_authority`` check
  passes, and ``authority=`` + ``instance_discovery=False`` fetches this same document.
- ``GET /{tenant}/discovery/v2.0/keys`` (and ``/discovery/keys``): the JWKS (RS256, ``kid`` = ``x5t``).
- ``POST /{tenant}/oauth2/v2.0/token``: the grants in ``GRANTS``: ``client_credentials``,
  ``authorization_code`` (codes from the consent pages in ``sandbox.consent``) and
  ``refresh_token``. The client authenticates with a client secret (form or HTTP Basic) or a
  certificate ``client_assertion`` (RS256 with ``x5t``, or PS256 with ``x5t#S256`` as MSAL sends
  for ``public_certificate``). Delegated grants and their AADSTS codes: see ``_authorization_code``
  and ``_refresh_token``.
- ``GET /msi/token``: App Service / Functions managed identity (api-version 2019-08-01).

Access tokens for Microsoft's resources are v1-style RS256 JWTs (``iss``
``https://sts.windows.net/{tid}/``, ``appid``) signed by the current key in ``pki``: app-only ones
have ``idtyp: app`` and ``roles`` when any; delegated ones (Graph only) ``idtyp: user``, ``scp``
(space-separated, no resource prefix), ``oid`` (the user), ``upn``/``unique_name`` (the user's
userPrincipalName), ``name``.
``verify_access_token`` checks both kinds for the resource handlers, with any published key.
ID tokens are v2 (``iss`` ``<sandbox origin>/{tid}/v2.0``, ``aud`` the client id) with
``preferred_username`` = the userPrincipalName (the sign-in name, "the primary username that
represents the user",
https://learn.microsoft.com/en-us/entra/identity-platform/id-token-claims-reference)
and ``email`` = the mail; the two differ for a user whose seed gives another ``userPrincipalName``,
so a client must not take ``preferred_username`` for an e-mail address.

``wids`` in ID tokens ("the tenant-wide roles assigned to this user ... The groupMembershipClaims
property of the application manifest configures this claim on a per-application basis. Set the
claim to All or DirectoryRole", learn.microsoft.com/entra/identity-platform/
access-token-claims-reference): only when the app registration's ``groupMembershipClaims`` is
``"DirectoryRole"`` or ``"All"`` (``directory_claims``); then the user's role template ids
(``seed.directory_roles``: Global Administrator ``62e90394-69f5-4237-9190-012177145e10`` for
``isAdmin``, then the seed's ``roles``) followed by ``b79fbf4d-3ef9-4689-8143-76b194e85509``, the
built-in "User" role every member holds (permissions-reference lists it under "Roles not shown in
the portal"; Microsoft's own example token carries it beside Global Administrator,
learn.microsoft.com/troubleshoot/entra/entra-id/users-groups-entra-apis/
403-error-when-calling-microsoft-graph-security-api). So a user without an admin role still has a
``wids`` of that one id: a client must look for the role it needs, never take a present or
non-empty ``wids`` for an admin (the harsher reading of "claims are present only if a value exists
to fill it"). ``"All"`` also gives ``groups``: the ids of the tenant's seeded groups that list the
user, when there are any. Without the setting, no ``wids`` and no ``groups``. The sandbox's
delegated access tokens are Graph's and carry neither (a client must not read them anyway).

Callers of an API: an app may expose one (``identifierUri``, ``appRoles``) and another hold roles on
it (``roleAssignments``). Client credentials for ``scope=<identifierUri or client id>/.default``
answer a v2 access token (``issue_api_access_token``): in the home tenant with the home tenant's v2
issuer, in a customer tenant where the caller has a service principal with that tenant's issuer.
``https://graph.microsoft.com/.default`` answers any app of the home tenant a Graph token without
roles, as Microsoft issues one to any app. Sources: the access token claims reference
(learn.microsoft.com/entra/identity-platform/access-token-claims-reference), the client credentials
flow (learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow) and app roles
(learn.microsoft.com/entra/identity-platform/howto-add-app-roles-in-apps).

Signing keys (``pki.SigningKeys``): the JWKS publishes the current key and the previous ones; after
``POST /_sandbox/keys/rotate`` new tokens are signed with a new key (a new ``kid``) and tokens signed
before stay valid until they expire (learn.microsoft.com/entra/identity-platform/signing-key-rollover).

Errors have the identity platform's JSON shape (``error``, ``error_description`` with the
``AADSTSnnnn:`` prefix and the trace/correlation/timestamp lines, ``error_codes``, ``timestamp``,
``trace_id``, ``correlation_id``, ``error_uri``), per the "Handling error codes in your
application" section of learn.microsoft.com/entra/identity-platform/reference-error-codes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_plus, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .grants import consented_scopes, find_user
from .pki import b64url
from .seed import directory_roles, user_principal_name
from .state import service_principal_id
from .web import HttpError, Request, Response, Route

if TYPE_CHECKING:
    from .server import Sandbox

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
VAULT_RESOURCE = "https://vault.azure.net"
KNOWN_RESOURCES = {GRAPH_RESOURCE: GRAPH_RESOURCE, GRAPH_APP_ID: GRAPH_RESOURCE, VAULT_RESOURCE: VAULT_RESOURCE}
ACCESS_TOKEN_LIFETIME = 3599
ID_TOKEN_LIFETIME = 3600
MANAGED_IDENTITY_TOKEN_LIFETIME = 86399  # App Service managed-identity tokens live about 24 h
MULTI_TENANT_SEGMENTS = {"organizations", "common"}
RESERVED_SCOPES = {"openid", "profile", "offline_access", "email"}
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS256", "PS256")
CLOCK_SKEW = 300
# The built-in "User" directory role every member user holds (see the module docstring: wids).
MEMBER_USER_ROLE = "b79fbf4d-3ef9-4689-8143-76b194e85509"


# -- errors -------------------------------------------------------------------------------------

def aad_error(req: Request, status: int, error: str, code: int, description: str,
              extra: dict[str, Any] | None = None) -> Response:
    """An identity-platform error answer (AADSTS ``code``), as Microsoft's token endpoint sends it.
    ``extra`` adds fields such as ``suberror``."""
    now = datetime.now(UTC)
    timestamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    trace_id = req.request_id
    correlation_id = req.client_request_id
    body = {
        "error": error,
        "error_description": (f"AADSTS{code}: {description}\r\nTrace ID: {trace_id}\r\n"
                              f"Correlation ID: {correlation_id}\r\nTimestamp: {timestamp}"),
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
        **(extra or {}),
    }
    return Response.json(status, body, [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache"),
                                        ("x-ms-request-id", req.request_id)])


def _fail(req: Request, status: int, error: str, code: int, description: str,
          extra: dict[str, Any] | None = None) -> HttpError:
    return HttpError(aad_error(req, status, error, code, description, extra))


def _missing_parameter(req: Request, name: str) -> HttpError:
    return _fail(req, 400, "invalid_request", 900144,
                 f"The request body must contain the following parameter: '{name}'.")


# -- tokens -------------------------------------------------------------------------------------

class InvalidToken(Exception):
    """A bearer token the sandbox does not accept. ``kind``: malformed, signature, expired,
    audience or issuer."""

    def __init__(self, kind: str, detail: str, claims: dict[str, Any] | None = None):
        super().__init__(detail)
        self.kind, self.detail, self.claims = kind, detail, claims or {}

    def vault_message(self) -> str:
        if self.kind == "audience":
            return f"AKV10022: Invalid audience. Expected {VAULT_RESOURCE}, found: {self.claims.get('aud')}."
        return f"Unauthorized: the bearer token is not valid ({self.detail})."


def issue_access_token(sandbox: Sandbox, *, tenant_id: str, audience: str, appid: str, oid: str,
                       app_display_name: str, roles: Iterable[str] = (), appidacr: str = "1",
                       lifetime: int = ACCESS_TOKEN_LIFETIME, extra: dict[str, Any] | None = None) -> tuple[str, int]:
    """Sign an app-only (v1-style) access token; returns (token, exp)."""
    now = int(time.time())
    issuer = f"https://sts.windows.net/{tenant_id}/"
    claims: dict[str, Any] = {
        "aud": audience, "iss": issuer, "iat": now, "nbf": now, "exp": now + lifetime,
        "aio": b64url(secrets.token_bytes(24)), "app_displayname": app_display_name, "appid": appid,
        "appidacr": appidacr, "idp": issuer, "idtyp": "app", "oid": oid,
        "rh": b64url(secrets.token_bytes(12)) + ".", "sub": oid, "tid": tenant_id,
        "uti": b64url(secrets.token_bytes(16)), "ver": "1.0",
    }
    role_list = sorted(set(roles))
    if role_list:
        claims["roles"] = role_list
    claims.update(extra or {})
    signing = sandbox.pki.signing
    token = jwt.encode(claims, signing.key, algorithm="RS256",
                       headers={"typ": "JWT", "kid": signing.kid, "x5t": signing.kid})
    return token, claims["exp"]


def issue_api_access_token(sandbox: Sandbox, *, tenant_id: str, api_client_id: str, caller_id: str,
                           roles: Iterable[str] = (), appidacr: str = "1",
                           lifetime: int = ACCESS_TOKEN_LIFETIME) -> tuple[str, int]:
    """Sign an app-only v2 access token for an API that an app of the sandbox exposes, as the identity
    platform issues one to a client-credentials caller when the API's registration asks for v2
    tokens (``requestedAccessTokenVersion`` 2): ``aud`` the API's application (client) id, a GUID,
    whichever form the scope named; ``iss`` the tenant's v2 issuer, the ``issuer`` of its OpenID
    configuration; ``azp`` / ``azpacr`` the caller and how it authenticated (``appid`` too, as the
    sandbox's contract asks); ``roles`` the app roles assigned to the caller, absent when none;
    ``ver`` "2.0"; ``tid``; ``oid`` = ``sub`` the caller's service principal. Returns (token, exp).

    Sources: learn.microsoft.com/entra/identity-platform/access-token-claims-reference (claims of
    v1.0 and v2.0 access tokens: ``aud``, ``iss``, ``azp``, ``azpacr``, ``roles``, ``ver``, ``tid``);
    learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow (``scope`` =
    ``<resource>/.default``; application permissions come as ``roles``);
    learn.microsoft.com/entra/identity-platform/howto-add-app-roles-in-apps (app roles assigned to
    applications appear in the ``roles`` claim)."""
    now = int(time.time())
    oid = service_principal_id(tenant_id, caller_id)
    claims: dict[str, Any] = {
        "aud": api_client_id, "iss": f"{sandbox.base_url}/{tenant_id}/v2.0", "iat": now, "nbf": now,
        "exp": now + lifetime, "aio": b64url(secrets.token_bytes(24)), "azp": caller_id, "azpacr": appidacr,
        "appid": caller_id, "oid": oid, "rh": b64url(secrets.token_bytes(12)) + ".", "sub": oid,
        "tid": tenant_id, "uti": b64url(secrets.token_bytes(16)), "ver": "2.0",
    }
    role_list = sorted(set(roles))
    if role_list:
        claims["roles"] = role_list
    signing = sandbox.pki.signing
    token = jwt.encode(claims, signing.key, algorithm="RS256", headers={"typ": "JWT", "kid": signing.kid})
    return token, claims["exp"]


def verify_access_token(sandbox: Sandbox, token: str, audiences: Iterable[str] | None = None) -> dict[str, Any]:
    """Check a bearer token issued by this sandbox and return its claims, else raise ``InvalidToken``.

    Checks the RS256 signature against the sandbox's signing key, ``exp``/``nbf`` (60 s leeway),
    the v1 issuer ``https://sts.windows.net/{tid}/``, and ``aud`` when ``audiences`` is given.
    Authorisation (which tenant, app or role may do what) is the caller's business.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed", f"not a JWT: {exc}") from None
    signing = sandbox.pki.keys.find(header.get("kid"))  # any published key: rotation keeps old tokens valid
    if header.get("alg") != "RS256" or signing is None:
        raise InvalidToken("signature", "the token is not signed with a key of this sandbox")
    try:
        claims = jwt.decode(token, signing.key.public_key(), algorithms=["RS256"], leeway=60,
                            options={"verify_aud": False, "require": ["exp", "nbf", "iss", "aud", "tid"]})
    except jwt.ExpiredSignatureError:
        raise InvalidToken("expired", "the token has expired") from None
    except jwt.PyJWTError as exc:
        raise InvalidToken("signature", f"the token failed validation: {exc}") from None
    if claims.get("iss") != f"https://sts.windows.net/{claims.get('tid')}/":
        raise InvalidToken("issuer", f"unexpected issuer {claims.get('iss')!r}", claims)
    if audiences is not None and claims.get("aud") not in set(audiences):
        raise InvalidToken("audience", f"unexpected audience {claims.get('aud')!r}", claims)
    return claims


# -- delegated scopes and tokens ------------------------------------------------------------------

class ScopeError(Exception):
    """A ``scope`` value the sandbox refuses (AADSTS70011, invalid_scope)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class ScopeRequest:
    """A parsed delegated ``scope``: Graph permissions (spelt as the app's registration spells
    them), the OpenID Connect scopes (lower-cased, in request order), and whether ``.default``
    was asked (then ``scopes`` is the app's statically configured delegated permissions)."""

    scopes: tuple[str, ...]
    oidc: tuple[str, ...]
    default: bool


def parse_scope(scope: str, app: dict[str, Any]) -> ScopeRequest:
    """Parse a delegated ``scope`` for ``app``. Graph scopes may be named with the resource
    (``https://graph.microsoft.com/User.Read``, or Graph's app id) or bare (``User.Read``), as
    Microsoft accepts. The sandbox's choice where Microsoft's dynamic consent knows every Graph
    permission: the sandbox only knows the app's configured ``permissions.delegated``, so another
    named permission, or another resource, is AADSTS70011."""
    configured = {p.lower(): p for p in app["permissions"]["delegated"]}
    names: list[str] = []
    oidc: list[str] = []
    default = False
    for value in scope.split():
        lower = value.lower()
        if lower in RESERVED_SCOPES:
            if lower not in oidc:
                oidc.append(lower)
            continue
        resource, sep, name = value.rpartition("/")
        if sep and KNOWN_RESOURCES.get(resource.lower()) != GRAPH_RESOURCE:
            raise ScopeError(f"The provided value for the input parameter 'scope' is not valid. The scope {value} "
                             "is not valid: the sandbox knows delegated permissions of Microsoft Graph only.")
        if name.lower() == ".default":
            default = True
            continue
        canonical = configured.get(name.lower())
        if canonical is None:
            raise ScopeError(f"The provided value for the input parameter 'scope' is not valid. The scope {value} "
                             "is not valid: it is not a delegated permission configured for the application.")
        if canonical not in names:
            names.append(canonical)
    if default and names:
        raise ScopeError(f"The provided value for the input parameter 'scope' is not valid. The scope '{scope}' "
                         "combines /.default with other scopes of the same resource.")
    if default:
        names = list(app["permissions"]["delegated"])
    return ScopeRequest(tuple(names), tuple(oidc), default)


def graph_scope_string(scopes: Iterable[str], oidc: Iterable[str] = ()) -> str:
    """Scopes as a token response or admin-consent redirect names them: Graph ones with the
    resource prefix, then the OpenID Connect ones other than ``offline_access``."""
    return " ".join([f"{GRAPH_RESOURCE}/{s}" for s in scopes] + [s for s in oidc if s != "offline_access"])


def pairwise_subject(client_id: str, user_id: str) -> str:
    """``sub``: unique per user and app, as Microsoft's pairwise subject is."""
    return b64url(hashlib.sha256(f"{client_id}/{user_id}".encode()).digest())[:43]


def client_info(tenant_id: str, user_id: str) -> str:
    """What MSAL asks for with ``client_info=1``: base64url of ``{"uid": oid, "utid": tid}``."""
    return b64url(json.dumps({"uid": user_id, "utid": tenant_id}, separators=(",", ":")).encode())


def issue_user_access_token(sandbox: Sandbox, *, tenant_id: str, user: dict[str, Any], app: dict[str, Any],
                            scopes: Iterable[str], oidc: Iterable[str] = (), appidacr: str = "1") -> tuple[str, int]:
    """Sign a delegated (user) access token for Microsoft Graph; returns (token, exp)."""
    scp = [*scopes, *(s for s in oidc if s != "offline_access")]
    return issue_access_token(
        sandbox, tenant_id=tenant_id, audience=GRAPH_RESOURCE, appid=app["clientId"], oid=user["id"],
        app_display_name=app["displayName"], appidacr=appidacr,
        extra={"idtyp": "user", "scp": " ".join(scp), "sub": pairwise_subject(app["clientId"], user["id"]),
               "upn": user_principal_name(user), "unique_name": user_principal_name(user),
               "name": user["displayName"], "amr": ["pwd"],
               "acr": "1", "ipaddr": "127.0.0.1"})


def directory_claims(app: dict[str, Any], tenant: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """``wids`` (and ``groups`` for ``"All"``) for the user's ID tokens from this app, as its
    ``groupMembershipClaims`` asks (caller holds state.lock); empty when it asks for none."""
    setting = app.get("groupMembershipClaims")
    if setting not in ("DirectoryRole", "All"):
        return {}
    claims: dict[str, Any] = {"wids": [*directory_roles(user), MEMBER_USER_ROLE]}
    if setting == "All":
        groups = [g["id"] for g in tenant.get("groups", []) if user["mail"] in g.get("members", [])]
        if groups:
            claims["groups"] = groups
    return claims


def issue_id_token(sandbox: Sandbox, *, tenant_id: str, user: dict[str, Any], client_id: str,
                   nonce: str | None, extra: dict[str, Any] | None = None) -> str:
    """Sign a v2 ID token (RS256, the same key as access tokens, so the JWKS verifies it);
    ``extra``: more claims (``directory_claims``)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "aud": client_id, "iss": f"{sandbox.base_url}/{tenant_id}/v2.0", "iat": now, "nbf": now,
        "exp": now + ID_TOKEN_LIFETIME, "aio": b64url(secrets.token_bytes(24)), "email": user["mail"],
        "name": user["displayName"], "oid": user["id"], "preferred_username": user_principal_name(user),
        "rh": b64url(secrets.token_bytes(12)) + ".", "sub": pairwise_subject(client_id, user["id"]),
        "tid": tenant_id, "uti": b64url(secrets.token_bytes(16)), "ver": "2.0",
    }
    if nonce:
        claims["nonce"] = nonce
    claims.update(extra or {})
    signing = sandbox.pki.signing
    return jwt.encode(claims, signing.key, algorithm="RS256", headers={"typ": "JWT", "kid": signing.kid})


# -- tenant resolution --------------------------------------------------------------------------

def _resolve_tenant(req: Request, *, error: str) -> tuple[str, dict[str, Any] | None]:
    """(segment, tenant): tenant is None for ``organizations``/``common``; unknown tenants fail."""
    assert req.match is not None  # noqa: S101 - identity routes always capture {tenant}
    segment = unquote(req.match.group("tenant"))
    if segment.lower() in MULTI_TENANT_SEGMENTS:
        return segment.lower(), None
    tenant = req.sandbox.state.resolve_tenant(segment)
    if tenant is None:
        raise _fail(req, 400, error, 90002,
                    f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are "
                    "signing into the correct cloud. Check with your subscription administrator, this may happen "
                    "if there are no active subscriptions for the tenant.")
    return segment, tenant


# -- discovery ----------------------------------------------------------------------------------

def openid_configuration(req: Request) -> Response:
    segment, tenant = _resolve_tenant(req, error="invalid_tenant")
    base = req.base_url
    path_tenant = tenant["tenantId"] if tenant else segment
    issuer_tenant = tenant["tenantId"] if tenant else "{tenantid}"
    doc = {
        "token_endpoint": f"{base}/{path_tenant}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{base}/{path_tenant}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{base}/{issuer_tenant}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base}/oidc/userinfo",
        "authorization_endpoint": f"{base}/{path_tenant}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{base}/{path_tenant}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{base}/{path_tenant}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
                             "msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username",
                             "name", "tid", "ver", "at_hash", "c_hash", "email"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net",
    }
    return Response.json(200, doc, [("Cache-Control", "max-age=86400, private"), ("x-ms-request-id", req.request_id)])


def jwks(req: Request) -> Response:
    _resolve_tenant(req, error="invalid_tenant")
    return Response.json(200, {"keys": [key.jwk() for key in req.sandbox.pki.keys.published]},
                         [("Cache-Control", "max-age=86400, private"), ("x-ms-request-id", req.request_id)])


# -- token endpoint -------------------------------------------------------------------------------

class TokenRequest:
    """What a grant handler gets: the parsed form, the tenant, and client authentication."""

    def __init__(self, req: Request, segment: str, tenant: dict[str, Any] | None, form: dict[str, str]):
        self.req, self.segment, self.tenant, self.form = req, segment, tenant, form

    def require(self, name: str) -> str:
        value = self.form.get(name)
        if not value:
            raise _missing_parameter(self.req, name)
        return value


def _basic_credentials(req: Request) -> tuple[str, str] | None:
    auth = req.header("authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote_plus(client_id), unquote_plus(secret)) if sep else None


def token(req: Request) -> Response:
    segment, tenant = _resolve_tenant(req, error="invalid_request")
    form = req.form()
    basic = _basic_credentials(req)
    if basic:
        form.setdefault("client_id", basic[0])
        form.setdefault("client_secret", basic[1])
    grant_type = form.get("grant_type")
    if not grant_type:
        raise _missing_parameter(req, "grant_type")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise _fail(req, 400, "unsupported_grant_type", 70003,
                    f"The app requested an unsupported grant type '{grant_type}'.")
    return grant(TokenRequest(req, segment, tenant, form))


def token_wrong_method(req: Request) -> Response:
    return aad_error(req, 400, "invalid_request", 900561,
                     f"The endpoint only accepts POST, OPTIONS requests. Received a {req.method} request.")


def _certificate_thumbprints(cert: x509.Certificate) -> tuple[str, str]:
    der = cert.public_bytes(serialization.Encoding.DER)
    return (b64url(hashlib.sha1(der).digest()),  # noqa: S324 - x5t is SHA-1 by definition (RFC 7515)
            b64url(hashlib.sha256(der).digest()))


def _unpadded(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return value.replace("+", "-").replace("/", "_").rstrip("=")


def _token_endpoint_audiences(tr: TokenRequest) -> set[str]:
    aliases = {tr.segment}
    if tr.tenant is not None:
        aliases.add(tr.tenant["tenantId"])
        if tr.tenant.get("domain"):
            aliases.add(tr.tenant["domain"])
    paths = set()
    for alias in aliases:
        paths |= {f"/{alias}/oauth2/v2.0/token", f"/{alias}/oauth2/token", f"/{alias}/v2.0", f"/{alias}", f"/{alias}/"}
    return {p.lower() for p in paths}


def _verify_client_assertion(tr: TokenRequest, app: dict[str, Any], assertion: str) -> None:
    req = tr.req

    def bad(reason: str) -> HttpError:
        return _fail(req, 401, "invalid_client", 700027,
                     f"Client assertion failed signature validation. [Reason - {reason}]")

    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise bad("The client assertion is not a well-formed JWT.") from None
    alg = header.get("alg")
    if alg not in ASSERTION_ALGORITHMS:
        raise bad(f"The signing algorithm '{alg}' is not supported; use RS256 or PS256.")
    certs = [x509.load_pem_x509_certificate(pem.encode("ascii")) for pem in app["certificates"]]
    # Thumbprints compare as unpadded base64url (MSAL sends them padded).
    x5t, x5t256 = (_unpadded(header.get("x5t")), _unpadded(header.get("x5t#S256")))
    if x5t or x5t256:
        candidates = [c for c in certs if (x5t and _certificate_thumbprints(c)[0] == x5t)
                      or (x5t256 and _certificate_thumbprints(c)[1] == x5t256)]
        if not candidates:
            raise _fail(req, 401, "invalid_client", 700027,
                        "The certificate with identifier used to sign the client assertion is not registered on "
                        f"application. [Reason - The key was not found., Thumbprint of key used by client: "
                        f"'{x5t or x5t256}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph "
                        f"to see configured keys for app Id '{app['clientId']}'.]")
    else:
        candidates = certs
    if not candidates:
        raise bad("The application has no certificate credentials.")
    claims = None
    for cert in candidates:
        try:
            claims = jwt.decode(assertion, cert.public_key(), algorithms=[alg], leeway=CLOCK_SKEW,  # type: ignore[arg-type]
                                options={"verify_aud": False, "require": ["aud", "iss", "sub", "exp"]})
        except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError) as exc:
            raise bad(f"The client assertion is not within its valid time range: {exc}") from None
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise bad(f"The client assertion is invalid: {exc}") from None
        if cert.not_valid_after_utc < datetime.now(UTC):
            raise bad("The certificate used to sign the client assertion has expired.")
        break
    if claims is None:
        raise bad("The signature does not verify with any certificate registered on the application.")
    if claims.get("iss") != claims.get("sub") or str(claims.get("iss")).lower() != app["clientId"]:
        raise bad("The assertion's 'iss' and 'sub' must both be the client_id.")
    aud = str(claims.get("aud", ""))
    parts = urlsplit(aud)
    port = req.sandbox.port
    if (parts.scheme != "https" or parts.netloc not in {f"127.0.0.1:{port}", f"localhost:{port}"}
            or parts.path.lower() not in _token_endpoint_audiences(tr)):
        raise bad(f"The assertion's audience '{aud}' is not this tenant's token endpoint.")


def _authenticate_client(tr: TokenRequest, app: dict[str, Any]) -> str:
    """Check the client's credential; returns ``appidacr`` ("1" secret, "2" certificate)."""
    req, form = tr.req, tr.form
    assertion = form.get("client_assertion")
    secret = form.get("client_secret")
    if assertion:
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
            raise _fail(req, 400, "invalid_request", 900144,
                        "The request body must contain the following parameter: 'client_assertion_type'.")
        _verify_client_assertion(tr, app, assertion)
        return "2"
    if secret:
        expected = app.get("clientSecret")
        if not expected or not hmac.compare_digest(secret.encode("utf-8"), expected.encode("utf-8")):
            raise _fail(req, 401, "invalid_client", 7000215,
                        f"Invalid client secret provided. Ensure the secret being sent in the request is the client "
                        f"secret value, not the client secret ID, for a secret added to app '{app['clientId']}'.")
        return "1"
    raise _fail(req, 401, "invalid_client", 7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")


def _scope_resource(tr: TokenRequest, scope: str) -> str | dict[str, Any]:
    """The resource of a client-credentials ``scope`` (one ``<resource>/.default``): a Microsoft
    resource's canonical URI, or the app of the sandbox that exposes an API under that application
    id URI or client id (caller holds state.lock)."""
    req = tr.req
    scopes = [s for s in scope.split() if s.lower() not in RESERVED_SCOPES]
    if len(scopes) == 1:
        value = scopes[0]
        if value.lower().endswith("/.default"):
            resource = value[: -len("/.default")].rstrip("/")
            for known, canonical in KNOWN_RESOURCES.items():
                if resource.lower() == known:
                    return canonical
            api = req.sandbox.state.api_app(resource)
            if api is not None:
                return api
        else:
            resource_part = value.rsplit("/", 1)[0] if "/" in value else value
            if (resource_part.rstrip("/").lower() in KNOWN_RESOURCES
                    or req.sandbox.state.api_app(resource_part.rstrip("/")) is not None):
                raise _fail(req, 400, "invalid_scope", 1002012,
                            f"The provided value for scope {value} is not valid. Client credential flows must have "
                            "a scope value with /.default suffixed to the resource identifier (application ID URI).")
    raise _fail(req, 400, "invalid_scope", 70011,
                f"The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid.")


def _client_credentials(tr: TokenRequest) -> Response:
    req, state = tr.req, tr.req.sandbox.state
    client_id = tr.require("client_id").lower()
    scope = tr.require("scope")
    if tr.tenant is None:
        raise _fail(req, 400, "invalid_request", 90019,
                    "MissingTenantRealm - Microsoft Entra ID was unable to determine the tenant identifier from "
                    f"the request: client credentials need a tenant-specific authority, not '/{tr.segment}'.")
    with state.lock:
        tenant_id = tr.tenant["tenantId"]
        app = state.app(client_id)
        # An app not present in the tenant (unknown, or a customer tenant that has not consented,
        # so no service principal) is AADSTS700016 "UnauthorizedClient_DoesNotMatchRequest - The
        # application wasn't found in the directory/tenant. This can happen if the application has
        # not been installed by the administrator of the tenant or consented to by any user in the
        # tenant." Source: learn.microsoft.com/entra/identity-platform/reference-error-codes
        # (MicrosoftDocs/entra-docs docs/identity-platform/reference-error-codes.md). AADSTS7000229
        # ("missing service principal") is not in that reference; Microsoft's Teams SDK
        # troubleshooting page shows it for an app whose *own* tenant lacks its service principal.
        if app is None or not state.has_service_principal(tenant_id, client_id):
            raise _fail(req, 400, "unauthorized_client", 700016,
                        f"Application with identifier '{client_id}' was not found in the directory "
                        f"'{tr.tenant.get('displayName') or tenant_id}'. This can happen if the application has not "
                        "been installed by the administrator of the tenant or consented to by any user in the "
                        "tenant. You may have sent your authentication request to the wrong tenant.")
        appidacr = _authenticate_client(tr, app)
        resource = _scope_resource(tr, scope)
        if isinstance(resource, dict):
            # An API of an app of the sandbox: a v2 token. In a customer tenant (where the caller
            # has a service principal) it carries that tenant's issuer, so a service that checks
            # the issuer refuses it. The sandbox's choice: the caller's role assignments hold in
            # every tenant, and the API needs no service principal of its own there.
            api_client_id = resource["clientId"]
            roles = [r for r in app["roleAssignments"].get(api_client_id, []) if r in resource["appRoles"]]
        else:
            roles = state.application_roles(tenant_id, client_id) if resource == GRAPH_RESOURCE else []
        display_name = app["displayName"]
    if isinstance(resource, dict):
        access_token, exp = issue_api_access_token(req.sandbox, tenant_id=tenant_id, api_client_id=api_client_id,
                                                   caller_id=client_id, roles=roles, appidacr=appidacr)
        return _token_response(req, access_token, exp)
    access_token, exp = issue_access_token(
        req.sandbox, tenant_id=tenant_id, audience=resource, appid=client_id,
        oid=service_principal_id(tenant_id, client_id), app_display_name=display_name, roles=roles,
        appidacr=appidacr)
    return _token_response(req, access_token, exp)


def _token_response(req: Request, access_token: str, exp: int) -> Response:
    expires_in = max(0, exp - int(time.time()))
    return Response.json(200, {"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in,
                                "access_token": access_token},
                         [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache"),
                          ("x-ms-request-id", req.request_id)])


# -- delegated grants: authorization_code and refresh_token ----------------------------------------
# Codes come from the consent pages (sandbox.consent); both grants live in sandbox.grants.
# AADSTS codes and texts from learn.microsoft.com/entra/identity-platform/reference-error-codes
# (MicrosoftDocs/entra-docs docs/identity-platform/reference-error-codes.md); the `error` values
# from the token endpoint's table in learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow
# ("invalid_grant: The authorization code or PKCE code verifier is invalid or has expired").

def _invalid_grant(tr: TokenRequest, code: int, description: str, extra: dict[str, Any] | None = None) -> HttpError:
    return _fail(tr.req, 400, "invalid_grant", code, description, extra)


def _delegated_client(tr: TokenRequest) -> tuple[dict[str, Any], str]:
    """(app, appidacr): the app named by ``client_id``, authenticated (caller holds state.lock)."""
    client_id = tr.require("client_id").lower()
    app = tr.req.sandbox.state.app(client_id)
    if app is None:
        where = (tr.tenant.get("displayName") or tr.tenant["tenantId"]) if tr.tenant else tr.segment
        raise _fail(tr.req, 400, "unauthorized_client", 700016,
                    f"Application with identifier '{client_id}' was not found in the directory '{where}'. This can "
                    "happen if the application has not been installed by the administrator of the tenant or "
                    "consented to by any user in the tenant. You may have sent your authentication request to the "
                    "wrong tenant.")
    return app, _authenticate_client(tr, app)


def _grant_subject(tr: TokenRequest, tenant_id: str, user_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tenant, user) a code or refresh token was issued for (caller holds state.lock)."""
    tenant = tr.req.sandbox.state.tenant(tenant_id)
    user = find_user(tenant, user_id) if tenant else None
    if tenant is None or user is None:
        raise _invalid_grant(tr, 50034, "The user account does not exist in the directory. To sign into this "
                                        "application, the account must be added to the directory.")
    return tenant, user


def _token_scopes(tr: TokenRequest, app: dict[str, Any], tenant: dict[str, Any], user: dict[str, Any],
                  granted: tuple[str, ...]) -> tuple[str, ...]:
    """The Graph scopes of the access token: the request's ``scope`` (optional for these grants,
    a subset of what was consented), else those of the code or refresh token. All must still be
    consented: else AADSTS65001 (DelegationDoesNotExist) with ``suberror: consent_required``."""
    scopes = granted
    if tr.form.get("scope"):
        try:
            parsed = parse_scope(tr.form["scope"], app)
        except ScopeError as exc:
            raise _fail(tr.req, 400, "invalid_scope", 70011, exc.message) from None
        if parsed.default:
            held = consented_scopes(tenant, app["clientId"], user["id"])
            scopes = tuple(s for s in parsed.scopes if s.lower() in held)
        elif parsed.scopes:
            scopes = parsed.scopes
    held = consented_scopes(tenant, app["clientId"], user["id"])
    if any(s.lower() not in held for s in scopes) or app["clientId"] not in tenant["consented"]:
        raise _invalid_grant(tr, 65001, f"The user or administrator has not consented to use the application with "
                                        f"ID '{app['clientId']}' named '{app['displayName']}'. Send an interactive "
                                        "authorization request for this user and resource.",
                             {"suberror": "consent_required"})
    return scopes


def _pkce_matches(verifier: str, challenge: str, method: str | None) -> bool:
    """RFC 7636 section 4.6: S256 compares BASE64URL(SHA256(ASCII(verifier))); plain compares as is."""
    try:
        raw = verifier.encode("ascii")
    except UnicodeEncodeError:
        return False
    expected = b64url(hashlib.sha256(raw).digest()) if method == "S256" else verifier
    return hmac.compare_digest(expected.encode("ascii"), challenge.encode("ascii", "replace"))


def _delegated_tokens(tr: TokenRequest, *, app: dict[str, Any], appidacr: str, tenant_id: str,
                      user: dict[str, Any], scopes: tuple[str, ...], granted: tuple[str, ...],
                      oidc: tuple[str, ...], id_claims: dict[str, Any], nonce: str | None = None) -> Response:
    """The token response: access token; ``refresh_token`` only with ``offline_access`` and
    ``id_token`` only with ``openid`` (v2-oauth2-auth-code-flow, "Successful response");
    ``client_info`` when MSAL asks with ``client_info=1``."""
    sandbox = tr.req.sandbox
    access_token, exp = issue_user_access_token(sandbox, tenant_id=tenant_id, user=user, app=app, scopes=scopes,
                                                oidc=oidc, appidacr=appidacr)
    expires_in = max(0, exp - int(time.time()))
    body: dict[str, Any] = {"token_type": "Bearer", "scope": graph_scope_string(scopes, oidc),
                            "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": access_token}
    if "offline_access" in oidc:
        body["refresh_token"] = sandbox.grants.issue_refresh_token(
            client_id=app["clientId"], tenant_id=tenant_id, user_id=user["id"], scopes=granted, oidc_scopes=oidc)
    if "openid" in oidc:
        body["id_token"] = issue_id_token(sandbox, tenant_id=tenant_id, user=user, client_id=app["clientId"],
                                          nonce=nonce, extra=id_claims)
    if tr.form.get("client_info") == "1":
        body["client_info"] = client_info(tenant_id, user["id"])
    return Response.json(200, body, [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache"),
                                     ("x-ms-request-id", tr.req.request_id)])


def _authorization_code(tr: TokenRequest) -> Response:
    """Redeem a code. In order: unknown code (or another client's) AADSTS70000; another tenant's
    AADSTS700005; reused AADSTS54005; expired AADSTS70008; ``redirect_uri`` not the code's
    AADSTS50011 (RFC 6749 section 4.1.3 makes that invalid_grant); PKCE: a code issued with a
    ``code_challenge`` needs ``code_verifier`` (AADSTS900144 when missing, AADSTS501481 when it
    does not match). Any redemption attempt by the right client consumes the code (single use)."""
    state = tr.req.sandbox.state
    code = tr.require("code")
    redirect_uri = tr.require("redirect_uri")
    with state.lock:
        app, appidacr = _delegated_client(tr)
    grants = tr.req.sandbox.grants
    record = grants.consume_code(code, app["clientId"])
    if record is None:
        raise _invalid_grant(tr, 70000, "The provided value for the 'code' parameter is not valid.")
    if tr.tenant is not None and tr.tenant["tenantId"] != record.tenant_id:
        raise _invalid_grant(tr, 700005, "Provided Authorization Code is intended to use against other tenant, "
                                         "thus rejected.")
    if record.redeemed:
        raise _invalid_grant(tr, 54005, "OAuth2 Authorization code was already redeemed, please retry with a new "
                                        "valid code or use an existing refresh token.")
    if grants.now() >= record.expires_at:
        raise _invalid_grant(tr, 70008, "The provided authorization code or refresh token has expired due to "
                                        "inactivity. Send a new interactive authorization request for this user "
                                        "and resource.")
    if redirect_uri != record.redirect_uri:
        raise _invalid_grant(tr, 50011, f"The reply address '{redirect_uri}' does not match the reply address "
                                        f"'{record.redirect_uri}' provided when requesting Authorization code.")
    if record.code_challenge is not None:
        verifier = tr.form.get("code_verifier")
        if not verifier:
            raise _missing_parameter(tr.req, "code_verifier")
        if not _pkce_matches(verifier, record.code_challenge, record.code_challenge_method):
            raise _invalid_grant(tr, 501481, "The Code_Verifier does not match the code_challenge supplied in the "
                                             "authorization request.")
    with state.lock:
        tenant, user = _grant_subject(tr, record.tenant_id, record.user_id)
        scopes = _token_scopes(tr, app, tenant, user, record.scopes)
        id_claims = directory_claims(app, tenant, user)
        user = dict(user)
    return _delegated_tokens(tr, app=app, appidacr=appidacr, tenant_id=record.tenant_id, user=user, scopes=scopes,
                             granted=record.scopes, oidc=record.oidc_scopes, id_claims=id_claims, nonce=record.nonce)


def _refresh_token(tr: TokenRequest) -> Response:
    """Redeem a refresh token: a new access token and a NEW refresh token, the old one staying
    valid (learn.microsoft.com/entra/identity-platform/refresh-tokens). Unknown, or another
    client's (refresh tokens are bound to user + client): AADSTS70000; past 90 days: AADSTS700082;
    asked at another tenant than the user's: AADSTS50020; the app's consent withdrawn
    (``/_sandbox/tenants/{t}/revoke``): AADSTS65001; revoked otherwise (``/_sandbox/users/{u}/revoke``,
    "Admin revokes all refresh tokens for a user"): AADSTS50173."""
    state = tr.req.sandbox.state
    token = tr.require("refresh_token")
    with state.lock:
        app, appidacr = _delegated_client(tr)
    grants = tr.req.sandbox.grants
    record = grants.refresh_token(token)
    if record is None or record.client_id != app["clientId"]:
        raise _invalid_grant(tr, 70000, "Authentication failed. The refresh token is not valid.")
    if grants.now() >= record.expires_at:
        issued = datetime.fromtimestamp(record.issued_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        raise _invalid_grant(tr, 700082, f"The refresh token has expired due to inactivity. The token was issued on "
                                         f"{issued} and was inactive for 90.00:00:00.")
    with state.lock:
        tenant, user = _grant_subject(tr, record.tenant_id, record.user_id)
        if tr.tenant is not None and tr.tenant["tenantId"] != record.tenant_id:
            raise _invalid_grant(tr, 50020, f"User account '{user['mail']}' from identity provider "
                                            f"'https://sts.windows.net/{record.tenant_id}/' does not exist in tenant "
                                            f"'{tr.tenant.get('displayName') or tr.tenant['tenantId']}' and cannot "
                                            f"access the application '{app['clientId']}'({app['displayName']}) in "
                                            "that tenant.")
        scopes = _token_scopes(tr, app, tenant, user, record.scopes)
        id_claims = directory_claims(app, tenant, user)
        user = dict(user)
    if record.revoked:
        raise _invalid_grant(tr, 50173, "The provided grant has expired due to it being revoked, a fresh auth token "
                                        "is needed. Either an admin or a user revoked the tokens for this user.")
    return _delegated_tokens(tr, app=app, appidacr=appidacr, tenant_id=record.tenant_id, user=user, scopes=scopes,
                             granted=record.scopes, oidc=record.oidc_scopes, id_claims=id_claims)


# Grant handlers by grant_type.
GRANTS: dict[str, Callable[[TokenRequest], Response]] = {
    "client_credentials": _client_credentials,
    "authorization_code": _authorization_code,
    "refresh_token": _refresh_token,
}


# -- managed identity (App Service / Functions, api-version 2019-08-01) ---------------------------

def _msi_error(req: Request, status: int, message: str) -> HttpError:
    return HttpError(Response.json(status, {"statusCode": status, "message": message,
                                            "correlationId": req.client_request_id}))


def msi_token(req: Request) -> Response:
    """The sandbox's choices where App Service documents no error shape: a missing
    ``X-IDENTITY-HEADER`` is 400, a wrong one 401, bodies ``{"statusCode", "message", "correlationId"}``."""
    state = req.sandbox.state
    mi = dict(state.managed_identity)
    header = req.header("x-identity-header")
    if header is None:
        raise _msi_error(req, 400, "The request is missing the required X-IDENTITY-HEADER header.")
    if not hmac.compare_digest(header.encode("utf-8"), mi["identityHeader"].encode("utf-8")):
        raise _msi_error(req, 401, "The X-IDENTITY-HEADER header value is not valid.")
    api_version = req.arg("api-version")
    if api_version != "2019-08-01":
        raise _msi_error(req, 400, f"The api-version '{api_version}' is not supported; use 2019-08-01.")
    resource = req.arg("resource")
    if not resource:
        raise _msi_error(req, 400, "The request is missing the required 'resource' query parameter.")
    for param, expected in (("client_id", mi["clientId"]), ("principal_id", mi["principalId"]),
                            ("object_id", mi["principalId"])):
        value = req.arg(param)
        if value and value.lower() != expected:
            raise _msi_error(req, 400, f"No managed identity found for the specified {param} '{value}'.")
    if req.arg("mi_res_id"):
        raise _msi_error(req, 400, "No managed identity found for the specified mi_res_id.")
    home = state.home_tenant_id
    access_token, exp = issue_access_token(
        req.sandbox, tenant_id=home, audience=resource, appid=mi["clientId"], oid=mi["principalId"],
        app_display_name="sandbox-function-app", appidacr="2", lifetime=MANAGED_IDENTITY_TOKEN_LIFETIME,
        extra={"xms_mirid": "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/sandbox/"
                            "providers/Microsoft.Web/sites/sandbox"})
    return Response.json(200, {"access_token": access_token, "expires_on": str(exp), "resource": resource,
                               "token_type": "Bearer", "client_id": mi["clientId"]})


_TENANT = r"/(?P<tenant>[^/]+)"
ROUTES: list[Route] = [
    ("GET", rf"{_TENANT}/v2\.0/\.well-known/openid-configuration", openid_configuration),
    ("GET", rf"{_TENANT}/discovery/v2\.0/keys", jwks),
    ("GET", rf"{_TENANT}/discovery/keys", jwks),
    ("POST", rf"{_TENANT}/oauth2/v2\.0/token", token),
    ("GET", rf"{_TENANT}/oauth2/v2\.0/token", token_wrong_method),
    ("GET", r"/msi/token", msi_token),
]
