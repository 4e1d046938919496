#!/usr/bin/env bash
# Cost of the visual-reasoning engine (VLMReasoning) with SmolLM2-135M-Instruct Q4_1 and the tiny
# random CLIP (Tests/VLMCLIPTests/Fixtures/rn-tiny): time to first token, tokens/s per stage, beam
# width 1/2/4 with and without prefix sharing, the pairwise judge, and time per look.
#
#   bench/reasoning.sh [tokens-per-stage] [beam widths]      e.g. bench/reasoning.sh 32 1,2,4
#
# The model is found in $VLMD_MODEL_CACHE or models-cache/ (scripts/get-smollm2.sh). The numeric
# modules are built with -O even in debug, so the debug test build measures optimised code. The table
# goes to stderr. More rows: VLMD_REASONING_BENCH_MMPROJ=1 (the projector path on SmolLM2's mmproj fixture),
# VLMD_REASONING_BENCH_CLIP=DIR (another open_clip checkpoint, e.g. ../shared/models/cifar-clip-rn64). For a
# release build: swift build -c release --build-tests -Xswiftc -enable-testing, then the same swift test line
# with -c release -Xswiftc -enable-testing (BENCHMARKS.md, "Visual reasoning").
#
# Measured 2026-11-26 (bench/reasoning.sh 16 1,2,4; 2 shared cores, load ~1; rn-tiny 64 px CLIP):
#   beam share judge     total s  TTFT s  generated  gen tok/s per stage   judge s  s/look
#   1    yes   loglik      16.5    4.08      64      19.5/16.5/16.3/15.3     0.0   0.001
#   1    no    loglik      38.6    4.05      64      19.6/17.1/16.3/15.0     0.0   0.001
#   2    yes   loglik      17.8    4.02      99      20.2/16.8/16.4/14.6     0.0   0.001
#   2    no    loglik      73.8    4.01      99      18.9/16.0/15.6/13.8     0.0   0.001
#   4    yes   loglik      25.0    4.06     218      19.7/16.9/16.1/15.2     0.0   0.001
#   4    no    loglik     156.7    4.00     218      20.2/16.9/16.3/12.9     0.0   0.001
#   2    yes   pairwise    48.4    4.03     126      20.0/16.9/16.4/15.3    28.5   0.001
set -euo pipefail
cd "$(dirname "$0")/.."
export VLMD_REASONING_BENCH=1
export VLMD_REASONING_BENCH_TOKENS="${1:-32}"
export VLMD_REASONING_BENCH_BEAMS="${2:-1,2,4}"
swift build --build-tests >/dev/null
swift test --skip-build --filter 'VLMReasoningTests.ReasoningBenchmarks' 2>&1 | grep -vE '^(◇|↳|\[)'
