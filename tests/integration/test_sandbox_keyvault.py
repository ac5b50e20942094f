"""The sandbox's Key Vault, driven by the real azure-keyvault-secrets client with the real
azure-identity credentials (managed identity via IDENTITY_ENDPOINT, DefaultAzureCredential, a
client secret), over HTTPS with the sandbox CA bundle."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from sandbox.testing import SandboxProcess, start_sandbox
from tests.conftest import SANDBOX_SEED

pytestmark = pytest.mark.integration

SEED_PATH = SANDBOX_SEED  # tests/sandbox_seed.json moved to the tests' day
SEED: dict[str, Any] = json.loads(SEED_PATH.read_text(encoding="utf-8"))
HOME = SEED["homeTenantId"]
CLIENT_ID, SECRET = SEED["apps"][0]["clientId"], SEED["apps"][0]["clientSecret"]
CONSENTED = SEED["tenants"][0]
AZURE_ENV = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
             "AZURE_USERNAME", "AZURE_PASSWORD", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_AUTHORITY_HOST",
             "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    sbx = start_sandbox(tmp_path_factory.mktemp("sandbox-keyvault"), SEED_PATH)
    yield sbx
    sbx.stop()


@pytest.fixture(autouse=True)
def managed_identity_env(sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Function App's environment: IDENTITY_ENDPOINT / IDENTITY_HEADER, and a CA bundle that
    trusts the sandbox (requests reads REQUESTS_CA_BUNDLE before any ``verify=``)."""
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    for name, value in sandbox.managed_identity_env().items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def client(sandbox: SandboxProcess) -> Iterator[SecretClient]:
    with SecretClient(vault_url=sandbox.base_url, credential=ManagedIdentityCredential(),
                      verify_challenge_resource=False) as secret_client:
        yield secret_client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def managed_identity_token(sandbox: SandboxProcess, resource: str = "https://vault.azure.net") -> str:
    # App Service's managed-identity API version, not a date
    response = sandbox.session().get(sandbox.identity_endpoint,
                                     params={"api-version": "2019-08-01", "resource": resource},
                                     headers={"X-IDENTITY-HEADER": sandbox.identity_header})
    response.raise_for_status()
    return str(response.json()["access_token"])


def test_set_get_versions_and_disable(client: SecretClient) -> None:
    name = unique("rt")
    first = client.set_secret(name, "v1", content_type="text/plain", tags={"tenant": "fabrikam"})
    second = client.set_secret(name, "v2")
    assert first.properties.version != second.properties.version
    assert len(first.properties.version) == 32 and int(first.properties.version, 16) >= 0
    assert first.id.endswith(f"/secrets/{name}/{first.properties.version}")
    assert first.properties.content_type == "text/plain" and first.properties.tags == {"tenant": "fabrikam"}

    latest = client.get_secret(name)
    assert (latest.value, latest.properties.version) == ("v2", second.properties.version)
    assert client.get_secret(name, first.properties.version).value == "v1"
    assert client.get_secret(name.upper()).value == "v2"  # names are case-insensitive

    versions = {p.version for p in client.list_properties_of_secret_versions(name)}
    assert versions == {first.properties.version, second.properties.version}

    updated = client.update_secret_properties(name, first.properties.version, enabled=False)
    assert updated.enabled is False
    with pytest.raises(HttpResponseError) as disabled:
        client.get_secret(name, first.properties.version)
    assert disabled.value.status_code == 403
    assert "disabled" in str(disabled.value)
    assert client.get_secret(name).value == "v2"
    client.update_secret_properties(name, first.properties.version, enabled=True)
    assert client.get_secret(name, first.properties.version).value == "v1"


def test_list_pages_through_next_link(client: SecretClient, sandbox: SandboxProcess) -> None:
    prefix = unique("page")
    names = {f"{prefix}-{i}" for i in range(27)}
    for name in names:
        client.set_secret(name, "x")
    start = sandbox.next_request_index()
    listed = {p.name for p in client.list_properties_of_secrets()}
    assert names <= listed
    assert "app-client-secret" in listed
    pages = [r for r in sandbox.requests(since=start) if r["method"] == "GET" and r["path"] == "/secrets"]
    assert len(pages) >= 2
    assert any("$skiptoken=" in r["query"] for r in pages)


def test_soft_delete_conflict_purge_and_recover(client: SecretClient) -> None:
    name = unique("deleted")
    client.set_secret(name, "before")
    deleted = client.begin_delete_secret(name).result()
    assert deleted.recovery_id and deleted.recovery_id.endswith(f"/deletedsecrets/{name}")
    assert deleted.deleted_date is not None and deleted.scheduled_purge_date is not None
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)
    assert client.get_deleted_secret(name).name == name
    assert name in {d.name for d in client.list_deleted_secrets()}

    with pytest.raises(ResourceExistsError) as conflict:
        client.set_secret(name, "again")
    assert "deleted but recoverable state" in str(conflict.value)

    client.purge_deleted_secret(name)
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret(name)
    assert client.set_secret(name, "after purge").value == "after purge"

    client.begin_delete_secret(name).result()
    recovered = client.begin_recover_deleted_secret(name).result()
    assert recovered.name == name
    assert client.get_secret(name).value == "after purge"


def test_missing_secret_is_resource_not_found(client: SecretClient) -> None:
    with pytest.raises(ResourceNotFoundError) as missing:
        client.get_secret(unique("missing"))
    assert "SecretNotFound" in str(missing.value)
    with pytest.raises(ResourceNotFoundError):
        client.get_secret("app-client-secret", "0" * 32)


def test_seeded_secret_is_there(client: SecretClient) -> None:
    assert client.get_secret("app-client-secret").value == SECRET


def test_default_azure_credential(sandbox: SandboxProcess) -> None:
    credential = DefaultAzureCredential(exclude_interactive_browser_credential=True,
                                        exclude_visual_studio_code_credential=True, exclude_cli_credential=True,
                                        exclude_powershell_credential=True, exclude_developer_cli_credential=True,
                                        exclude_shared_token_cache_credential=True)
    with SecretClient(sandbox.base_url, credential, verify_challenge_resource=False) as client:
        name = unique("dac")
        client.set_secret(name, "from DefaultAzureCredential")
        assert client.get_secret(name).value == "from DefaultAzureCredential"


def test_client_secret_credential_of_the_home_tenant_app(sandbox: SandboxProcess) -> None:
    credential = ClientSecretCredential(HOME, CLIENT_ID, SECRET, authority=f"127.0.0.1:{sandbox.port}",
                                        disable_instance_discovery=True)
    with SecretClient(sandbox.base_url, credential, verify_challenge_resource=False) as client:
        assert client.get_secret("app-client-secret").value == SECRET


def test_client_secret_credential_of_another_tenant_is_refused(sandbox: SandboxProcess) -> None:
    credential = ClientSecretCredential(CONSENTED["tenantId"], CLIENT_ID, SECRET,
                                        authority=f"127.0.0.1:{sandbox.port}", disable_instance_discovery=True,
                                        additionally_allowed_tenants=["*"])
    token = credential.get_token("https://vault.azure.net/.default").token
    response = sandbox.session().get(f"{sandbox.base_url}/secrets/app-client-secret",
                                     params={"api-version": "7.5"}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert "AKV10032" in response.json()["error"]["message"]


def test_challenge_without_token(sandbox: SandboxProcess) -> None:
    response = requests.get(f"{sandbox.base_url}/secrets/x?api-version=7.5", verify=str(sandbox.ca_bundle),
                            timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer authorization="{sandbox.base_url}/{HOME}", resource="https://vault.azure.net"')
    assert response.json()["error"]["code"] == "Unauthorized"
    assert response.headers["request-id"]


def test_token_for_another_audience_is_refused(sandbox: SandboxProcess) -> None:
    token = managed_identity_token(sandbox, resource="https://graph.microsoft.com")
    response = sandbox.session().get(f"{sandbox.base_url}/secrets/app-client-secret", params={"api-version": "7.5"},
                                     headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer authorization=")
    assert "AKV10022" in response.json()["error"]["message"]


def test_raw_rest_errors(sandbox: SandboxProcess) -> None:
    headers = {"Authorization": f"Bearer {managed_identity_token(sandbox)}"}
    session, base = sandbox.session(), sandbox.base_url
    bad_name = session.get(f"{base}/secrets/bad_name", params={"api-version": "7.5"}, headers=headers)
    assert (bad_name.status_code, bad_name.json()["error"]["code"]) == (400, "BadParameter")
    missing = session.get(f"{base}/secrets/nope-{uuid.uuid4().hex}", params={"api-version": "7.6"}, headers=headers)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "SecretNotFound")
    no_version = session.get(f"{base}/secrets/app-client-secret", headers=headers)
    assert (no_version.status_code, no_version.json()["error"]["code"]) == (400, "BadParameter")
    name = unique("raw")
    created = session.put(f"{base}/secrets/{name}", params={"api-version": "7.5"}, headers=headers,
                          json={"value": "v", "attributes": {"enabled": True}})
    assert created.status_code == 200
    assert created.json()["id"].startswith(f"{base}/secrets/{name}/")
    assert created.json()["attributes"]["recoveryLevel"] == "Recoverable+Purgeable"
    deleted = session.delete(f"{base}/secrets/{name}", params={"api-version": "7.5"}, headers=headers).json()
    assert "value" not in deleted and deleted["recoveryId"] == f"{base}/deletedsecrets/{name}"
    conflict = session.put(f"{base}/secrets/{name.upper()}", params={"api-version": "7.5"}, headers=headers,
                           json={"value": "again"})
    assert conflict.status_code == 409
    assert conflict.json()["error"] == {
        "code": "Conflict",
        "message": f"Secret {name.upper()} is currently in a deleted but recoverable state, and its name cannot be "
                   "reused; in this state, the secret can only be recovered or purged.",
        "innererror": {"code": "ObjectIsDeletedButRecoverable"}}
    purge = session.delete(f"{base}/deletedsecrets/{name}", params={"api-version": "7.5"}, headers=headers)
    assert purge.status_code == 204 and purge.content == b""


def test_vault_survives_a_restart(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    with start_sandbox(state_dir, SEED_PATH) as first:
        token = managed_identity_token(first)
        put = first.session().put(f"{first.base_url}/secrets/kept", params={"api-version": "7.5"},
                                  json={"value": "across restarts"}, headers={"Authorization": f"Bearer {token}"})
        assert put.status_code == 200
        ca_before = (state_dir / "ca.pem").read_bytes()
    assert (state_dir / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    assert (state_dir / "vault.json").stat().st_mode & 0o777 == 0o600
    with start_sandbox(state_dir, SEED_PATH) as second:
        assert (state_dir / "ca.pem").read_bytes() == ca_before
        # A token issued before the restart still verifies: the signing key is kept too.
        got = second.session().get(f"{second.base_url}/secrets/kept", params={"api-version": "7.5"},
                                   headers={"Authorization": f"Bearer {token}"})
        assert got.status_code == 200, got.text
        assert got.json()["value"] == "across restarts"


def test_unauthenticated_client_error_surfaces(sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-header")
    with SecretClient(sandbox.base_url, ManagedIdentityCredential(), verify_challenge_resource=False) as client, \
            pytest.raises(ClientAuthenticationError):
        client.get_secret("app-client-secret")
