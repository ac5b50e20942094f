"""No secret or key anywhere in infra/, and the settings that keep the environment keyless and
encrypted in transit: storage without shared keys, TLS 1.2, HTTPS only, Key Vault with RBAC, soft
delete and purge protection, no publishing passwords."""

from __future__ import annotations

import re

import pytest

from tests.infra.conftest import INFRA, module_tree, one_resource, relative, resources_of_type

CHECKED_SUFFIXES = {".bicep", ".json", ".sh", ".py", ".yaml", ".md"}
INFRA_FILES = sorted(
    path for path in INFRA.rglob("*")
    if path.is_file() and path.suffix in CHECKED_SUFFIXES and ".venv" not in path.parts
)

# Things that are, or fetch, a secret. listKeys()/list*() read keys at deployment time and put
# them in the template's state; a connection string with AccountKey= or a SAS is a key.
SECRET_PATTERNS = [
    r"AccountKey\s*=",
    r"SharedAccessSignature\s*=",
    r"SharedAccessKey\s*=",
    r"InstrumentationKey\s*=",
    r"[?&]sig=",
    r"\blist(Keys|Secrets|Credentials?|ConnectionStrings|AccountSas|ServiceSas)\s*\(",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    r"\beyJ[A-Za-z0-9_-]{20,}\.",  # a JWT
    r"@secure\(\)",  # no secret is ever passed into a deployment
]
QUOTED = {".bicep": re.compile(r"'([^'\n]*)'"), ".json": re.compile(r'"([^"\n]*)"')}


def key_like(literal: str) -> bool:
    """A whole string literal of 32+ base64 / base64url characters mixing cases and digits: a key
    or a password. GUIDs (lower-case hex), names, paths and URLs are not."""
    return (
        re.fullmatch(r"[A-Za-z0-9+/=_-]{32,}", literal) is not None
        and any(c.isdigit() for c in literal)
        and any(c.isupper() for c in literal)
        and any(c.islower() for c in literal)
    )


@pytest.mark.parametrize("path", INFRA_FILES, ids=relative)
def test_no_secret_or_key_literal(path):
    text = path.read_text()
    for pattern in SECRET_PATTERNS:
        assert not re.search(pattern, text), f"{relative(path)} matches {pattern}"
    if path.suffix in QUOTED:
        literals = [literal for literal in QUOTED[path.suffix].findall(text) if key_like(literal)]
        assert not literals, f"{relative(path)}: key-like literal(s) {literals}"


def test_the_key_detector_detects_keys():
    assert key_like("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")
    assert not key_like("b86a8fe4-44ce-4948-aee5-eccb2c155cd7")
    assert not key_like("Microsoft.Authorization/roleDefinitions")


def test_outputs_hold_no_secret(trees):
    for path, tree in trees.items():
        for name, output in tree.get("outputs", {}).items():
            assert not re.search(r"(?i)key$|secret|password|connectionstring|token", name), f"{path}: {name}"
            assert "ConnectionString" not in str(output["value"]), f"{path}: output {name}"


def test_storage_is_keyless_and_tls_only(trees):
    account = one_resource(module_tree(trees, "storage"), "Microsoft.Storage/storageAccounts")["config"]
    properties = account["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["defaultToOAuthAuthentication"] is True
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True
    assert properties["allowBlobPublicAccess"] is False
    container = one_resource(module_tree(trees, "storage"), "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert container["config"]["properties"]["publicAccess"] == "None"


def test_key_vault_uses_rbac_soft_delete_and_purge_protection(trees):
    vault = one_resource(module_tree(trees, "keyvault"), "Microsoft.KeyVault/vaults")["config"]["properties"]
    assert vault["enableRbacAuthorization"] is True
    assert vault["enableSoftDelete"] is True
    assert vault["enablePurgeProtection"] is True
    assert vault["softDeleteRetentionInDays"] == "retentionDays"
    assert "accessPolicies" not in vault
    assert vault["enabledForTemplateDeployment"] is False


def test_key_vault_audit_log_goes_to_log_analytics(trees):
    tree = module_tree(trees, "keyvault")
    setting = one_resource(tree, "Microsoft.Insights/diagnosticSettings")["config"]
    assert setting["scope"] == "vault"
    assert {"categoryGroup": "audit", "enabled": True} in setting["properties"]["logs"]


def test_function_app_is_https_only_with_tls_1_2(trees):
    site = one_resource(module_tree(trees, "functionapp"), "Microsoft.Web/sites")["config"]["properties"]
    assert site["httpsOnly"] is True
    assert site["siteConfig"]["minTlsVersion"] == "1.2"
    assert site["siteConfig"]["scmMinTlsVersion"] == "1.2"
    assert site["siteConfig"]["ftpsState"] == "Disabled"


def test_no_publishing_passwords(trees):
    kind = "Microsoft.Web/sites/basicPublishingCredentialsPolicies"
    policies = resources_of_type(module_tree(trees, "functionapp"), kind)
    assert {p["config"]["name"]: p["config"]["properties"]["allow"] for p in policies.values()} == {
        "scm": False,
        "ftp": False,
    }


def test_no_parameter_is_secure_or_a_secret(trees):
    for path, tree in trees.items():
        for name, parameter in tree.get("parameters", {}).items():
            assert not any(d["type"] == "secure" for d in parameter["decorators"]), f"{path}: {name}"
            assert not re.search(r"(?i)secret$|password|key$|connectionstring", name) or name.endswith("Name"), (
                f"{path}: parameter {name} looks like a secret"
            )
