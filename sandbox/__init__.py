"""A local HTTPS stand-in for the Microsoft cloud services the project talks to.

One server, one origin, dispatched by path (the contract: the team's SANDBOX.md; README.md sums it up):

- ``sandbox.identity``: the identity platform (OpenID configuration, JWKS, token endpoint) and the
  App Service managed-identity endpoint.
- ``sandbox.keyvault``: Azure Key Vault secrets, with challenge-based bearer authentication.
- ``sandbox.control``: the ``/_sandbox/...`` control endpoints (health, reset, request log).

``sandbox.server`` holds the HTTP server and the route table, ``sandbox.state`` the seeded, mutable
state, ``sandbox.seed`` the seed's validation, ``sandbox.pki`` the CA, server certificate and token
signing key, and ``sandbox.testing`` helpers to start and stop a sandbox process from tests.
Run it with ``python -m sandbox --port 8443 --state-dir .local/sandbox``.
"""
