"""The service's callers in tests/sandbox_seed.json, and their tokens from the sandbox.

- `API`: the app registration that exposes the service's API (API_AUDIENCE), app role
  Calendar.Integration;
- `WEB_APP`: the 10KC web app, allowed (ALLOWED_CALLER_APP_IDS) and assigned the role;
- `NO_ROLE`: allowed, never assigned the role;
- `NOT_ALLOWED`: assigned the role, not in ALLOWED_CALLER_APP_IDS.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

SEED: dict[str, Any] = json.loads((Path(__file__).resolve().parents[1] / "sandbox_seed.json").read_text())
HOME = SEED["homeTenantId"]
API, WEB_APP, NO_ROLE, NOT_ALLOWED = (app for app in SEED["apps"][1:5])
API_SCOPE = f"api://{API['clientId']}/.default"
ORGANIZATION = "org-42"  # the organization the tests' web app acts for, unless a test says otherwise


def caller_env() -> dict[str, str]:
    """The service's settings for these callers."""
    return {"HOME_TENANT_ID": HOME, "API_AUDIENCE": API["clientId"],
            "ALLOWED_CALLER_APP_IDS": f"{WEB_APP['clientId']},{NO_ROLE['clientId']}"}


_tokens: dict[tuple[str, str, str, str], tuple[str, float]] = {}


def caller_token(sandbox: Any, app: dict[str, Any] = WEB_APP, *, tenant: str = HOME, scope: str = API_SCOPE) -> str:
    """A client-credentials token of `app` from the sandbox, reused while it has 5 minutes left."""
    key = (sandbox.base_url, app["clientId"], tenant, scope)
    cached = _tokens.get(key)
    if cached and cached[1] - time.time() > 300:
        return cached[0]
    token = sandbox.client_token(tenant, app["clientId"], app["clientSecret"], scope)
    import jwt

    _tokens[key] = (token, float(jwt.decode(token, options={"verify_signature": False})["exp"]))
    return token


def caller_headers(sandbox: Any, organization: str = ORGANIZATION) -> dict[str, str]:
    return {"Authorization": f"Bearer {caller_token(sandbox)}", "X-Organization-Id": organization}


def forged(sandbox: Any, *, drop: tuple[str, ...] = (), header: dict[str, Any] | None = None,
           key: Any = None, **claims: Any) -> str:
    """A token like the web app's real one, with `claims` changed (or `drop`ped), signed with the
    sandbox's current signing key (the key the identity platform signs with), unless `key` (a
    private key of the test's own) is given. For the cases the sandbox would never issue."""
    import jwt

    real = caller_token(sandbox)
    body = {k: v for k, v in jwt.decode(real, options={"verify_signature": False}).items() if k not in drop}
    body.update(claims)
    current = _current_signing_key(Path(sandbox.state_dir) / "signing-key.pem")
    headers = {"typ": "JWT", "kid": current.kid, **(header or {})}
    return jwt.encode(body, key or current.key, algorithm=headers.pop("alg", "RS256"), headers=headers)


_keys: dict[bytes, Any] = {}


def _current_signing_key(path: Path) -> Any:
    """The sandbox's signing key as its files hold it now, loaded once per version of the file
    (loading an RSA key checks it, tens of milliseconds; benches forge thousands of tokens)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from sandbox.pki import SigningKey

    pem = path.read_bytes()  # a rotation writes a new key here
    if pem not in _keys:
        _keys[pem] = SigningKey.of(serialization.load_pem_private_key(pem, None),
                                       x509.load_pem_x509_certificate(path.with_name("signing-cert.pem").read_bytes()))
    return _keys[pem]
