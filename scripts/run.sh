#!/usr/bin/env bash
# The main job: build vlmd (release) and run it on stdin/stdout, as an editor or notebook would.
# Flags are passed to vlmd (see `vlmd --help`). The CLI is .build/release/vlm.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
swift build -c release --product vlmd >&2
swift build -c release --product vlm >&2
echo "vlmd: speaking JSON-RPC 2.0 (LSP framing) on stdin/stdout; see protocol/README.md. Ctrl-D ends it." >&2
exec .build/release/vlmd "$@"
