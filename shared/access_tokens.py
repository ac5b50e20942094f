"""Callers' access tokens, checked by the service itself (the same code locally and on Azure).

A caller (the 10KC web app) gets a token from the identity platform with the client credentials
flow for this service's API (`scope=<API_AUDIENCE>/.default`); the API's app registration asks for
v2 access tokens (`requestedAccessTokenVersion` 2). A token is accepted when:

- it is a JWT signed with RS256 by a key that the home tenant's OpenID configuration names
  (`jwks_uri`), fetched with PyJWT's `PyJWKClient` through the service's own HTTPS session (TLS
  verified, the same CA trust as every other call), cached for `KEYS_LIFETIME_SECONDS` and fetched
  again for an unknown `kid`, at most once every `KEYS_REFETCH_MIN_SECONDS` (a flood of made-up
  `kid`s costs one fetch per interval), one fetch at a time (a new instance's first burst of
  requests fetches once);
- `iss` is the `issuer` of that configuration and `tid` the home tenant: a token issued in any
  other tenant, even one where a multi-tenant app has a service principal, is refused;
- `aud` is `API_AUDIENCE` (the API's client id, a GUID) or `api://` + it;
- `exp` / `nbf` / `iat` hold with at most `CLOCK_SKEW_SECONDS` of skew.
Then the caller must be allowed: no `scp` (a user's delegated token is not a caller), `azp` (the
calling app) in `ALLOWED_CALLER_APP_IDS`, and the app role `Calendar.Integration` in `roles`.
A refused token is 401 `unauthenticated`, a refused caller 403 `forbidden`; the messages say why in
our own words and never carry the token or its claims.

The web app sends the same token for as long as it lives (MSAL caches it, about an hour), so an
accepted token is remembered by its SHA-256 (never the token itself) for at most
`ACCEPTED_MEMORY_SECONDS` and never past its `exp`: a repeat costs a hash and a lookup instead of a
signature check (`bench/auth.py` has both figures).

Sources: access token claims (v2.0: `aud` the client id, `iss` .../{tid}/v2.0, `azp`, `roles`,
`scp`, `tid`, `ver`): learn.microsoft.com/entra/identity-platform/access-token-claims-reference;
validating tokens (signature from the OpenID configuration's `jwks_uri`, issuer, audience, and the
app's own authorization checks): learn.microsoft.com/entra/identity-platform/access-tokens
#validate-tokens and .../claims-validation; keys roll over at any time and an unknown `kid` means
fetching the keys again: learn.microsoft.com/entra/identity-platform/signing-key-rollover; the
client credentials flow and `.default`: learn.microsoft.com/entra/identity-platform/
v2-oauth2-client-creds-grant-flow; app roles for applications: learn.microsoft.com/entra/
identity-platform/howto-add-app-roles-in-apps.

This module imports PyJWT and `requests`: it is imported on the first request of a caller, never
when the app loads (cold start).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
from jwt import PyJWK, PyJWKClient
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError, PyJWKSetError

from shared.errors import Forbidden, Unauthenticated, UpstreamError
from shared.settings import Settings

log = logging.getLogger(__name__)

CALLER_ROLE = "Calendar.Integration"
ALGORITHMS = ["RS256"]  # what the identity platform signs access tokens with
CLOCK_SKEW_SECONDS = 300  # 5 minutes, the skew Microsoft's own token handlers allow by default
KEYS_LIFETIME_SECONDS = 3600  # the key set is fetched again hourly, so a withdrawn key stops soon
KEYS_REFETCH_MIN_SECONDS = 5.0  # unknown kids: at most one fetch per interval
CONFIGURATION_LIFETIME_SECONDS = 24 * 3600
MAX_TOKEN_LENGTH = 16_384  # an app token is about 1.5 KB; anything this long is not one
ACCEPTED_MEMORY_SECONDS = 300  # an accepted token is checked in full again after this (or at its exp)
ACCEPTED_MEMORY_SIZE = 1024


@dataclass(frozen=True)
class OpenIdConfiguration:
    issuer: str
    jwks_uri: str


class SessionKeySetClient(PyJWKClient):
    """PyJWT's JWKS client, fetching through the service's `requests` session (so the TLS trust,
    timeouts and connection pool are those of every other call; verification always on). It keeps
    nothing: `SigningKeys` decides when to fetch."""

    def __init__(self, uri: str, session: Any, timeout: float) -> None:
        super().__init__(uri, cache_jwk_set=False, timeout=timeout, cooldown_duration=0)
        self._session = session

    def fetch_data(self) -> Any:
        import requests

        try:
            response = self._session.get(self.uri, timeout=self.timeout)
            response.raise_for_status()
            return response.json()
        except (requests.RequestException, ValueError) as exc:
            raise PyJWKClientConnectionError(f"the key set could not be fetched ({type(exc).__name__})") from None


class SigningKeys:
    """The identity platform's signing keys by `kid`: the set fetched when missing or older than
    its lifetime, and for an unknown kid at most once every `min_refetch_seconds`. One fetch at a
    time: requests that need the set while another fetches it wait for that fetch and use what it
    got, so a new instance's first burst fetches once. If a fetch fails, the last good set keeps
    serving (keys are published long before use) and the next try waits `min_refetch_seconds`."""

    def __init__(self, client: PyJWKClient, *, min_refetch_seconds: float = KEYS_REFETCH_MIN_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._min_refetch = min_refetch_seconds
        self._clock = clock
        self._lock = threading.Lock()  # held while fetching
        self._keys: list[PyJWK] = []
        self._fetched_at: float | None = None  # the last fetch that succeeded
        self._failed_at: float | None = None  # the last fetch that failed, if after it
        self._last_refetch: float | None = None  # the last fetch for an unknown kid

    def key(self, kid: str) -> PyJWK | None:
        found = PyJWKClient.match_kid(self._current(), kid)
        if found is not None:
            return found
        with self._lock:
            found = PyJWKClient.match_kid(self._current_held(), kid)  # another request may have fetched
            if found is not None:
                return found
            now = self._clock()
            if self._last_refetch is not None and now - self._last_refetch < self._min_refetch:
                return None
            self._last_refetch = now
            log.info("signing key %r is not in the cached key set: fetching the key set again", kid[:16])
            return PyJWKClient.match_kid(self._fetch_held(), kid)

    def _fresh(self, now: float) -> bool:
        return self._fetched_at is not None and now - self._fetched_at < KEYS_LIFETIME_SECONDS

    def _current(self) -> list[PyJWK]:
        if self._fresh(self._clock()):
            return self._keys
        with self._lock:
            return self._current_held()

    def _current_held(self) -> list[PyJWK]:
        now = self._clock()
        if self._fresh(now) or (self._keys and self._failed_at is not None
                                and now - self._failed_at < self._min_refetch):
            return self._keys
        return self._fetch_held()

    def _fetch_held(self) -> list[PyJWK]:
        now = self._clock()
        try:
            keys = self._client.get_signing_keys(refresh=True)
        except (PyJWKClientConnectionError, PyJWKSetError, PyJWKClientError) as exc:
            self._failed_at = now
            if self._keys:
                log.warning("the identity platform's key set could not be fetched (%s); using the last one",
                            type(exc).__name__)
                return self._keys
            raise UpstreamError("The identity platform's signing keys could not be fetched; retry later.") from None
        self._keys, self._fetched_at, self._failed_at = keys, now, None
        return keys


class CallerTokens:
    """Checks callers' bearer tokens against the home tenant; `verify` answers the calling app's id."""

    def __init__(self, settings: Settings, session: Any, *, clock: Callable[[], float] = time.monotonic,
                 min_refetch_seconds: float = KEYS_REFETCH_MIN_SECONDS) -> None:
        self._settings = settings
        self._session = session
        self._clock = clock
        self._min_refetch = min_refetch_seconds
        self._audiences = [settings.api_audience, f"api://{settings.api_audience}"]
        self._lock = threading.Lock()
        self._configuration: OpenIdConfiguration | None = None
        self._configuration_at = 0.0
        self._keys: SigningKeys | None = None
        self._accepted: OrderedDict[bytes, tuple[str, float]] = OrderedDict()  # sha256 -> (app id, until)
        self._accepted_lock = threading.Lock()  # apart from _lock, which is held while fetching

    def verify(self, token: str) -> str:
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("The bearer token is not accepted: it is too long to be an access token.",
                                  token_sent=True)
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = time.time()
        with self._accepted_lock:
            remembered = self._accepted.get(digest)
            if remembered is not None and now < remembered[1]:
                return remembered[0]
        configuration, keys = self._home()
        claims = self._checked_claims(token, configuration, keys)
        app_id = self._allowed_caller(claims)
        until = min(float(claims["exp"]) + CLOCK_SKEW_SECONDS, now + ACCEPTED_MEMORY_SECONDS)
        with self._accepted_lock:
            self._accepted[digest] = (app_id, until)
            self._accepted.move_to_end(digest)
            while len(self._accepted) > ACCEPTED_MEMORY_SIZE:
                self._accepted.popitem(last=False)
        return app_id

    # -- authentication: is this a token of the home tenant, for this API, still valid? -------

    def _checked_claims(self, token: str, configuration: OpenIdConfiguration, keys: SigningKeys) -> dict[str, Any]:
        def refuse(why: str) -> Unauthenticated:
            return Unauthenticated(f"The bearer token is not accepted: {why}.", token_sent=True)

        header = _unverified_header(token)
        if header is None:
            raise refuse("it is not a well-formed JWT")
        if header.get("alg") not in ALGORITHMS:
            raise refuse("it is not signed with RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise refuse("it names no signing key (kid)")
        key = keys.key(kid)
        if key is None:
            raise refuse("it is not signed by a key of the home tenant's identity platform")
        try:
            claims = jwt.decode(token, key.key, algorithms=ALGORITHMS, audience=self._audiences,
                                issuer=configuration.issuer, leeway=CLOCK_SKEW_SECONDS,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.ExpiredSignatureError:
            raise refuse("it has expired") from None
        except jwt.ImmatureSignatureError:
            raise refuse("it is not valid yet") from None
        except jwt.InvalidIssuerError:
            raise refuse("it was issued by another tenant or authority") from None
        except jwt.InvalidAudienceError:
            raise refuse("it was issued for another API (audience)") from None
        except jwt.InvalidSignatureError:
            raise refuse("its signature does not verify") from None
        except jwt.MissingRequiredClaimError as missing:
            raise refuse(f"it has no {missing.claim} claim") from None
        except jwt.PyJWTError:
            raise refuse("it is not a valid access token") from None
        if claims.get("tid") != self._settings.home_tenant_id:
            raise refuse("it was issued by another tenant or authority")
        return claims

    # -- authorization: may this caller call? ------------------------------------------------

    def _allowed_caller(self, claims: dict[str, Any]) -> str:
        if "scp" in claims:
            raise Forbidden("A user's delegated token (with scp) is not accepted: call with the application's own "
                            "token (client credentials).")
        app_id = claims.get("azp")
        if not isinstance(app_id, str) or app_id.lower() not in self._settings.allowed_caller_app_ids:
            raise Forbidden("The calling application is not allowed to call this service.")
        roles = claims.get("roles")
        if not isinstance(roles, list) or CALLER_ROLE not in roles:
            raise Forbidden(f"The calling application has not been granted the app role {CALLER_ROLE}.")
        return app_id.lower()

    # -- the home tenant's configuration and keys ---------------------------------------------

    def _home(self) -> tuple[OpenIdConfiguration, SigningKeys]:
        now = self._clock()
        configuration, keys = self._configuration, self._keys
        if configuration is not None and keys is not None and now - self._configuration_at < (
                CONFIGURATION_LIFETIME_SECONDS):
            return configuration, keys
        with self._lock:
            if self._configuration is None or now - self._configuration_at >= CONFIGURATION_LIFETIME_SECONDS:
                try:
                    fetched = self._fetch_configuration()
                except UpstreamError:
                    if self._configuration is None:
                        raise
                    log.warning("the home tenant's OpenID configuration could not be fetched; using the last one")
                    fetched = self._configuration
                if self._keys is None or self._configuration is None or fetched.jwks_uri != (
                        self._configuration.jwks_uri):
                    self._keys = SigningKeys(
                        SessionKeySetClient(fetched.jwks_uri, self._session, self._settings.http_timeout_seconds),
                        min_refetch_seconds=self._min_refetch, clock=self._clock)
                self._configuration, self._configuration_at = fetched, now
            assert self._keys is not None  # noqa: S101 - set together with the configuration
            return self._configuration, self._keys

    def _fetch_configuration(self) -> OpenIdConfiguration:
        import requests

        url = self._settings.home_openid_configuration_url
        try:
            response = self._session.get(url, timeout=self._settings.http_timeout_seconds)
            response.raise_for_status()
            document = response.json()
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            # 400 / 404 here: the identity platform knows no such tenant; our settings are at fault.
            log.error("the identity platform answered %s for the home tenant's OpenID configuration: check "
                      "HOME_TENANT_ID and IDENTITY_AUTHORITY_HOST", status)
            raise UpstreamError("The identity platform did not give the configuration needed to check the token; "
                                "retry later.") from None
        except (requests.RequestException, ValueError) as exc:
            log.warning("the home tenant's OpenID configuration could not be fetched: %s", type(exc).__name__)
            raise UpstreamError("The identity platform could not be reached to check the token; retry later.") from None
        issuer, jwks_uri = document.get("issuer"), document.get("jwks_uri")
        if not isinstance(issuer, str) or not issuer or not isinstance(jwks_uri, str) or (
                urlsplit(jwks_uri).scheme != "https"):
            log.warning("the home tenant's OpenID configuration has no issuer or no https jwks_uri")
            raise UpstreamError("The identity platform answered an unexpected configuration; retry later.")
        return OpenIdConfiguration(issuer=issuer, jwks_uri=jwks_uri)


def _unverified_header(token: str) -> dict[str, Any] | None:
    """The JOSE header, only to choose the key (`jwt.decode` then checks the whole token, header
    included). PyJWT's `get_unverified_header` would decode and check all three parts, which
    `jwt.decode` does again: about a third of a warm check."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, UnicodeDecodeError):
        return None
    return header if isinstance(header, dict) else None
