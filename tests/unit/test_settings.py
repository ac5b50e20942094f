import pytest

from shared.settings import Settings, SettingsError

GOOD = {
    "PUBLIC_BASE_URL": "https://calendar.10kc.example/",
    "ALLOWED_RETURN_ORIGINS": "https://app.10kc.example, https://APP.10kc.example:443,http://127.0.0.1:3000",
    "APP_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
    "KEY_VAULT_URL": "https://kv-tenkc-prod.vault.azure.net/",
    "SERVICE_STORAGE": "UseDevelopmentStorage=true",
    "HOME_TENANT_ID": "0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0",
    "API_AUDIENCE": "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d",
    "ALLOWED_CALLER_APP_IDS": " 9A8B7C6D-5E4F-4A3B-8C2D-1E0F9A8B7C6D, 1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e ",
}


def test_defaults_are_microsofts_public_cloud():
    settings = Settings.from_env(GOOD)
    assert settings.authority_host == "https://login.microsoftonline.com"
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert settings.authority_is_microsoft
    assert settings.key_vault_is_azure
    assert settings.public_base_url == "https://calendar.10kc.example"
    assert settings.consent_callback_url == "https://calendar.10kc.example/api/consent/callback"
    assert settings.token_refresh_schedule == "0 0 */6 * * *"
    assert settings.app_credential_type == "secret"


def test_callers_settings_are_normalised():
    settings = Settings.from_env(GOOD)
    assert settings.home_tenant_id == "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
    assert settings.allowed_caller_app_ids == {"9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
                                               "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"}
    assert settings.home_openid_configuration_url == (
        "https://login.microsoftonline.com/0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0/v2.0/.well-known/openid-configuration")


def test_origins_are_normalised_and_deduplicated():
    settings = Settings.from_env(GOOD)
    assert settings.allowed_return_origins == {"https://app.10kc.example", "http://127.0.0.1:3000"}


def test_sandbox_endpoints_are_not_microsoft():
    settings = Settings.from_env(
        GOOD | {"IDENTITY_AUTHORITY_HOST": "https://127.0.0.1:8443", "KEY_VAULT_URL": "https://127.0.0.1:8443"}
    )
    assert not settings.authority_is_microsoft
    assert not settings.key_vault_is_azure


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("PUBLIC_BASE_URL", "", "PUBLIC_BASE_URL is required"),
        ("PUBLIC_BASE_URL", "calendar.10kc.example", "PUBLIC_BASE_URL must be an absolute"),
        ("PUBLIC_BASE_URL", "http://calendar.10kc.example", "PUBLIC_BASE_URL must use https"),
        ("ALLOWED_RETURN_ORIGINS", "https://app.10kc.example/admin", "is not an origin"),
        ("ALLOWED_RETURN_ORIGINS", " , ", "at least one origin"),
        ("APP_CLIENT_ID", "not-a-guid", "APP_CLIENT_ID must be a GUID"),
        ("KEY_VAULT_URL", "http://127.0.0.1:8443", "KEY_VAULT_URL must use https"),
        ("GRAPH_BASE_URL", "http://graph.microsoft.com/v1.0", "GRAPH_BASE_URL must use https"),
        ("APP_CREDENTIAL_TYPE", "password", "APP_CREDENTIAL_TYPE must be one of"),
        ("HTTP_TIMEOUT_SECONDS", "ten", "HTTP_TIMEOUT_SECONDS must be an integer"),
        ("HTTP_TIMEOUT_SECONDS", "0", "between 1 and 120"),
        ("TOKEN_REFRESH_SCHEDULE", "every 6 hours", "NCRONTAB"),
        ("STORAGE_TABLE_PREFIX", "tenkc-dev", "STORAGE_TABLE_PREFIX"),
        ("JOBS_QUEUE_NAME", "Jobs", "JOBS_QUEUE_NAME"),
        ("APP_SECRET_NAME", "app_secret", "APP_SECRET_NAME"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
        ("HOME_TENANT_ID", "", "HOME_TENANT_ID is required"),
        ("HOME_TENANT_ID", "contoso.onmicrosoft.com", "HOME_TENANT_ID must be a GUID"),
        ("API_AUDIENCE", "", "API_AUDIENCE is required"),
        ("API_AUDIENCE", "api://6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d", "not its application ID URI"),
        ("API_AUDIENCE", "calendar-api", "API_AUDIENCE must be a GUID"),
        ("ALLOWED_CALLER_APP_IDS", "", "ALLOWED_CALLER_APP_IDS is required"),
        ("ALLOWED_CALLER_APP_IDS", " , ", "ALLOWED_CALLER_APP_IDS must list at least one"),
        ("ALLOWED_CALLER_APP_IDS", "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d,web-app",
         "ALLOWED_CALLER_APP_IDS must be a GUID"),
    ],
)
def test_bad_settings_fail_with_their_name(name, value, fragment):
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env(GOOD | {name: value})


def test_storage_needs_a_connection_string_or_both_service_uris():
    env = {k: v for k, v in GOOD.items() if k != "SERVICE_STORAGE"}
    with pytest.raises(SettingsError, match="SERVICE_STORAGE"):
        Settings.from_env(env)
    with pytest.raises(SettingsError, match="SERVICE_STORAGE"):
        Settings.from_env(env | {"SERVICE_STORAGE__tableServiceUri": "https://st.table.core.windows.net"})
    settings = Settings.from_env(
        env | {"SERVICE_STORAGE__tableServiceUri": "https://st.table.core.windows.net",
               "SERVICE_STORAGE__queueServiceUri": "https://st.queue.core.windows.net"}
    )
    assert settings.storage.connection_string is None
    assert settings.storage.table_service_uri == "https://st.table.core.windows.net"


def test_errors_never_echo_a_connection_string():
    secret_bearing = "DefaultEndpointsProtocol=https;AccountKey=c2VjcmV0;AccountName=x"
    settings = Settings.from_env(GOOD | {"SERVICE_STORAGE": secret_bearing})
    assert "c2VjcmV0" not in repr(settings)


def test_sample_settings_file_lists_every_setting_and_loads():
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    values = json.loads((root / "local.settings.sample.json").read_text())["Values"]
    read = set(re.findall(r'get\("([A-Za-z_]+)"', (root / "shared" / "settings.py").read_text()))
    assert read <= set(values), f"missing from the sample: {sorted(read - set(values))}"
    readme = (root / "README.md").read_text()
    assert all(f"`{name}`" in readme for name in read), "every setting is explained in the README"
    Settings.from_env(values)
