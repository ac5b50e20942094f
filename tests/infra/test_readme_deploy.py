"""The README's "Deploy" section stays in step with infra/: the commands an operator needs are
there, the Graph permission ids match the registration manifest, and every file it names exists."""

from __future__ import annotations

import json
import re

import pytest

from tests.infra.conftest import INFRA, ROOT


@pytest.fixture(scope="module")
def deploy_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Deploy\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else len(readme)]


@pytest.mark.parametrize(
    "needed",
    [
        "az ad app create", "AzureADMultipleOrgs", "/api/consent/callback", "--web-redirect-uris",
        "infra/deploy.sh", "--what-if", "az keyvault secret set", "az keyvault certificate create",
        "az ad app credential reset", "--append", "az ad app credential delete", "setVerifiedPublisher",
        "New-ApplicationAccessPolicy", "Test-ApplicationAccessPolicy",
        "New-ServicePrincipal", "New-ManagementScope", "New-ManagementRoleAssignment",
        "Test-ServicePrincipalAuthorization", "az ad sp delete", "OPERATOR ALERT", "AZURE_CLIENT_ID",
        "APP_CREDENTIAL_TYPE", "az keyvault recover",
        # a new subscription, what-if on a new environment, variables found again a year later
        "az provider register --namespace Microsoft.Web", "az provider register --namespace Microsoft.ManagedIdentity",
        "--create-group", "az deployment group show", "properties.outputs.keyVaultName.value",
        "jq -r .parameters.appClientId.value", "az ad app list --display-name",
        # both vault roles, the secret kept off disk and screen, its expiry
        '--role "Key Vault Secrets Officer"', '--role "Key Vault Certificates Officer"',
        "--file <(printf '%s' \"$secret\")", "unset secret", "--expires", "--end-date",
        "az ad app credential list --id", "endDateTime",
        # the credential actually checked, and the alert on it
        "/admin/functions/token_refresh_timer", "az monitor scheduled-query create", "az monitor action-group create",
        "securityGroupId", "outside_security_group", "Access to OData is disabled.",
        "--app-version", "0.1.0",
        # callers: the API's registration (v2 tokens, the app role), the web app's assignment
        "AzureADMyOrg", "--identifier-uris", '"requestedAccessTokenVersion": 2', "api-app-roles.json",
        "appRoleAssignmentRequired=true", "az ad app permission add", "appRoleAssignedTo", "api://",
        "apiAudience", "allowedCallerAppIds", "X-Organization-Id", "401",
        # the admin's proof sign-in reads the directory roles in the ID token's wids
        "groupMembershipClaims=DirectoryRole",
    ],
)
def test_the_section_gives_the_command(deploy_section, needed):
    assert needed in deploy_section


def test_permission_ids_match_the_manifest(deploy_section):
    manifest = json.loads((INFRA / "app-registration" / "graph-permissions.json").read_text())
    assert [entry["resourceAppId"] for entry in manifest] == ["00000003-0000-0000-c000-000000000000"]
    accesses = {(a["id"], a["type"]) for a in manifest[0]["resourceAccess"]}
    assert accesses == {
        ("ef54d2bf-783f-4e0f-bca1-3210c0444d99", "Role"),  # Calendars.ReadWrite, application
        ("1ec239c2-d7c9-4623-a91a-a9775856bb36", "Scope"),  # Calendars.ReadWrite, delegated
        ("e1fe6dd8-ba31-4d61-89e7-88639da4683d", "Scope"),  # User.Read, delegated
    }
    for permission_id, _ in accesses:
        assert permission_id in deploy_section


def test_files_named_exist(deploy_section):
    for path in set(re.findall(r"\binfra/[\w./-]+\w", deploy_section)):
        if "<env>" in path:
            continue
        assert (ROOT / path).exists(), path


def test_certificate_policy_is_pem_exportable_and_not_auto_renewed():
    policy = json.loads((INFRA / "app-registration" / "certificate-policy.json").read_text())
    assert policy["secretProperties"]["contentType"] == "application/x-pem-file"  # what the service parses
    assert policy["keyProperties"]["exportable"] is True  # the secret must hold the private key
    # A renewal nobody registers on the app registration would be refused by the identity platform.
    assert all(action["action"]["actionType"] != "AutoRenew" for action in policy["lifetimeActions"])


def test_deploy_sh_names_the_outputs_the_section_reads(deploy_section):
    """Every `properties.outputs.<name>` the README reads is an output of main.bicep, and the
    deployment name it uses is the one deploy.sh gives."""
    main = (INFRA / "main.bicep").read_text()
    for name in set(re.findall(r"properties\.outputs\.(\w+)\.value", deploy_section)):
        assert re.search(rf"^output {name} ", main, flags=re.MULTILINE), name
    assert 'deployment_name="tenkc-$env_name"' in (INFRA / "deploy.sh").read_text()
    assert '-n "tenkc-$ENV"' in deploy_section


def test_one_display_name(deploy_section):
    """Customers see the registration's name on the consent screen: "10KC Calendar" for prod."""
    assert 'APP_NAME="10KC Calendar"' in deploy_section
    assert 'APP_NAME="10KC Calendar ($ENV)"' in deploy_section
    assert '--display-name "10KC Calendar ($ENV)"' not in deploy_section  # prod's name has no suffix


def test_rbac_for_applications_is_marked_unsupported(deploy_section):
    policy = deploy_section.index("New-ApplicationAccessPolicy")
    unsupported = deploy_section.index("Not supported by this service yet")
    assert policy < unsupported < deploy_section.index("New-ManagementRoleAssignment")


def test_the_api_app_role_is_for_applications():
    roles = json.loads((INFRA / "app-registration" / "api-app-roles.json").read_text())
    assert [(role["value"], role["allowedMemberTypes"], role["isEnabled"]) for role in roles] == [
        ("Calendar.Integration", ["Application"], True)]
    import uuid

    assert uuid.UUID(roles[0]["id"])


def test_function_keys_are_retired(deploy_section):
    assert "--key-name" not in deploy_section.replace("The retired `--key-name`", "")
    assert "az functionapp keys set" not in deploy_section
    # Only the host's master key (for the /admin API) is read; no function key is made or handed out.
    assert "functionKeys" not in deploy_section and "--query masterKey" in deploy_section
