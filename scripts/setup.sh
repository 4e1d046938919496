#!/usr/bin/env bash
# Installs what building and testing vlmd needs; safe to run again (does nothing when all is there).
#   system: a C toolchain's pkg-config, OpenBLAS, libpng, zlib (Debian packages)
#   Python: .venv with the protocol-test dependencies (tests/requirements.txt)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(pkg-config libopenblas-dev libpng-dev zlib1g-dev python3-venv unzip)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import pygls, pytest, hypothesis, jsonschema, mcp, nbclient, nbformat, ipykernel" 2>/dev/null; then
  echo "setup: creating .venv" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q -r tests/requirements.txt
fi
