"""infra/deploy.sh: shell syntax and shellcheck, and its behaviour against a stand-in `az` that
records every call: the order of the steps, --what-if changing nothing (and refusing a missing
group unless --create-group), publishing retried, no function key ever created and the web app
keys of earlier versions deleted (the retired key options refused with the reason), options that
exclude each other, --env checked against the parameters file, and no key value ever printed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from tests.infra.conftest import INFRA

SCRIPT = INFRA / "deploy.sh"
KEY_VALUE = "stub-function-key-value-never-printed"

FAKE_AZ = textwrap.dedent(
    """\
    #!{python}
    # A stand-in for the Azure CLI: records its arguments, answers like az would.
    import json, os, sys, zipfile
    args = sys.argv[1:]
    state = os.environ["AZ_STUB_DIR"]
    with open(os.path.join(state, "calls.jsonl"), "a") as log:
        log.write(json.dumps(args) + "\\n")
    words = [a for a in args if not a.startswith("-")]
    def option(name):
        return args[args.index(name) + 1] if name in args else None
    quiet = option("--output") == "none" or option("-o") == "none"
    if args[:1] == ["version"]:
        print(os.environ.get("AZ_STUB_VERSION", "2.67.0"))
    elif args[:2] == ["group", "exists"]:
        print(os.environ.get("AZ_STUB_GROUP_EXISTS", "false"))
    elif args[:3] == ["deployment", "group", "show"]:
        outputs = {{
            "functionAppName": "func-tenkc-cal-dev-abc123",
            "functionUrl": "https://func-tenkc-cal-dev-abc123.azurewebsites.net",
            "publicBaseUrl": "https://func-tenkc-cal-dev-abc123.azurewebsites.net",
            "keyVaultName": "kvtenkccaldevabc123",
            "consentRedirectUri": "https://func-tenkc-cal-dev-abc123.azurewebsites.net/api/consent/callback",
            "apiAudience": "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d",
            "homeTenantId": "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0",
        }}
        print(outputs[option("--query").split(".")[2]])
    elif args[:4] == ["functionapp", "deployment", "source", "config-zip"]:
        counter = os.path.join(state, "publish-failures")
        left = int(open(counter).read()) if os.path.exists(counter) else 0
        if left > 0:
            open(counter, "w").write(str(left - 1))
            print("ERROR: 403 from storage", file=sys.stderr)
            sys.exit(1)
        with zipfile.ZipFile(option("--src")) as package:
            open(os.path.join(state, "package.txt"), "w").write("\\n".join(package.namelist()))
    elif args[:3] == ["functionapp", "keys", "list"]:
        if os.environ.get("AZ_STUB_KEYS_DOWN"):
            sys.exit(1)
        print("\\n".join(os.environ.get("AZ_STUB_KEYS", "default").split(",")))
    elif args[:3] == ["functionapp", "keys", "set"]:
        if not quiet:
            print(json.dumps({{"name": option("--key-name"), "value": "{key}"}}))
    """
)


@pytest.fixture
def stub(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(FAKE_AZ.format(python=sys.executable, key=KEY_VALUE))
    az.chmod(0o755)
    for name in ("sleep", "curl"):  # no waiting, no network
        tool = bin_dir / name
        tool.write_text("#!/bin/sh\nexit 0\n")
        tool.chmod(0o755)
    params = tmp_path / "test.json"
    document = json.loads((INFRA / "parameters" / "dev.json").read_text())
    document["parameters"]["appClientId"]["value"] = "11111111-2222-3333-4444-555555555555"
    document["parameters"]["allowedReturnOrigins"]["value"] = "https://app.10kc.example"
    document["parameters"]["apiAudience"]["value"] = "6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d"
    document["parameters"]["allowedCallerAppIds"]["value"] = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
    document["parameters"]["alertEmail"]["value"] = "ops@10kc.example"
    params.write_text(json.dumps(document))
    state = tmp_path / "state"
    state.mkdir()
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "AZ_STUB_DIR": str(state),
        "PARAMS": str(params),
        "HOME": str(tmp_path),
    }


def deploy(stub: dict[str, str], *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    environment = {**os.environ, **stub, **env}
    result = subprocess.run(
        ["bash", str(SCRIPT), *args], env=environment, capture_output=True, text=True, check=False, timeout=120,
    )
    log = Path(stub["AZ_STUB_DIR"]) / "calls.jsonl"
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def commands(calls: list[list[str]]) -> list[str]:
    """Each call's command words: what comes before its first option."""
    named = []
    for call in calls:
        words = []
        for word in call:
            if word.startswith("-"):
                break
            words.append(word)
        named.append(" ".join(words))
    return named


def option(call: list[str], name: str) -> str:
    return call[call.index(name) + 1]


BASE = ("--env", "dev", "--resource-group", "rg-tenkc-dev", "--location", "westeurope")


def test_bash_syntax():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_shellcheck(tools_bin):
    result = subprocess.run([str(tools_bin / "shellcheck"), str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_needs_environment_and_resource_group(stub):
    result, calls = deploy(stub)
    assert result.returncode == 2 and "Usage" in result.stderr
    assert calls == []


def test_refuses_parameters_still_to_fill_in(stub):
    result, calls = deploy(stub, *BASE)  # the committed dev.json has REPLACE-ME values
    assert result.returncode == 1
    assert "REPLACE-ME" in result.stderr
    assert calls == []


def test_refuses_an_old_azure_cli(stub):
    result, calls = deploy(stub, *BASE, "--parameters-file", stub["PARAMS"], AZ_STUB_VERSION="2.59.1")
    assert result.returncode == 1 and "2.60" in result.stderr
    assert "functionapp" not in " ".join(commands(calls))


def test_a_first_deployment_runs_every_step_in_order(stub):
    result, calls = deploy(stub, *BASE, "--parameters-file", stub["PARAMS"], "--app-version", "1.2.3",
                           AZ_STUB_GROUP_EXISTS="false", AZ_STUB_KEYS="default")
    assert result.returncode == 0, result.stderr
    steps = commands(calls)
    order = ["group create", "deployment group create", "deployment group show",
             "functionapp deployment source config-zip", "functionapp keys list"]
    positions = [steps.index(step) for step in order]
    assert positions == sorted(positions), steps

    create = calls[steps.index("group create")]
    assert option(create, "--location") == "westeurope"
    deployment = calls[steps.index("deployment group create")]
    assert option(deployment, "--template-file") == str(INFRA / "main.bicep")
    assert f"@{stub['PARAMS']}" in deployment and "appVersion=1.2.3" in deployment
    assert option(deployment, "--name") == "tenkc-dev"

    publish = calls[steps.index("functionapp deployment source config-zip")]
    assert option(publish, "--build-remote") == "true"
    assert option(publish, "--name") == "func-tenkc-cal-dev-abc123"
    packaged = (Path(stub["AZ_STUB_DIR"]) / "package.txt").read_text().splitlines()
    assert "function_app.py" in packaged and "host.json" in packaged

    assert not [step for step in steps if step in ("functionapp keys set", "functionapp keys delete")]

    assert "https://func-tenkc-cal-dev-abc123.azurewebsites.net/api/consent/callback" in result.stdout
    assert "API base URL       https://func-tenkc-cal-dev-abc123.azurewebsites.net/api\n" in result.stdout
    assert "API 6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d" in result.stdout
    assert "scope api://6a5b4c3d-2e1f-4a0b-9c8d-7e6f5a4b3c2d/.default" in result.stdout
    assert "tenant 0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0" in result.stdout and "X-Organization-Id" in result.stdout
    assert "x-functions-key" not in result.stdout and KEY_VALUE not in result.stdout + result.stderr


def test_a_second_run_leaves_the_group_alone(stub):
    result, calls = deploy(stub, *BASE, "--parameters-file", stub["PARAMS"], AZ_STUB_GROUP_EXISTS="true")
    assert result.returncode == 0, result.stderr
    steps = commands(calls)
    assert "group create" not in steps
    assert "deployment group create" in steps and "functionapp deployment source config-zip" in steps


def test_the_web_app_keys_of_earlier_versions_are_deleted_and_none_created(stub):
    result, calls = deploy(stub, *BASE, "--parameters-file", stub["PARAMS"], AZ_STUB_GROUP_EXISTS="true",
                           AZ_STUB_KEYS="default,tenkc-web,tenkc-web-2,other-team")
    assert result.returncode == 0, result.stderr
    deleted = [option(call, "--key-name") for call in calls if commands([call]) == ["functionapp keys delete"]]
    assert deleted == ["tenkc-web", "tenkc-web-2"]  # "default" and other keys are not ours
    assert all(option(call, "--key-type") == "functionKeys" for call in calls
               if commands([call]) == ["functionapp keys delete"])
    assert "functionapp keys set" not in commands(calls)
    assert KEY_VALUE not in result.stdout + result.stderr


def test_a_host_not_answering_the_keys_api_does_not_fail_the_deployment(stub):
    result, calls = deploy(stub, *BASE, "--parameters-file", stub["PARAMS"], AZ_STUB_GROUP_EXISTS="true",
                           AZ_STUB_KEYS_DOWN="1")
    assert result.returncode == 0, result.stderr
    assert "run this again later" in result.stderr
    assert "functionapp keys delete" not in commands(calls)


@pytest.mark.parametrize("retired", [("--rotate-key",), ("--key-name", "tenkc-web")])
def test_the_retired_key_options_are_refused_with_the_reason(stub, retired):
    result, calls = deploy(stub, *BASE, "--parameters-file", stub["PARAMS"], *retired, AZ_STUB_GROUP_EXISTS="true")
    assert result.returncode == 1
    assert "function keys are retired" in result.stderr and "Entra ID" in result.stderr
    assert calls == []


CHANGING = ("group create", "deployment group create", "functionapp deployment source config-zip",
            "functionapp keys set", "functionapp keys delete")


def test_what_if_changes_nothing(stub):
    result, calls = deploy(stub, *BASE, "--parameters-file", stub["PARAMS"], "--what-if", AZ_STUB_GROUP_EXISTS="true")
    assert result.returncode == 0, result.stderr
    steps = commands(calls)
    assert "deployment group what-if" in steps
    what_if = calls[steps.index("deployment group what-if")]
    assert option(what_if, "--template-file") == str(INFRA / "main.bicep") and f"@{stub['PARAMS']}" in what_if
    assert not [step for step in steps if step in CHANGING]


def test_what_if_without_the_group_fails_and_offers_create_group(stub):
    # Before: "every resource would be created" and exit 0, with the template never validated.
    result, calls = deploy(stub, *BASE, "--parameters-file", stub["PARAMS"], "--what-if", AZ_STUB_GROUP_EXISTS="false")
    assert result.returncode == 1
    assert "does not exist" in result.stderr and "--create-group" in result.stderr
    steps = commands(calls)
    assert "deployment group what-if" not in steps
    assert not [step for step in steps if step in CHANGING]


def test_what_if_with_create_group_makes_the_empty_group_then_validates(stub):
    result, calls = deploy(stub, *BASE, "--parameters-file", stub["PARAMS"], "--what-if", "--create-group",
                           AZ_STUB_GROUP_EXISTS="false")
    assert result.returncode == 0, result.stderr
    steps = commands(calls)
    assert steps.index("group create") < steps.index("deployment group what-if")
    assert option(calls[steps.index("group create")], "--location") == "westeurope"
    assert not [step for step in steps if step in CHANGING and step != "group create"]


def test_create_group_needs_a_location(stub):
    result, calls = deploy(stub, "--env", "dev", "--resource-group", "rg-tenkc-dev", "--parameters-file",
                           stub["PARAMS"], "--what-if", "--create-group", AZ_STUB_GROUP_EXISTS="false")
    assert result.returncode == 1 and "--location" in result.stderr
    assert not [step for step in commands(calls) if step in CHANGING or step == "deployment group what-if"]


def test_create_group_leaves_an_existing_group_alone(stub):
    result, calls = deploy(stub, *BASE, "--parameters-file", stub["PARAMS"], "--what-if", "--create-group",
                           AZ_STUB_GROUP_EXISTS="true")
    assert result.returncode == 0, result.stderr
    steps = commands(calls)
    assert "group create" not in steps and "deployment group what-if" in steps


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--what-if", "--code-only"), "--code-only"),
        (("--infra-only", "--code-only"), "exclude each other"),
    ],
)
def test_options_that_exclude_each_other_fail_before_any_call(stub, options, message):
    result, calls = deploy(stub, *BASE, "--parameters-file", stub["PARAMS"], *options, AZ_STUB_GROUP_EXISTS="true")
    assert result.returncode == 1 and message in result.stderr
    assert calls == []


def test_env_must_match_the_parameters_file(stub):
    result, calls = deploy(stub, "--env", "prod", "--resource-group", "rg-tenkc-prod", "--parameters-file",
                           stub["PARAMS"], AZ_STUB_GROUP_EXISTS="true")  # the file says environmentName dev
    assert result.returncode == 1
    assert "--env prod" in result.stderr and '"dev"' in result.stderr
    assert calls == []


def test_prod_refuses_to_run_until_the_operators_are_named():
    values = json.loads((INFRA / "parameters" / "prod.json").read_text())["parameters"]
    assert values["operatorPrincipalId"]["value"].startswith("REPLACE-ME")


def test_outside_a_git_checkout_app_version_is_the_bicep_default(stub, tmp_path):
    copy = tmp_path / "unpacked" / "infra"
    copy.mkdir(parents=True)
    shutil.copy(SCRIPT, copy / "deploy.sh")
    environment = {**os.environ, **stub, "AZ_STUB_GROUP_EXISTS": "true", "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    result = subprocess.run(
        ["bash", str(copy / "deploy.sh"), *BASE, "--parameters-file", stub["PARAMS"], "--what-if"],
        env=environment, capture_output=True, text=True, check=False, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "0.1.0" in result.stderr and "--app-version" in result.stderr
    log = Path(stub["AZ_STUB_DIR"]) / "calls.jsonl"
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    what_if = calls[commands(calls).index("deployment group what-if")]
    assert not [arg for arg in what_if if arg.startswith("appVersion=")]


def test_publishing_is_retried_while_the_new_role_propagates(stub):
    (Path(stub["AZ_STUB_DIR"]) / "publish-failures").write_text("2")
    result, calls = deploy(stub, *BASE, "--parameters-file", stub["PARAMS"], AZ_STUB_GROUP_EXISTS="true")
    assert result.returncode == 0, result.stderr
    assert commands(calls).count("functionapp deployment source config-zip") == 3


def test_code_only_skips_the_bicep(stub):
    result, calls = deploy(stub, *BASE, "--parameters-file", stub["PARAMS"], "--code-only",
                           AZ_STUB_GROUP_EXISTS="true")
    assert result.returncode == 0, result.stderr
    steps = commands(calls)
    assert "deployment group create" not in steps
    assert "functionapp deployment source config-zip" in steps


def test_infra_only_publishes_nothing(stub):
    result, calls = deploy(stub, *BASE, "--parameters-file", stub["PARAMS"], "--infra-only",
                           AZ_STUB_GROUP_EXISTS="true")
    assert result.returncode == 0, result.stderr
    steps = commands(calls)
    assert "deployment group create" in steps
    assert not [step for step in steps if step.startswith("functionapp")]


def test_the_package_holds_the_app_and_nothing_local(tmp_path):
    package = tmp_path / "app.zip"
    subprocess.run([sys.executable, str(INFRA / "package_app.py"), str(package)], check=True, capture_output=True)
    names = zipfile.ZipFile(package).namelist()
    assert {"function_app.py", "host.json", "requirements.txt", "shared/settings.py"} <= set(names)
    top = {name.split("/")[0] for name in names}
    assert not top & {"tests", "infra", "sandbox", "devhost", "bench", "tools", ".venv", "node_modules", ".local"}
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert not {"local.settings.json", "local.settings.sample.json", "requirements-dev.txt"} & set(names)


def test_shellcheck_is_on_the_tools_path(tools_bin):
    assert shutil.which("shellcheck", path=str(tools_bin))
