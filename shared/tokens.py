"""Tokens from the Microsoft identity platform, through MSAL.

One `ConfidentialClientApplication` per tenant authority, built on first use (its constructor
fetches the authority's metadata over the network) and kept for the life of the process, so its
in-memory token cache serves warm calls without a token request. The app's own credential (a
client secret, or a certificate) is read from Key Vault through the managed identity; if the
identity platform says the credential is wrong, it is read again once (it may have been rotated)
before the error is raised.

MSAL answers with dicts; `IdentityError` turns an error answer into a typed exception carrying
`error`, the AADSTS codes and the correlation id, and never the token endpoint's raw text in a
place a caller could see it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any

from shared.settings import Settings

log = logging.getLogger(__name__)

# The service's own credential is at fault (not the tenant): these never flip a tenant's status.
CREDENTIAL_ERRORS = frozenset({7000215, 7000222, 700027})
# The consent or the app is gone from the tenant (or has not propagated yet).
CONSENT_ERRORS = frozenset({700016, 7000229, 65001})
CALENDAR_ROLES = frozenset({"Calendars.ReadWrite"})
DELEGATED_SCOPES = ("Calendars.ReadWrite", "User.Read")


class IdentityError(Exception):
    """The identity platform refused or failed. `str()` is our own summary: error and codes."""

    def __init__(self, error: str, codes: tuple[int, ...] = (), *, correlation_id: str | None = None,
                 description: str | None = None) -> None:
        super().__init__(f"{error} (AADSTS{', AADSTS'.join(map(str, codes))})" if codes else error)
        self.error = error
        self.codes = codes
        self.correlation_id = correlation_id
        self._description = description  # Microsoft's text: for debugging, never shown to callers

    @classmethod
    def from_result(cls, result: dict[str, Any]) -> IdentityError:
        codes = tuple(int(c) for c in result.get("error_codes") or () if str(c).isdigit())
        if not codes:
            codes = tuple(int(c) for c in re.findall(r"AADSTS(\d+)", result.get("error_description") or ""))
        return cls(str(result.get("error") or "unknown_error"), codes,
                   correlation_id=result.get("correlation_id"), description=result.get("error_description"))

    @property
    def aadsts(self) -> str | None:
        return f"AADSTS{self.codes[0]}" if self.codes else None

    @property
    def is_credential_error(self) -> bool:
        return bool(CREDENTIAL_ERRORS & set(self.codes))

    @property
    def is_consent_error(self) -> bool:
        return bool(CONSENT_ERRORS & set(self.codes))


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT we just received from the token endpoint over TLS (not verified:
    we are its client, not a resource server; we only read `roles` / `scp` / `tid`)."""
    try:
        payload = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}


@dataclass
class AppCredential:
    """What MSAL's `client_credential` takes: a secret string, or a certificate dict."""

    value: Any = field(repr=False)


class TokenProvider:
    """MSAL apps per tenant authority, the app credential, and the token operations the service uses."""

    def __init__(self, settings: Settings, secrets: Any, *, http_client: Any = None) -> None:
        self._settings = settings
        self._secrets = secrets
        self._http_client = http_client
        self._apps: dict[str, Any] = {}
        self._credential: AppCredential | None = None
        self._lock = threading.Lock()

    # -- the app's own credential ------------------------------------------------------------

    def _load_credential(self) -> AppCredential:
        if self._settings.app_credential_type == "certificate":
            return AppCredential(certificate_credential(self._secrets.get(self._settings.app_certificate_name)))
        # A secret pasted with a trailing newline is a common slip; secrets never end in whitespace.
        return AppCredential(self._secrets.get(self._settings.app_secret_name).strip())

    def _app(self, tenant_id: str) -> Any:
        app = self._apps.get(tenant_id)
        if app is not None:
            return app
        with self._lock:
            app = self._apps.get(tenant_id)
            if app is None:
                import msal

                if self._credential is None:
                    self._credential = self._load_credential()
                kwargs: dict[str, Any] = {}
                if self._http_client is not None:
                    kwargs["http_client"] = self._http_client
                app = msal.ConfidentialClientApplication(
                    self._settings.app_client_id,
                    client_credential=self._credential.value,
                    authority=f"{self._settings.authority_host}/{tenant_id}",
                    # Discovery asks Microsoft's own host; only meaningful (and only reachable)
                    # when the authority is Microsoft's.
                    instance_discovery=self._settings.authority_is_microsoft,
                    timeout=self._settings.http_timeout_seconds,
                    **kwargs,
                )
                self._apps[tenant_id] = app
        return app

    def _forget_credential(self) -> None:
        with self._lock:
            self._credential = None
            self._apps.clear()

    def _call(self, tenant_id: str, operation: Any) -> dict[str, Any]:
        """Run one MSAL operation; on a credential error, re-read the credential once and retry."""
        import msal
        import requests

        for attempt in (1, 2):
            try:
                result = operation(self._app(tenant_id))
            except ValueError as error:
                # MSAL raises ValueError for a bad authority / discovery answer.
                raise IdentityError("authority_unavailable") from error
            except (msal.exceptions.MsalServiceError, requests.RequestException) as error:
                # A 5xx from the token endpoint, or no answer at all: passing, worth a retry later.
                log.warning("identity platform unavailable: %s", type(error).__name__)
                raise IdentityError("temporarily_unavailable") from None
            if result is None:
                raise IdentityError("no_token")
            if "error" not in result:
                return result
            failure = IdentityError.from_result(result)
            if failure.is_credential_error and attempt == 1:
                log.warning("identity platform refused our credential (%s); reloading it once", failure.aadsts)
                self._forget_credential()
                continue
            raise failure
        raise AssertionError("unreachable")

    # -- app-only ------------------------------------------------------------------------------

    @property
    def graph_default_scope(self) -> str:
        return f"{self._settings.graph_resource}/.default"

    def app_token(self, tenant_id: str, *, fresh: bool = False) -> dict[str, Any]:
        """An app-only Graph token for the tenant: from MSAL's cache when it can serve (the warm
        path makes no token request), or a new one from the identity platform with `fresh`."""

        def acquire(app: Any) -> dict[str, Any]:
            if fresh:
                app.remove_tokens_for_client()
            return app.acquire_token_for_client([self.graph_default_scope])

        return self._call(tenant_id, acquire)

    # -- delegated (authorization code flow with PKCE) -------------------------------------------

    @property
    def delegated_scopes(self) -> list[str]:
        return [f"{self._settings.graph_resource}/{scope}" for scope in DELEGATED_SCOPES]

    def start_auth_code_flow(self, tenant_id: str, *, state: str, login_hint: str | None) -> dict[str, Any]:
        """A member's sign-in: MSAL's flow dict (auth_uri, state, code_verifier, nonce, …) for the
        delegated calendar scopes. Keep it server-side."""
        return self._initiate(tenant_id, self.delegated_scopes, state=state, login_hint=login_hint or None)

    def finish_auth_code_flow(self, tenant_id: str, flow: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        return self._redeem(tenant_id, flow, query, scopes=self.delegated_scopes)

    # -- an admin's sign-in, as proof of who consented (OpenID Connect: openid profile only) -----------

    def start_sign_in(self, tenant_id: str, *, state: str, prompt: str) -> dict[str, Any]:
        """The admin's own sign-in in the tenant: no scopes of ours, so MSAL asks only for its
        reserved `openid profile offline_access`."""
        return self._initiate(tenant_id, [], state=state, prompt=prompt)

    def finish_sign_in(self, tenant_id: str, flow: dict[str, Any], query: dict[str, str]) -> dict[str, Any]:
        """Redeem the sign-in's code. The tokens are for this proof only: nothing of them is kept."""
        result = self._redeem(tenant_id, flow, query)
        claims = result.get("id_token_claims") or {}
        home = f"{claims.get('oid')}.{claims.get('tid')}"
        with contextlib.suppress(Exception):  # MSAL caches what it redeems: forget this sign-in's tokens
            app = self._app(tenant_id)
            for account in app.get_accounts():
                if account.get("home_account_id") == home:
                    app.remove_account(account)
        return result

    # -- the authorization code flow, with PKCE and a nonce (MSAL's auth-code-flow helpers) -----------

    def _initiate(self, tenant_id: str, scopes: list[str], **options: Any) -> dict[str, Any]:
        app = self._app(tenant_id)
        with warnings.catch_warnings():
            # MSAL recommends form_post; the contract fixes response_mode=query (the callback is a
            # GET, and the code is single-use, PKCE-bound and redeemed at once).
            warnings.filterwarnings("ignore", message="response_mode='form_post' is recommended")
            return app.initiate_auth_code_flow(scopes, redirect_uri=self._settings.consent_callback_url,
                                               response_mode="query", **options)

    def _redeem(self, tenant_id: str, flow: dict[str, Any], query: dict[str, str],
                scopes: list[str] | None = None) -> dict[str, Any]:
        """Redeem the code; MSAL checks the state, PKCE and the ID token's nonce."""
        def redeem(app: Any) -> dict[str, Any]:
            try:
                return app.acquire_token_by_auth_code_flow(flow, query, scopes=scopes)
            except ValueError:  # a state mismatch or a reused flow
                return {"error": "invalid_flow"}
            except RuntimeError:  # the ID token's nonce is not the flow's
                return {"error": "invalid_nonce"}

        return self._call(tenant_id, redeem)

    def redeem_refresh_token(self, tenant_id: str, refresh_token: str) -> dict[str, Any]:
        return self._call(
            tenant_id, lambda app: app.acquire_token_by_refresh_token(refresh_token, scopes=self.delegated_scopes)
        )


def certificate_credential(pem: str) -> dict[str, Any]:
    """MSAL's certificate credential from a PEM holding the private key and the certificate (as
    Key Vault keeps a certificate's secret when its content type is PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    data = pem.encode()
    key = serialization.load_pem_private_key(data, password=None)
    cert = x509.load_pem_x509_certificate(data)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return {
        "private_key": key_pem,
        "thumbprint": cert.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 - x5t is defined as SHA-1
        "public_certificate": cert_pem,
    }
