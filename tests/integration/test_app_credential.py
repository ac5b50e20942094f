"""The app's own credential: a client secret or a certificate, read from Key Vault through the
managed identity; a rotated credential is picked up after the identity platform refuses the old."""

import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from shared.tokens import IdentityError, token_claims
from tests.conftest import SANDBOX_SEED

FABRIKAM = "2b9e56f8-499e-4153-949c-a7aeb479f07e"
CONTOSO = "520e6fd5-c619-4c0f-b927-0af414daa899"


def certificate_pem() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "10KC calendar (test)")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem + cert_pem, cert_pem


@pytest.fixture
def seed():
    return json.loads(SANDBOX_SEED.read_text())


def test_client_secret_from_key_vault(app_env):
    from shared.clients import token_provider

    result = token_provider().app_token(FABRIKAM)
    claims = token_claims(result["access_token"])
    assert claims["tid"] == FABRIKAM
    assert "Calendars.ReadWrite" in claims["roles"]


def test_warm_path_makes_no_token_request(app_env, sandbox):
    from shared.clients import token_provider

    token_provider().app_token(FABRIKAM)
    since = sandbox.next_request_index()
    token_provider().app_token(FABRIKAM)
    assert sandbox.requests(since=since) == []
    token_provider().app_token(FABRIKAM, fresh=True)
    assert [e["path"] for e in sandbox.requests(since=since)] == [f"/{FABRIKAM}/oauth2/v2.0/token"]


def test_certificate_from_key_vault(app_env, sandbox, seed, monkeypatch):
    from tests.conftest import clear_caches

    bundle, cert_pem = certificate_pem()
    app = seed["apps"][0] | {"certificates": [cert_pem]}
    sandbox.reset({"apps": [app], "tenants": seed["tenants"]})
    try:
        from shared.clients import secret_store

        secret_store().set("app-client-certificate", bundle, content_type="application/x-pem-file")
        monkeypatch.setenv("APP_CREDENTIAL_TYPE", "certificate")
        clear_caches()
        from shared.clients import token_provider

        claims = token_claims(token_provider().app_token(FABRIKAM, fresh=True)["access_token"])
        assert claims["roles"] == ["Calendars.ReadWrite"]
    finally:
        sandbox.reset({"apps": seed["apps"], "tenants": seed["tenants"]})


def test_rotated_secret_is_reloaded_once(app_env, sandbox, seed):
    from shared.clients import secret_store, token_provider

    token_provider().app_token(FABRIKAM)  # the old secret is now loaded in the MSAL app
    rotated = seed["apps"][0] | {"clientSecret": "rotated~secret"}
    sandbox.reset({"apps": [rotated], "tenants": seed["tenants"]})
    try:
        secret_store().set("app-client-secret", "rotated~secret")
        claims = token_claims(token_provider().app_token(FABRIKAM, fresh=True)["access_token"])
        assert claims["tid"] == FABRIKAM
    finally:
        sandbox.reset({"apps": seed["apps"], "tenants": seed["tenants"]})
        secret_store().set("app-client-secret", seed["apps"][0]["clientSecret"])


def test_wrong_secret_is_a_credential_error_and_unconsented_tenant_a_consent_error(app_env, sandbox, seed):
    from shared.clients import secret_store, token_provider

    with pytest.raises(IdentityError) as refused:
        token_provider().app_token(CONTOSO)
    assert refused.value.is_consent_error and refused.value.aadsts == "AADSTS700016"
    secret_store().set("app-client-secret", "wrong")
    try:
        from tests.conftest import clear_caches

        clear_caches()
        from shared.clients import token_provider

        since = sandbox.next_request_index()
        with pytest.raises(IdentityError) as wrong:
            token_provider().app_token(FABRIKAM, fresh=True)
        log = sandbox.requests(since=since)
        tokens = [e for e in log if e["path"].endswith("/oauth2/v2.0/token")]
        # refused, credential read again, refused again: then it gives up
        assert len(tokens) == 2, (repr(wrong.value), [(e["method"], e["path"], e["status"]) for e in log])
        assert wrong.value.is_credential_error and wrong.value.aadsts == "AADSTS7000215"
        assert "wrong" not in str(wrong.value)
    finally:
        secret_store().set("app-client-secret", seed["apps"][0]["clientSecret"])
