"""The secret store against the sandbox's Key Vault over HTTPS, through the real
azure-keyvault-secrets client and the managed identity (DefaultAzureCredential), challenge
authentication included."""

import uuid

import pytest
import requests

from shared.errors import AlreadyExists, SecretNotFound, SecretStoreUnavailable, SecretUnavailable
from shared.secrets import SecretStore, refresh_token_secret_name


@pytest.fixture
def store(sandbox_env):
    from shared.clients import secret_store

    return secret_store()


def fresh_name() -> str:
    return refresh_token_secret_name(str(uuid.uuid4()), "ada@contoso.example")


def test_the_service_store_uses_the_managed_identity_and_reads_the_app_secret(store, sandbox):
    since = sandbox.next_request_index()
    assert store.get("app-client-secret") == "test~client-secret-value"
    log = sandbox.requests(since=since)
    paths = [entry["path"].rstrip("/") for entry in log]
    # A managed-identity token, then the secret. (The SDK caches the vault's 401 challenge per
    # host for the whole process, so whether a challenge comes first depends on earlier tests;
    # test_vault_answers_401_with_a_challenge_without_a_token covers the challenge itself.)
    assert "/msi/token" in paths
    assert paths[-1] == "/secrets/app-client-secret" and log[-1]["status"] == 200


def test_versions_round_trip(store):
    name = fresh_name()
    first = store.set(name, "token-one", content_type="refresh-token", tags={"kind": "refresh_token"})
    second = store.set(name, "token-two")
    assert first != second and len(first) == 32
    assert store.get(name) == "token-two"
    assert store.get(name, first) == "token-one"


def test_a_disabled_version_cannot_be_read_and_the_latest_still_can(store):
    name = fresh_name()
    old = store.set(name, "old")
    store.set(name, "new")
    store.disable(name, old)
    with pytest.raises(SecretUnavailable):
        store.get(name, old)
    assert store.get(name) == "new"
    store.disable(name, "0" * 32)  # a version that never existed: nothing to do


def test_missing_secret_and_version(store):
    with pytest.raises(SecretNotFound):
        store.get(fresh_name())
    name = fresh_name()
    store.set(name, "x")
    with pytest.raises(SecretNotFound):
        store.get(name, "f" * 32)


def test_a_soft_deleted_name_is_not_reusable(store):
    name = fresh_name()
    store.set(name, "v1")
    store.delete(name)
    with pytest.raises(SecretNotFound):
        store.get(name)
    with pytest.raises(AlreadyExists, match="deleted but not purged"):
        store.set(name, "v2")
    store.delete(name)  # already deleted: fine
    store.delete(fresh_name())  # never existed: fine


def test_longest_valid_name_and_invalid_names(store):
    name = "rt-" + "a" * 124
    store.set(name, "x")
    assert store.get(name) == "x"
    for bad in ("rt_x", "a" * 128, "ada@contoso"):
        with pytest.raises(ValueError, match="Key Vault secret name"):
            store.set(bad, "x")


def test_vault_answers_401_with_a_challenge_without_a_token(sandbox):
    response = requests.get(f"{sandbox.base_url}/secrets/app-client-secret?api-version=7.5",
                            verify=str(sandbox.ca_bundle), timeout=10)
    assert response.status_code == 401
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and 'resource="https://vault.azure.net"' in challenge


def test_unreachable_vault_is_unavailable_not_a_crash(sandbox_env):
    from shared.clients import azure_credential
    from tools.procs import free_port

    store = SecretStore(f"https://127.0.0.1:{free_port()}", azure_credential(), verify_challenge_resource=False,
                        retry_total=0)
    with pytest.raises(SecretStoreUnavailable):
        store.get("app-client-secret")


def test_untrusted_certificate_is_refused(sandbox, sandbox_env, monkeypatch):
    """TLS is verified: with only the system CAs, the sandbox's certificate is refused."""
    import certifi

    from shared.clients import azure_credential

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    store = SecretStore(sandbox.base_url, azure_credential(), verify_challenge_resource=False, retry_total=0)
    with pytest.raises(SecretStoreUnavailable):
        store.get("app-client-secret")
