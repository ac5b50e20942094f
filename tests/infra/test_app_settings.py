"""The Function App's settings in the Bicep: every setting the code reads, every %SETTING% a
binding names, identity-based connections for every binding and for the host, and nothing Flex
Consumption forbids or that would carry a key."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra.conftest import ROOT, accessor_path, module_tree, resources_of_type

PRODUCTION_PACKAGES = ("function_app.py", "consent", "availability", "booking", "sync", "background", "shared")

# Not allowed, or not supported, on Flex Consumption (functions-app-settings, "Flex Consumption
# plan deprecations"), plus the connection-string forms that would need an account key.
FORBIDDEN = {
    "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_TIME_ZONE", "TZ",
    "WEBSITE_RUN_FROM_PACKAGE", "WEBSITE_CONTENTSHARE", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "SCM_DO_BUILD_DURING_DEPLOYMENT", "ENABLE_ORYX_BUILD", "AzureWebJobsStorage", "SERVICE_STORAGE",
    "WEBSITE_NODE_DEFAULT_VERSION", "AzureWebJobsDashboard", "APPINSIGHTS_INSTRUMENTATIONKEY",
}


def settings_read_by_the_code() -> set[str]:
    # The same rule as tests/unit/test_settings.py: every get("NAME" in shared/settings.py.
    return set(re.findall(r'get\("([A-Za-z_]+)"', (ROOT / "shared" / "settings.py").read_text()))


def production_sources() -> str:
    files = []
    for name in PRODUCTION_PACKAGES:
        path = ROOT / name
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return "\n".join(path.read_text() for path in files)


@pytest.fixture(scope="module")
def app_settings(main_tree) -> dict[str, Any]:
    configs = resources_of_type(main_tree, "Microsoft.Web/sites/config")
    assert len(configs) == 1, "one sites/config resource holds every app setting"
    config = next(iter(configs.values()))["config"]
    assert config["name"] == "appsettings"
    assert config["parent"] == "site"
    return config["properties"]


def test_the_code_reads_the_settings_we_expect():
    assert {"PUBLIC_BASE_URL", "KEY_VAULT_URL", "SERVICE_STORAGE__tableServiceUri", "TOKEN_REFRESH_SCHEDULE"} <= (
        settings_read_by_the_code()
    )


def test_every_setting_the_code_reads_is_an_app_setting(app_settings):
    expected = settings_read_by_the_code() - {"SERVICE_STORAGE"}  # on Azure: the identity-based form
    missing = expected - set(app_settings)
    assert not missing, f"not set in infra/main.bicep: {sorted(missing)}"


def test_every_setting_a_binding_names_is_an_app_setting(app_settings):
    named = set(re.findall(r'"%([A-Za-z0-9_]+)%"', production_sources()))
    assert {"TOKEN_REFRESH_SCHEDULE", "JOBS_QUEUE_NAME"} <= named
    assert named <= set(app_settings)


def test_every_binding_connection_is_identity_based(app_settings):
    connections = set(re.findall(r'connection="([A-Za-z0-9_]+)"', production_sources()))
    assert connections, "the queue trigger names its connection"
    for name in connections:
        assert name not in app_settings, f"{name} would be a connection string"
        assert f"{name}__queueServiceUri" in app_settings or f"{name}__serviceUri" in app_settings
        assert app_settings[f"{name}__credential"] == "managedidentity"
        assert accessor_path(app_settings[f"{name}__clientId"]) == "identity.properties.clientId"


def test_host_storage_is_identity_based(app_settings):
    assert accessor_path(app_settings["AzureWebJobsStorage__accountName"]) == "storage.outputs.name"
    assert app_settings["AzureWebJobsStorage__credential"] == "managedidentity"
    assert accessor_path(app_settings["AzureWebJobsStorage__clientId"]) == "identity.properties.clientId"


def test_the_code_uses_the_same_user_assigned_identity(app_settings):
    # DefaultAzureCredential picks a user-assigned identity by AZURE_CLIENT_ID.
    assert accessor_path(app_settings["AZURE_CLIENT_ID"]) == "identity.properties.clientId"


def test_telemetry_authenticates_with_entra_id(app_settings, trees):
    assert accessor_path(app_settings["APPLICATIONINSIGHTS_CONNECTION_STRING"]) == (
        "appInsights.properties.ConnectionString"
    )
    assert app_settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identity.properties.clientId};Authorization=AAD"
    )
    components = resources_of_type(module_tree(trees, "monitoring"), "Microsoft.Insights/components")
    assert all(c["config"]["properties"]["DisableLocalAuth"] is True for c in components.values())


def test_no_forbidden_or_key_bearing_setting(app_settings):
    assert not FORBIDDEN & set(app_settings), sorted(FORBIDDEN & set(app_settings))
    for name in app_settings:
        assert not name.endswith(("__connectionString", "AccountKey")), name


def test_service_settings_come_from_parameters_or_resources(app_settings, main_tree):
    symbols = set(main_tree["parameters"]) | set(main_tree["variables"])
    for name in settings_read_by_the_code() - {"SERVICE_STORAGE"}:
        value = app_settings[name]
        path = accessor_path(value)
        from_symbol = isinstance(value, str) and value in symbols
        from_function = isinstance(value, dict) and "function" in value  # string(intParameter)
        assert from_symbol or from_function or (path and "." in path), f"{name} is a literal: make it a parameter"


def test_the_site_itself_carries_no_app_settings(trees):
    # One place only: a siteConfig.appSettings list on the site would be replaced by sites/config.
    for site in resources_of_type(module_tree(trees, "functionapp"), "Microsoft.Web/sites").values():
        assert "appSettings" not in site["config"]["properties"].get("siteConfig", {})
