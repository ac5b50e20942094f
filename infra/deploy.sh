#!/usr/bin/env bash
# Deploy one environment of the 10KC calendar integration with the Azure CLI:
#   1. the infrastructure: infra/main.bicep with infra/parameters/<env>.json (az deployment group create),
#   2. the code: a zip of the repository published with a remote build (Flex Consumption installs
#      requirements.txt itself),
#   3. function keys retired: callers prove themselves with Entra ID tokens, which the service
#      checks itself (README, "Security model"), so no key is created, and the web app keys of
#      earlier versions (tenkc-web, tenkc-web-*) are deleted.
# --what-if runs az deployment group what-if (validation and the list of changes) and changes
# nothing; it needs the resource group to exist (--create-group creates it, empty, first).
# Idempotent: run it again after any change; what exists and is right is left alone.
# Prints names and URLs only, never a key or a secret. See the README, "Deploy".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'EOF'
Usage: infra/deploy.sh --env NAME --resource-group NAME [options]

  --env NAME               the environment; reads infra/parameters/NAME.json (dev, prod, ...)
  --resource-group NAME    the resource group to deploy into (created when missing)
  --location REGION        region of the resource group, needed only when it does not exist yet
  --subscription ID        subscription (default: the Azure CLI's current one)
  --parameters-file PATH   another parameters file instead of infra/parameters/NAME.json; its
                           environmentName must equal --env
  --what-if                validate the Bicep and show what the deployment would change, change
                           nothing, stop; the resource group must exist (see --create-group)
  --create-group           with --what-if: create the resource group first when it is missing
                           (an empty group, needs --location; nothing else is created)
  --infra-only             deploy the infrastructure only (no code)
  --code-only              publish the code only (the infrastructure must exist; APP_VERSION
                           keeps the value of the last full deployment)
  --app-version VERSION    APP_VERSION (default: `git describe` of this checkout; outside a git
                           checkout the Bicep's default, 0.1.0)
  -h, --help               this help
EOF
}

die() {
  echo "deploy.sh: $*" >&2
  exit 1
}

note() {
  echo "==> $*" >&2
}

env_name=""
resource_group=""
location=""
subscription=""
params_file=""
what_if=0
create_group=0
do_infra=1
do_code=1
# The function keys earlier versions gave the web app; deleted once the new code runs.
retired_key_pattern='^tenkc-web(-[A-Za-z0-9_-]+)?$'
app_version=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --env) env_name="${2:?--env needs a value}"; shift 2 ;;
    --resource-group) resource_group="${2:?--resource-group needs a value}"; shift 2 ;;
    --location) location="${2:?--location needs a value}"; shift 2 ;;
    --subscription) subscription="${2:?--subscription needs a value}"; shift 2 ;;
    --parameters-file) params_file="${2:?--parameters-file needs a value}"; shift 2 ;;
    --what-if) what_if=1; shift ;;
    --create-group) create_group=1; shift ;;
    --infra-only) do_code=0; shift ;;
    --code-only) do_infra=0; shift ;;
    --key-name | --rotate-key)
      die "$1: function keys are retired; the 10KC web app calls with an Entra ID token for the API's app registration (README, \"Deploy\", step 6, and \"Security model\")" ;;
    --app-version) app_version="${2:?--app-version needs a value}"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

if [[ -z "$env_name" || -z "$resource_group" ]]; then
  usage >&2
  exit 2
fi
if [[ $do_infra -eq 0 && $do_code -eq 0 ]]; then
  die "--infra-only and --code-only exclude each other"
fi
if [[ $what_if -eq 1 && $do_infra -eq 0 ]]; then
  die "--what-if shows the infrastructure's changes, which --code-only skips; drop one of them"
fi

command -v python3 >/dev/null 2>&1 || die "python3 is needed (to read the parameters file and build the package)"

params_file="${params_file:-$here/parameters/$env_name.json}"
[[ -f "$params_file" ]] || die "no parameters file $params_file"
if grep -q 'REPLACE-ME' "$params_file"; then
  die "fill in the REPLACE-ME values of $params_file first (README, \"Deploy\")"
fi
file_env="$(python3 - "$params_file" <<'PY'
import json, sys
try:
    print(json.load(open(sys.argv[1]))["parameters"]["environmentName"]["value"])
except (OSError, ValueError, KeyError, TypeError):
    sys.exit(1)
PY
)" || die "$params_file is not a parameters file with parameters.environmentName.value"
if [[ "$file_env" != "$env_name" ]]; then
  die "--env $env_name, but $params_file is for environment \"$file_env\" (its environmentName): give the --env and the parameters file of the same environment"
fi

command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed: https://learn.microsoft.com/cli/azure/install-azure-cli"

az_common=()
if [[ -n "$subscription" ]]; then
  az_common+=(--subscription "$subscription")
fi

az account show --output none "${az_common[@]}" 2>/dev/null || die "not signed in: run az login (and az account set --subscription ...)"

# Publishing to Flex Consumption (config-zip with a remote build) needs Azure CLI 2.60 or later.
cli_version="$(az version --query '"azure-cli"' --output tsv)"
python3 - "$cli_version" <<'PY' || die "Azure CLI $cli_version is too old: 2.60 or later is needed (az upgrade)"
import sys
parts = [int(p) for p in sys.argv[1].split(".")[:2] if p.isdigit()]
sys.exit(0 if len(parts) == 2 and tuple(parts) >= (2, 60) else 1)
PY

if [[ -z "$app_version" ]]; then
  app_version="$(git -C "$here/.." describe --tags --always --dirty 2>/dev/null || true)"
  if [[ -z "$app_version" && $do_infra -eq 1 ]]; then
    note "not a git checkout: APP_VERSION stays the Bicep's default 0.1.0 (give --app-version to set it)"
  fi
fi

deployment_name="tenkc-$env_name"
deploy_args=(
  --resource-group "$resource_group"
  --name "$deployment_name"
  --template-file "$here/main.bicep"
  --parameters "@$params_file"
)
if [[ -n "$app_version" ]]; then
  deploy_args+=(--parameters "appVersion=$app_version")
fi

group_exists="$(az group exists --name "$resource_group" --output tsv "${az_common[@]}")"

create_resource_group() {
  [[ -n "$location" ]] || die "resource group $resource_group does not exist: give --location to create it"
  note "creating resource group $resource_group in $location"
  az group create --name "$resource_group" --location "$location" \
    --tags service=tenkc-cal "environment=$env_name" --output none "${az_common[@]}"
}

if [[ $what_if -eq 1 ]]; then
  if [[ "$group_exists" != "true" ]]; then
    if [[ $create_group -eq 0 ]]; then
      die "resource group $resource_group does not exist, and what-if (which also validates the template) runs only against an existing group. Add --create-group (with --location) to create the empty group first: it holds nothing and costs nothing; or create it yourself with az group create"
    fi
    create_resource_group
  fi
  note "what-if of $deployment_name in $resource_group: validates the template and lists the changes (nothing is changed)"
  az deployment group what-if "${deploy_args[@]}" "${az_common[@]}"
  exit 0
fi

if [[ $do_infra -eq 1 ]]; then
  if [[ "$group_exists" != "true" ]]; then
    create_resource_group
  fi
  note "deploying infra/main.bicep as $deployment_name (a few minutes the first time)"
  az deployment group create "${deploy_args[@]}" --output none "${az_common[@]}"
elif [[ "$group_exists" != "true" ]]; then
  die "resource group $resource_group does not exist: deploy the infrastructure first"
fi

output() {
  az deployment group show --resource-group "$resource_group" --name "$deployment_name" \
    --query "properties.outputs.$1.value" --output tsv "${az_common[@]}"
}

app_name="$(output functionAppName)"
function_url="$(output functionUrl)"
public_base_url="$(output publicBaseUrl)"
vault_name="$(output keyVaultName)"
redirect_uri="$(output consentRedirectUri)"
api_audience="$(output apiAudience)"
home_tenant="$(output homeTenantId)"
[[ -n "$app_name" ]] || die "deployment $deployment_name in $resource_group has no outputs: deploy the infrastructure first"

if [[ $do_code -eq 1 ]]; then
  workdir="$(mktemp -d)"
  trap 'rm -rf "$workdir"' EXIT
  python3 "$here/package_app.py" "$workdir/app.zip"
  # On a first deployment the identity's new role on the deployment container can take a few
  # minutes to apply: the publish then fails with 403 from storage, so try again for a while.
  attempts=6
  for attempt in $(seq 1 "$attempts"); do
    note "publishing the code to $app_name with a remote build (try $attempt of $attempts)"
    if az functionapp deployment source config-zip --resource-group "$resource_group" --name "$app_name" \
      --src "$workdir/app.zip" --build-remote true --output none "${az_common[@]}"; then
      break
    fi
    [[ $attempt -lt $attempts ]] || die "publishing failed $attempts times; see the deployment log in the portal (Deployment Center)"
    note "publishing failed; trying again in 60 s"
    sleep 60
  done

  # Earlier versions gave the web app a function key; the routes no longer take one. Delete them
  # (only names are read; the host serves the keys API once it runs the new code).
  # shellcheck disable=SC2016 # a JMESPath literal, not a shell expansion
  names_query='keys(functionKeys || `{}`)'
  key_names=""
  listed=0
  for attempt in $(seq 1 6); do
    if key_names="$(az functionapp keys list --resource-group "$resource_group" --name "$app_name" \
      --query "$names_query" --output tsv "${az_common[@]}" 2>/dev/null)"; then
      listed=1
      break
    fi
    if [[ $attempt -lt 6 ]]; then
      sleep 15
    fi
  done
  if [[ $listed -eq 0 ]]; then
    note "WARNING: the host of $app_name does not answer the keys API yet; run this again later to delete the retired web app keys (tenkc-web, tenkc-web-*)"
  else
    while IFS= read -r retired; do
      [[ -n "$retired" ]] || continue
      note "deleting function key $retired: callers now prove themselves with Entra ID tokens"
      az functionapp keys delete --resource-group "$resource_group" --name "$app_name" \
        --key-type functionKeys --key-name "$retired" --output none "${az_common[@]}"
    done < <(grep -E "$retired_key_pattern" <<<"$key_names" || true)
  fi

  if command -v curl >/dev/null 2>&1; then
    healthy=0
    for attempt in $(seq 1 10); do
      if curl --fail --silent --show-error --max-time 15 --output /dev/null "$function_url/api/health"; then
        healthy=1
        break
      fi
      sleep 10
    done
    if [[ $healthy -eq 1 ]]; then
      note "$function_url/api/health answers"
    else
      note "WARNING: $function_url/api/health does not answer yet; look at Application Insights (the app stops at start on a bad setting and names it)"
    fi
  fi
fi

cat <<EOF

Environment $env_name in resource group $resource_group (deployment $deployment_name)
  Function App       $app_name
  Function URL       $function_url
  API base URL       $public_base_url/api
                     (what the 10KC web app calls: PUBLIC_BASE_URL + /api)
  Key Vault          $vault_name
  Redirect URI       $redirect_uri
                     (the app registration's Web redirect URI; README "Deploy", step 4)
  Callers            Entra ID access tokens of tenant $home_tenant for the API $api_audience
                     (the web app asks for scope api://$api_audience/.default with the client
                     credentials flow; its app needs the app role Calendar.Integration and must be
                     in ALLOWED_CALLER_APP_IDS); every /api/tenants request also sends
                     X-Organization-Id. No function keys. README "Deploy", step 6.
EOF
