"""The Flex Consumption rules (learn.microsoft.com/azure/azure-functions/flex-consumption-plan):
an FC1 plan on Linux, one app with kind functionapp,linux, the Python version in
functionAppConfig.runtime, the package in a blob container reached with the managed identity,
scale settings in scaleAndConcurrency, and none of the settings of the older plans."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import ROOT, accessor_path, module_tree, one_resource


@pytest.fixture(scope="module")
def functionapp(trees) -> dict[str, Any]:
    return module_tree(trees, "functionapp")


@pytest.fixture(scope="module")
def site(functionapp) -> dict[str, Any]:
    return one_resource(functionapp, "Microsoft.Web/sites")


def test_plan_is_flex_consumption_on_linux(functionapp):
    plan = one_resource(functionapp, "Microsoft.Web/serverfarms")
    assert plan["config"]["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["config"]["kind"] == "functionapp"
    assert plan["config"]["properties"]["reserved"] is True


def test_site_is_a_linux_function_app_on_that_plan(site):
    assert site["config"]["kind"] == "functionapp,linux"
    assert accessor_path(site["config"]["properties"]["serverFarmId"]) == "plan.id"
    # functionAppConfig exists from Microsoft.Web 2023-12-01 on.
    assert site["api_version"] >= "2023-12-01"


def test_runtime_is_python_3_11(site):
    runtime = site["config"]["properties"]["functionAppConfig"]["runtime"]
    assert runtime == {"name": "python", "version": "3.11"}
    assert "requires-python = \">=3.11\"" in (ROOT / "pyproject.toml").read_text()


def test_no_runtime_in_site_config(site):
    site_config = site["config"]["properties"].get("siteConfig", {})
    for name in ("linuxFxVersion", "alwaysOn", "use32BitWorkerProcess", "netFrameworkVersion", "appSettings"):
        assert name not in site_config, f"siteConfig.{name} does not belong on Flex Consumption"


def test_deployment_storage_uses_the_managed_identity(site):
    storage = site["config"]["properties"]["functionAppConfig"]["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["value"] == "deploymentContainerUrl"
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }


def test_the_deployment_container_is_in_the_environment_storage(main_tree, trees):
    params = main_tree["modules"]["functionApp"]["config"]["params"]
    assert params["deploymentContainerUrl"] == "${storage.outputs.blobEndpoint}${deploymentContainerName}"
    storage_module = main_tree["modules"]["storage"]["config"]["params"]
    assert storage_module["deploymentContainerName"] == "deploymentContainerName"


def test_site_runs_as_the_user_assigned_identity(site):
    identity = site["config"]["identity"]
    assert identity["type"] == "UserAssigned"
    assert [key.strip("'") for key in identity["userAssignedIdentities"]] == ["${identityId}"]


def test_scale_settings(site, main_tree):
    scale = site["config"]["properties"]["functionAppConfig"]["scaleAndConcurrency"]
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"
    assert scale["instanceMemoryMB"] == "instanceMemoryMB"
    assert "alwaysReady" in scale
    memory = main_tree["parameters"]["instanceMemoryMB"]
    allowed = next(d["argument"] for d in memory["decorators"] if d["type"] == "allowed")
    assert set(allowed) <= {512, 2048, 4096}
