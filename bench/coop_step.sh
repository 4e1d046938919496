#!/usr/bin/env bash
# One CoOp step (16 shots x 10 classes, M = 16, RN50-size text tower, random weights) in Swift and
# in PyTorch CPU with the same thread count, plus a full soft-prompt run on the tiny test model.
#
#   bench/coop_step.sh [threads=2] [steps=5]
#
# The PyTorch script writes the shared model directory (/tmp/coop-bench-model, ~250 MB) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${1:-2}"
STEPS="${2:-5}"
MODEL_DIR="${COOP_BENCH_MODEL:-/tmp/coop-bench-model}"
PYTHON="${PYTHON:-/work/refvenv/bin/python}"

echo "== PyTorch (full 77-token context as CoOp runs it, then truncated at the longest EOT)"
OMP_NUM_THREADS="$THREADS" "$PYTHON" bench/coop_reference.py --model-dir "$MODEL_DIR" --threads "$THREADS" --steps "$STEPS" 2>/dev/null
echo "== Swift (EOT-truncated, [SOT]+context prefix computed once for all classes, input gradients only)"
COOP_BENCH_MODEL="$MODEL_DIR" COOP_BENCH_THREADS="$THREADS" COOP_BENCH_STEPS="$STEPS" OPENBLAS_NUM_THREADS="$THREADS" \
  swift test --filter VLMPromptLearningTests.CoOpBenchmark 2>&1 | grep -E '^\{' 
