"""The managed identity gets exactly the roles the code and the host need, each on the one
resource it is used on; role ids are named variables; assignments are named guid(scope,
principal, role) so a re-deployment finds them again. Operators get the vault roles only when
named."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import accessor_path, module_tree, resources_of_type

# Azure built-in role ids (the same in every subscription), from
# https://learn.microsoft.com/azure/role-based-access-control/built-in-roles
BUILT_IN = {
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Key Vault Certificates Officer": "a4417e6f-fecd-4de8-b567-7b0420556985",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
}
# Roles that would give more than the code needs; none may appear anywhere.
TOO_BROAD = {
    "Owner": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Contributor": "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "User Access Administrator": "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",
    "Key Vault Administrator": "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    "Key Vault Purge Operator": "a68e7c17-0ab2-4c09-9a58-125dae29748c",
    "Storage Account Contributor": "17d1049b-9a84-46fb-8f53-869881c3d3ab",
}

IDENTITY_ROLES = {
    ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts"),
    ("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts"),
    ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts"),
    ("Key Vault Secrets Officer", "Microsoft.KeyVault/vaults"),
    ("Monitoring Metrics Publisher", "Microsoft.Insights/components"),
}
OPERATOR_ROLES = {
    ("Key Vault Secrets Officer", "Microsoft.KeyVault/vaults"),
    ("Key Vault Certificates Officer", "Microsoft.KeyVault/vaults"),
}


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A conditional resource (`= if (...) {...}`) nests its body under config.config."""
    config = resource["config"]
    return config["config"] if "condition" in config else config


def assignments(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """(role name, scope type, principal, condition?, the assignment) for every role assignment."""
    variables = {name: v["value"] for name, v in tree.get("variables", {}).items()}
    by_id = {role_id: name for name, role_id in BUILT_IN.items()}
    scopes = {symbol: r["type"] for symbol, r in tree["resources"].items() if r["existing"]}
    found = []
    for symbol, resource in resources_of_type(tree, "Microsoft.Authorization/roleAssignments").items():
        config = body(resource)
        role = config["properties"]["roleDefinitionId"]["function"]
        assert role["type"] == "subscription_resource_id", f"{symbol}: roleDefinitionId via subscriptionResourceId()"
        assert role["parameters"]["resource_type"] == "Microsoft.Authorization/roleDefinitions"
        variable = role["parameters"]["resource_name_1"]
        assert variable in variables, f"{symbol}: the role id is a named variable"
        name = config["name"]["function"]
        assert name["type"] == "guid", f"{symbol}: named guid(scope, principal, role)"
        assert name["parameters"]["base_string"]["operator"]["operands"] == {
            "operand_1": config["scope"], "operand_2": "id"
        }
        assert name["parameters"]["extra_string_1"] == config["properties"]["principalId"]
        assert name["parameters"]["extra_string_2"] == variable
        found.append({
            "symbol": symbol,
            "role": by_id.get(variables[variable], variables[variable]),
            "scope": scopes[config["scope"]],
            "principal": config["properties"]["principalId"],
            "principalType": config["properties"]["principalType"],
            "conditional": "condition" in resource["config"],
        })
    return found


def test_role_assignments_live_in_rbac_bicep_only(trees):
    for path, tree in trees.items():
        if path != "infra/modules/rbac.bicep":
            assert not resources_of_type(tree, "Microsoft.Authorization/roleAssignments"), path


def test_the_identity_gets_exactly_the_roles_it_needs(trees):
    found = [a for a in assignments(module_tree(trees, "rbac")) if a["principal"] == "principalId"]
    assert {(a["role"], a["scope"]) for a in found} == IDENTITY_ROLES
    assert len(found) == len(IDENTITY_ROLES)
    assert all(a["principalType"] == "ServicePrincipal" and not a["conditional"] for a in found)


def test_operators_get_vault_roles_only_when_named(trees):
    found = [a for a in assignments(module_tree(trees, "rbac")) if a["principal"] == "operatorPrincipalId"]
    assert {(a["role"], a["scope"]) for a in found} == OPERATOR_ROLES
    assert all(a["conditional"] and a["principalType"] == "operatorPrincipalType" for a in found)


def test_no_other_principal_and_no_broad_role(trees):
    rbac = module_tree(trees, "rbac")
    assert {a["principal"] for a in assignments(rbac)} == {"principalId", "operatorPrincipalId"}
    assert set(BUILT_IN.values()) >= {v["value"] for v in rbac["variables"].values()}
    for path, tree in trees.items():
        text = str(tree)
        for name, role_id in TOO_BROAD.items():
            assert role_id not in text, f"{path} grants {name}"


def test_scopes_are_the_environment_resources(trees, main_tree):
    rbac = module_tree(trees, "rbac")
    existing = {symbol: r["config"]["name"] for symbol, r in rbac["resources"].items() if r["existing"]}
    assert existing == {
        "storageAccount": "storageAccountName",
        "vault": "keyVaultName",
        "appInsights": "appInsightsName",
    }
    params = main_tree["modules"]["rbac"]["config"]["params"]
    paths = {name: accessor_path(value) for name, value in params.items()}
    assert paths["principalId"] == "identity.properties.principalId"
    assert paths["storageAccountName"] == "storage.outputs.name"
    assert paths["keyVaultName"] == "keyVault.outputs.name"
    assert paths["appInsightsName"] == "monitoring.outputs.appInsightsName"


def test_the_app_runs_as_that_identity_after_its_roles_exist(main_tree):
    function_app = main_tree["modules"]["functionApp"]["config"]
    assert accessor_path(function_app["params"]["identityId"]) == "identity.id"
    assert function_app["dependsOn"] == ["rbac"]
