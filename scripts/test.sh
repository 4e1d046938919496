#!/usr/bin/env bash
# Every test: Swift unit and parity tests, then the protocol suite through an independent client.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build --build-tests
swift test --skip-build
VLMD="$PWD/.build/debug/vlmd" .venv/bin/python -m pytest tests/protocol -q
