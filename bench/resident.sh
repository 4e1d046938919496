#!/usr/bin/env bash
# Models resident across CLI commands: wall time of one `vlm classify` of one image with a CLIP,
# (A) against a shared daemon that already holds the model (`vlm daemon start`, one warm-up run
# loads it), versus (B) today's cold path, a private daemon per command (`--private`): start vlmd,
# load the CLIP, encode, classify, shut down. Whole-process wall time, by farm-bench (paired A/B).
#
#   bench/resident.sh [--build .build/release] [--clip DIR] [--image PNG] [--runs N]
# The socket lives in a temp dir (VLMD_SOCKET), never the user's default; the daemon is stopped after.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=.build/release
CLIP=../shared/models/cifar-clip-rn64
IMAGE=../shared/data/images/chelsea.png
RUNS=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build) BUILD="$2"; shift 2 ;;
    --clip) CLIP="$2"; shift 2 ;;
    --image) IMAGE="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
VLM="$BUILD/vlm"
[[ -x "$VLM" && -x "$BUILD/vlmd" ]] || { echo "no vlm/vlmd in $BUILD: swift build -c release" >&2; exit 2; }
RUN_DIR="$(mktemp -d)"
export VLMD_SOCKET="$RUN_DIR/run/vlmd.sock"
trap '"$VLM" daemon stop >/dev/null 2>&1 || true; rm -rf "$RUN_DIR"' EXIT

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -sr)" >&2
"$VLM" daemon start >&2
CLASSIFY=(classify --clip "$CLIP" --labels airplane,automobile,bird,cat,deer,dog,frog,horse,ship,truck --templates cifar "$IMAGE")
farm-bench -n "$RUNS" --warmup 1 --timeout 600 --vs "$VLM ${CLASSIFY[*]} --private" -- "$VLM" "${CLASSIFY[@]}"
"$VLM" status | grep -E "model loads|clip" >&2
