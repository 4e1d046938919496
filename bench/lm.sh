#!/usr/bin/env bash
# Language-model throughput: vlmbench (this package) vs llama.cpp (llama-cpp-python), same model, prompt
# (512 tokens of the same text), generated token count and thread count, run alternately ROUNDS times
# (each run: one prefill + decode); the best of the rounds is reported for each side.
#   bench/lm.sh [MODEL] [THREADS]
#   MODEL defaults to $VLMD_MODEL_CACHE or <repo>/models-cache SmolLM2-135M-Instruct.Q4_1.gguf
#   (scripts/get-smollm2.sh; Gemma-3-270M: scripts/get-gemma3.sh); PYTHON defaults to /work/refvenv/bin/python.
# Rates are wall-clock tokens/s and tokens per CPU-second of the process (all threads); on a loaded
# machine the second depends less on time spent descheduled. The load average is printed before and after.
# The numeric modules target haswell (AVX2 + FMA + F16C; Package.swift): the integer kernels and ggml's FMA
# order rely on it. VLMTensorVNNI targets cascadelake; its kernels run only where cpuid finds AVX-512 VNNI.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
model="${1:-${VLMD_MODEL_CACHE:-$repo/models-cache}/$name}"
threads="${2:-2}"
python="${PYTHON:-/work/refvenv/bin/python}"
prompt="${PROMPT_TOKENS:-512}"; gen="${GEN_TOKENS:-128}"; rounds="${ROUNDS:-3}"
[[ -f "$model" ]] || { echo "model not found: $model (run scripts/get-smollm2.sh)"; exit 1; }
cd "$repo"
swift build -c release --product vlmbench --build-path .build-bench >/dev/null
echo "== $(basename "$model"), $threads threads, prompt $prompt, gen $gen, best of $rounds alternating rounds"
echo "   CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), flags: $(grep -m1 -o -w -E 'avx2|fma|f16c|avx512f|avx512bw|avx512vl|avx512_vnni' /proc/cpuinfo | sort -u | xargs)"
echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
ours=(); refs=()
for _ in $(seq "$rounds"); do
    out="$(.build-bench/release/vlmbench lm --model "$model" --threads "$threads" --prompt-tokens "$prompt" --gen-tokens "$gen" --repeats 1)"
    ours+=("$(echo "$out" | grep '^RESULT')"); kernels="$(echo "$out" | grep 'kernels:')"
    refs+=("$("$python" bench/lm_reference.py "$model" --threads "$threads" --prompt-tokens "$prompt" --gen-tokens "$gen" --repeats 1 | grep '^RESULT')")
done
echo "   load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "   vlmbench$kernels"
"$python" - "$(printf '%s\n' "${ours[@]}")" "$(printf '%s\n' "${refs[@]}")" <<'PY'
import sys
def best(lines):
    runs = [{k: float(v) for k, v in (kv.split("=") for kv in l.split()[1:])} for l in lines.splitlines()]
    return {k: (min if k == "peak_rss_mb" else max)(r[k] for r in runs) for k in runs[0]}
o, r = best(sys.argv[1]), best(sys.argv[2])
print(f"{'':10} {'prefill tok/s':>14} {'decode tok/s':>13} {'prefill tok/CPU-s':>18} {'decode tok/CPU-s':>17} {'peak RSS MB':>12}")
for name, d in (("vlmbench", o), ("llama.cpp", r)):
    print(f"{name:10} {d['prefill_tps']:14.1f} {d['decode_tps']:13.1f} {d['prefill_cpu_tps']:18.1f} {d['decode_cpu_tps']:17.1f} {d['peak_rss_mb']:12.0f}")
print(f"{'ratio':10} {o['prefill_tps']/r['prefill_tps']:13.2f}x {o['decode_tps']/r['decode_tps']:12.2f}x "
      f"{o['prefill_cpu_tps']/r['prefill_cpu_tps']:17.2f}x {o['decode_cpu_tps']/r['decode_cpu_tps']:16.2f}x")
PY
