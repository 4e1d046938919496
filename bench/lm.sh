#!/usr/bin/env bash
# Language-model throughput: vlmbench (this package) vs llama.cpp (llama-cpp-python), same run,
# same model, prompt (512 tokens of the same text), generated token count and thread count.
#   bench/lm.sh [MODEL] [THREADS]
#   MODEL defaults to $VLMD_MODEL_CACHE or <repo>/models-cache SmolLM2-135M-Instruct.Q4_1.gguf
#   (scripts/get-smollm2.sh); PYTHON defaults to /work/refvenv/bin/python.
# The Swift build targets haswell (AVX2 + FMA): the exact ggml-order kernels rely on hardware FMA.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
model="${1:-${VLMD_MODEL_CACHE:-$repo/models-cache}/$name}"
threads="${2:-2}"
python="${PYTHON:-/work/refvenv/bin/python}"
prompt="${PROMPT_TOKENS:-512}"; gen="${GEN_TOKENS:-128}"; repeats="${REPEATS:-3}"
[[ -f "$model" ]] || { echo "model not found: $model (run scripts/get-smollm2.sh)"; exit 1; }
cd "$repo"
swift build -c release --product vlmbench --build-path .build-bench -Xswiftc -target-cpu -Xswiftc haswell >/dev/null
echo "== $model, $threads threads, prompt $prompt, gen $gen, best of $repeats"
ours="$(.build-bench/release/vlmbench lm --model "$model" --threads "$threads" --prompt-tokens "$prompt" --gen-tokens "$gen" --repeats "$repeats")"
echo "$ours" | grep -v '^RESULT'
ref="$("$python" bench/lm_reference.py "$model" --threads "$threads" --prompt-tokens "$prompt" --gen-tokens "$gen" --repeats "$repeats")"
echo "$ref" | grep -v '^RESULT'
"$python" - "$(echo "$ours" | grep '^RESULT')" "$(echo "$ref" | grep '^RESULT')" <<'PY'
import sys
def parse(line): return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
o, r = parse(sys.argv[1]), parse(sys.argv[2])
print(f"ratio vlmbench/llama.cpp: prefill {o['prefill_tps']/r['prefill_tps']:.2f}x  decode {o['decode_tps']/r['decode_tps']:.2f}x  "
      f"peak RSS {o['peak_rss_mb']:.0f} MB vs {r['peak_rss_mb']:.0f} MB")
PY
