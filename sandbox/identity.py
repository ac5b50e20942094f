"""The Microsoft identity platform (Entra ID) under ``/{tenant}/...``, and the App Service
managed-identity endpoint at ``/msi/token``.

``{tenant}`` is a tenant GUID, a seeded tenant's domain, or ``organizations`` (``common`` is
accepted for discovery too, as Microsoft does).

- ``GET /{tenant}/v2.0/.well-known/openid-configuration``: endpoints name the tenant's GUID (as
  Microsoft's do when asked by domain); for ``organizations`` the issuer holds the literal
  ``{tenantid}``. The issuer has the sandbox's own origin, so MSAL's ``oidc_authority`` check
  passes, and ``authority=`` + ``instance_discovery=False`` fetches this same document.
- ``GET /{tenant}/discovery/v2.0/keys`` (and ``/discovery/keys``): the JWKS (RS256, ``kid`` = ``x5t``).
- ``POST /{tenant}/oauth2/v2.0/token``: the grants in ``GRANTS``. For now ``client_credentials``
  with a client secret (form or HTTP Basic) or a certificate ``client_assertion`` (RS256 with
  ``x5t``, or PS256 with ``x5t#S256`` as MSAL sends for ``public_certificate``).
- ``GET /msi/token``: App Service / Functions managed identity (api-version 2019-08-01).

Access tokens are v1-style RS256 JWTs (``iss`` ``https://sts.windows.net/{tid}/``, ``appid``,
``idtyp: app``, ``roles`` when any) signed by the key in ``pki``; ``verify_access_token`` checks
them for the resource handlers (Key Vault now, Graph later).

Errors have the identity platform's JSON shape (``error``, ``error_description`` with the
``AADSTSnnnn:`` prefix and the trace/correlation/timestamp lines, ``error_codes``, ``timestamp``,
``trace_id``, ``correlation_id``, ``error_uri``), per the "Handling error codes in your
application" section of learn.microsoft.com/entra/identity-platform/reference-error-codes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, unquote_plus, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .pki import b64url
from .state import service_principal_id
from .web import HttpError, Request, Response, Route

if TYPE_CHECKING:
    from .server import Sandbox

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
VAULT_RESOURCE = "https://vault.azure.net"
KNOWN_RESOURCES = {GRAPH_RESOURCE: GRAPH_RESOURCE, GRAPH_APP_ID: GRAPH_RESOURCE, VAULT_RESOURCE: VAULT_RESOURCE}
ACCESS_TOKEN_LIFETIME = 3599
MANAGED_IDENTITY_TOKEN_LIFETIME = 86399  # App Service managed-identity tokens live about 24 h
MULTI_TENANT_SEGMENTS = {"organizations", "common"}
RESERVED_SCOPES = {"openid", "profile", "offline_access", "email"}
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("RS256", "PS256")
CLOCK_SKEW = 300


# -- errors -------------------------------------------------------------------------------------

def aad_error(req: Request, status: int, error: str, code: int, description: str) -> Response:
    """An identity-platform error answer (AADSTS ``code``), as Microsoft's token endpoint sends it."""
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
    }
    return Response.json(status, body, [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache"),
                                        ("x-ms-request-id", req.request_id)])


def _fail(req: Request, status: int, error: str, code: int, description: str) -> HttpError:
    return HttpError(aad_error(req, status, error, code, description))


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
    signing = sandbox.pki.signing
    if header.get("alg") != "RS256" or header.get("kid") != signing.kid:
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
    return Response.json(200, {"keys": [req.sandbox.pki.signing.jwk()]},
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
    assert tr.tenant is not None  # noqa: S101
    aliases = {tr.segment, tr.tenant["tenantId"]}
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


def _scope_resource(tr: TokenRequest, scope: str) -> str:
    """The resource of a client-credentials ``scope`` (one ``<resource>/.default``)."""
    req = tr.req
    scopes = [s for s in scope.split() if s.lower() not in RESERVED_SCOPES]
    if len(scopes) == 1:
        value = scopes[0]
        if value.lower().endswith("/.default"):
            resource = value[: -len("/.default")].rstrip("/")
            for known, canonical in KNOWN_RESOURCES.items():
                if resource.lower() == known:
                    return canonical
        else:
            resource_part = value.rsplit("/", 1)[0] if "/" in value else value
            if resource_part.rstrip("/").lower() in KNOWN_RESOURCES:
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
        roles = state.application_roles(tenant_id, client_id) if resource == GRAPH_RESOURCE else []
        display_name = app["displayName"]
    access_token, exp = issue_access_token(
        req.sandbox, tenant_id=tenant_id, audience=resource, appid=client_id,
        oid=service_principal_id(tenant_id, client_id), app_display_name=display_name, roles=roles,
        appidacr=appidacr)
    expires_in = max(0, exp - int(time.time()))
    return Response.json(200, {"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in,
                                "access_token": access_token},
                         [("Cache-Control", "no-store, no-cache"), ("Pragma", "no-cache"),
                          ("x-ms-request-id", req.request_id)])


# Grant handlers by grant_type. authorization_code and refresh_token come with the consent slice.
GRANTS: dict[str, Callable[[TokenRequest], Response]] = {
    "client_credentials": _client_credentials,
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
