#!/usr/bin/env bash
# The console's browser test also runs in Debian's firefox-esr, driven by Playwright over
# WebDriver BiDi (Playwright's own Firefox build cannot be downloaded offline; see
# tests/e2e/firefox_bidi.py). Install it when missing; needs root (CI machines and this dev
# container run as root).
set -euo pipefail
[ -x /usr/bin/firefox-esr ] && exit 0
if [ "$(id -u)" != "0" ]; then
  echo "missing firefox-esr: run 'sudo apt-get install -y firefox-esr' (needed by tests/e2e)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q firefox-esr >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q firefox-esr >/dev/null; }
echo "installed firefox-esr ($(/usr/bin/firefox-esr --version 2>/dev/null || echo firefox-esr))"
