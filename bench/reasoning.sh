#!/usr/bin/env bash
# Cost of the visual-reasoning engine (VLMReasoning) with SmolLM2-135M-Instruct Q4_1 and the tiny
# random CLIP (Tests/VLMCLIPTests/Fixtures/rn-tiny): time to first token, tokens/s per stage, beam
# width 1/2/4 with and without prefix sharing, the pairwise judge, and time per look.
#
#   bench/reasoning.sh [tokens-per-stage] [beam widths]      e.g. bench/reasoning.sh 32 1,2,4
#
# The model is found in $VLMD_MODEL_CACHE or models-cache/ (scripts/get-smollm2.sh). The numeric
# modules are built with -O even in debug, so the debug test build measures optimised code. The table
# goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
export VLMD_REASONING_BENCH=1
export VLMD_REASONING_BENCH_TOKENS="${1:-32}"
export VLMD_REASONING_BENCH_BEAMS="${2:-1,2,4}"
swift build --build-tests >/dev/null
swift test --skip-build --filter 'VLMReasoningTests.ReasoningBenchmarks' 2>&1 | grep -vE '^(◇|↳|\[)'
