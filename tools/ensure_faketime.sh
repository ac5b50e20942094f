#!/usr/bin/env bash
# `make test-future` moves the clock with Debian's libfaketime (package faketime). Install it when
# missing; needs root (CI machines and this dev container run as root).
set -euo pipefail
command -v faketime >/dev/null 2>&1 && exit 0
if [ "$(id -u)" != "0" ]; then
  echo "missing faketime: run 'sudo apt-get install -y faketime' (needed by make test-future)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q faketime >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q faketime >/dev/null; }
echo "installed faketime ($(dpkg-query -W -f='${Version}' faketime))"
