"""HTTP sessions that read the process environment once, not on every request.

A `requests.Session` with `trust_env` (the default) scans every environment variable for proxy
settings and looks for a `.netrc` file on each request; on an Azure Functions instance, where
app settings are environment variables, that was about a quarter of the CPU of a Table Storage
call. So, when no proxy is configured, the session stops reading the environment and keeps the
one thing it still needs from it: the CA bundle `REQUESTS_CA_BUNDLE` / `CURL_CA_BUNDLE` names,
read per request (two lookups; tests point it at the sandbox's CA). With a proxy variable set the
session is left as it is, so proxies and `NO_PROXY` keep working exactly as before.
"""

from __future__ import annotations

import os
from typing import Any

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def proxy_configured() -> bool:
    return any(os.environ.get(name) or os.environ.get(name.upper()) for name in _PROXY_VARIABLES)


def ca_bundle() -> str | bool:
    """What requests would verify TLS with from the environment (True: its own bundle)."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def environment_read_once(session: Any) -> bool:
    """Stop `session` reading the environment per request, unless a proxy is configured. Answers
    whether it did (then the caller passes `verify=ca_bundle()` itself)."""
    if proxy_configured():
        return False
    session.trust_env = False
    return True
