#!/usr/bin/env bash
# The browser tests drive Debian's chromium (Playwright's own browser download cannot work
# offline) and make it trust the sandbox CA through an NSS database written with certutil
# (libnss3-tools), so TLS verification stays on. Install what is missing; needs root (CI
# machines and this dev container run as root).
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v certutil >/dev/null 2>&1 || missing+=(libnss3-tools)
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ]; then
  echo "missing ${missing[*]}: run 'sudo apt-get install -y ${missing[*]}' (needed by tests/e2e)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
echo "installed ${missing[*]} ($(/usr/bin/chromium --version 2>/dev/null || echo chromium))"
