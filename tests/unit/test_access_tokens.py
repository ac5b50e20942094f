"""The check of callers' tokens (shared/access_tokens.py) without a server: a fake HTTPS session
serves the home tenant's OpenID configuration and key set, a fake clock moves time. What is
fetched when, and what every tenant route does before anything else."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import azure.functions as func
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.access_tokens import (
    CONFIGURATION_LIFETIME_SECONDS,
    KEYS_LIFETIME_SECONDS,
    KEYS_REFETCH_MIN_SECONDS,
    CallerTokens,
)
from shared.errors import Forbidden, Unauthenticated, UpstreamError
from shared.settings import Settings

HOME = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
API = "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d"
WEB = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
AUTHORITY = "https://login.example"
ISSUER = f"{AUTHORITY}/{HOME}/v2.0"
JWKS_URI = f"{AUTHORITY}/{HOME}/discovery/v2.0/keys"
SETTINGS = Settings.from_env({
    "PUBLIC_BASE_URL": "https://calendar.10kc.example", "ALLOWED_RETURN_ORIGINS": "https://app.10kc.example",
    "APP_CLIENT_ID": "11111111-2222-3333-4444-555555555555", "KEY_VAULT_URL": "https://kv.vault.azure.net",
    "SERVICE_STORAGE": "UseDevelopmentStorage=true", "IDENTITY_AUTHORITY_HOST": AUTHORITY,
    "HOME_TENANT_ID": HOME, "API_AUDIENCE": API, "ALLOWED_CALLER_APP_IDS": WEB})


class Key:
    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex

    def jwk(self) -> dict[str, Any]:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return jwk | {"kid": self.kid, "use": "sig", "alg": "RS256"}

    def token(self, **changes: Any) -> str:
        now = int(time.time())
        claims = {"aud": API, "iss": ISSUER, "iat": now, "nbf": now, "exp": now + 3600, "azp": WEB,
                  "roles": ["Calendar.Integration"], "tid": HOME, "ver": "2.0", "uti": uuid.uuid4().hex} | changes
        claims = {name: value for name, value in claims.items() if value is not None}
        return jwt.encode(claims, self.private, algorithm="RS256", headers={"kid": self.kid})


class Answer:
    def __init__(self, body: Any, status: int = 200) -> None:
        self.body, self.status_code = body, status

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            import requests

            raise requests.HTTPError(f"{self.status_code}")

    def json(self) -> Any:
        return self.body


class Identity:
    """The fake session: the home tenant's configuration and key set; counts every GET."""

    def __init__(self, *keys: Key) -> None:
        self.keys = list(keys)
        self.gets: list[str] = []
        self.down = False

    def get(self, url: str, timeout: float) -> Answer:
        self.gets.append(url)
        if self.down:
            import requests

            raise requests.ConnectionError("down")
        if url == SETTINGS.home_openid_configuration_url:
            return Answer({"issuer": ISSUER, "jwks_uri": JWKS_URI})
        assert url == JWKS_URI
        return Answer({"keys": [key.jwk() for key in self.keys]})

    def count(self, url: str) -> int:
        return self.gets.count(url)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def key() -> Key:
    return Key()


def checker(identity: Identity, clock: Clock | None = None) -> CallerTokens:
    return CallerTokens(SETTINGS, identity, clock=clock or Clock())


def test_a_good_token_names_its_app_and_warm_checks_fetch_nothing(key):
    identity = Identity(key)
    tokens = checker(identity)
    assert tokens.verify(key.token()) == WEB
    assert tokens.verify(key.token(aud=f"api://{API}")) == WEB
    assert identity.gets == [SETTINGS.home_openid_configuration_url, JWKS_URI]


def test_an_unknown_kid_refetches_once_per_interval(key):
    identity, clock = Identity(key), Clock()
    tokens = checker(identity, clock)
    tokens.verify(key.token())
    strangers = [Key() for _ in range(30)]
    for stranger in strangers:
        with pytest.raises(Unauthenticated):
            tokens.verify(stranger.token())
    assert identity.count(JWKS_URI) == 2  # the first fetch, then one for the first unknown kid
    clock.now += KEYS_REFETCH_MIN_SECONDS
    for stranger in strangers:
        with pytest.raises(Unauthenticated):
            tokens.verify(stranger.token())
    assert identity.count(JWKS_URI) == 3


def test_a_rotated_key_is_fetched_at_the_first_request_that_uses_it(key):
    identity, clock = Identity(key), Clock()
    tokens = checker(identity, clock)
    tokens.verify(key.token())
    new = Key()
    identity.keys.insert(0, new)  # published by the identity platform
    assert tokens.verify(new.token()) == WEB  # no waiting for an interval or the cache's lifetime
    assert tokens.verify(key.token()) == WEB
    assert identity.count(JWKS_URI) == 2


def test_the_key_set_is_fetched_again_after_its_lifetime_and_kept_if_that_fails(key):
    assert KEYS_LIFETIME_SECONDS == 3600
    identity, clock = Identity(key), Clock()
    tokens = checker(identity, clock)
    tokens.verify(key.token())
    clock.now += KEYS_LIFETIME_SECONDS - 1
    tokens.verify(key.token())
    assert identity.count(JWKS_URI) == 1
    clock.now += 1
    tokens.verify(key.token())
    assert identity.count(JWKS_URI) == 2
    identity.down = True
    clock.now += KEYS_LIFETIME_SECONDS
    assert tokens.verify(key.token()) == WEB  # the last good set keeps serving
    assert tokens.verify(key.token()) == WEB  # and the next try waits an interval
    assert identity.count(JWKS_URI) == 3
    identity.down = False
    clock.now += KEYS_REFETCH_MIN_SECONDS
    assert tokens.verify(key.token()) == WEB
    assert identity.count(JWKS_URI) == 4


def test_the_configuration_is_fetched_daily_and_an_outage_before_the_first_is_502(key):
    identity, clock = Identity(key), Clock()
    identity.down = True
    tokens = checker(identity, clock)
    with pytest.raises(UpstreamError):
        tokens.verify(key.token())
    identity.down = False
    tokens.verify(key.token())
    clock.now += CONFIGURATION_LIFETIME_SECONDS
    tokens.verify(key.token())
    assert identity.count(SETTINGS.home_openid_configuration_url) == 3


def refused_saying(key, token: str, why: str) -> None:
    with pytest.raises(Unauthenticated) as refused:
        checker(Identity(key)).verify(token)
    assert why in refused.value.message and token not in refused.value.message
    assert refused.value.headers == {"WWW-Authenticate": 'Bearer error="invalid_token"'}


@pytest.mark.parametrize(("changes", "why"), [
    ({"iss": f"https://login.microsoftonline.com/{HOME}/v2.0"}, "another tenant or authority"),
    ({"tid": str(uuid.uuid4())}, "another tenant or authority"),
    ({"aud": WEB}, "another API"),
    ({"exp": None}, "no exp claim"),
])
def test_refused_tokens_say_why_without_the_token(key, changes, why):
    refused_saying(key, key.token(**changes), why)


@pytest.mark.parametrize(("claim", "seconds", "why"), [("exp", -600, "expired"), ("nbf", 600, "not valid yet")])
def test_tokens_outside_their_lifetime_say_why(key, claim, seconds, why):
    # From the clock when the test runs (not when the suite was collected, minutes earlier).
    refused_saying(key, key.token(**{claim: int(time.time()) + seconds}), why)


@pytest.mark.parametrize("changes", [{"azp": str(uuid.uuid4())}, {"roles": ["Other"]}, {"roles": None},
                                     {"scp": "user_impersonation"}, {"azp": None}])
def test_refused_callers_are_403(key, changes):
    with pytest.raises(Forbidden) as refused:
        checker(Identity(key)).verify(key.token(**changes))
    assert refused.value.headers == {"WWW-Authenticate": 'Bearer error="insufficient_scope"'}


def test_every_tenant_route_is_anonymous_to_the_host_and_refuses_a_request_without_a_token():
    """Routes under tenants/ check the caller themselves: a new one that forgets is caught here."""
    import function_app
    from shared.platform_routes import app_functions

    tenant_routes = 0
    for function in app_functions(function_app.app):
        for binding in json.loads(function.get_function_json())["bindings"]:
            if binding.get("type") != "httpTrigger":
                continue
            assert binding["authLevel"].lower() == "anonymous", function.get_function_name()
            if not binding["route"].startswith("tenants/"):
                continue
            tenant_routes += 1
            for method in binding["methods"]:
                request = func.HttpRequest(method=method, url=f"http://127.0.0.1:7071/api/{binding['route']}",
                                           body=b"{}", route_params={"tenantId": "x", "userId": "y", "bookingId": "z"})
                answer = function.get_user_function()(request)
                assert answer.status_code == 401, (method, binding["route"])
                assert json.loads(answer.get_body())["error"]["code"] == "unauthenticated"
                assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert tenant_routes >= 6


def test_an_accepted_token_is_remembered_by_its_hash_until_its_exp(key, monkeypatch):
    identity = Identity(key)
    tokens = checker(identity)
    token = key.token(exp=int(time.time()) - 299)  # expired, but inside the 5 minutes of skew
    assert tokens.verify(token) == WEB
    decodes = []
    monkeypatch.setattr("shared.access_tokens.jwt.decode", lambda *a, **k: decodes.append(1) or {})
    assert tokens.verify(token) == WEB and decodes == []  # remembered: no second signature check
    assert all(isinstance(d, bytes) and len(d) == 32 for d in tokens._accepted)  # hashes, never tokens
    monkeypatch.undo()
    time.sleep(1.5)  # now past exp + skew: checked in full again, and refused
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.verify(token)


def test_a_refused_token_is_not_remembered(key):
    tokens = checker(Identity(key))
    token = key.token(roles=[])
    for _ in range(2):
        with pytest.raises(Forbidden):
            tokens.verify(token)
    assert not tokens._accepted
