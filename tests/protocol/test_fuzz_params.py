"""Property-based: any params to any method get exactly one reply, and the daemon keeps serving.
Field names come from the spec, so the values reach the handlers' validation, not only the decoder."""

import json
import subprocess

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import INIT, ROOT, SCHEMA, frame, read_messages, vlmd_path

SHARED = ROOT.parent / "shared"
FIXTURES = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures"
LOADS = [
    {"kind": "clip", "path": str(FIXTURES / "rn-tiny")},
    {"kind": "gguf", "path": str(SHARED / "models" / "stories260K.gguf")},
]
# Methods whose valid calls can run long are left to their own tests; their validation is fuzzed
# with a budget-capping field forced to a tiny value.
CAPS = {"generate": {"maxTokens": 4}, "optimise-prompt": {"steps": 1, "shots": 1},
        "generate-with-visual-selection": {"maxTokensPerStage": 2, "maxSteps": 1, "maxLooks": 0},
        "dataset/evaluate": {"limit": 4}, "debug/stream": {"count": 3}, "ping": {"delayMs": 0}}


def field_names(method):
    spec = SCHEMA["methods"][method]["params"]
    ref = spec.get("$ref", "")
    definition = SCHEMA["$defs"].get(ref.split("/")[-1], {}) if ref else spec
    return sorted(definition.get("properties", {}))


scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 100), st.floats(allow_nan=False, allow_infinity=False, width=32),
                    st.text(max_size=12), st.sampled_from([str(SHARED / "data/images/coins.png"), "cifar", "coop", "{} x"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=6)
methods = sorted(m for m in SCHEMA["methods"] if m not in ("initialize", "shutdown", "daemon/stop"))  # lifecycle: they end the session


@st.composite
def calls(draw):
    method = draw(st.sampled_from(methods))
    names = field_names(method)
    params = {name: draw(values) for name in draw(st.lists(st.sampled_from(names), max_size=5, unique=True))} if names else {}
    if draw(st.booleans()):
        params = draw(st.one_of(values, st.just(params)))
    if isinstance(params, dict):
        params.update(CAPS.get(method, {}))
    return method, params


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(calls(), min_size=1, max_size=6))
def test_any_params_get_one_reply_and_the_daemon_survives(batch):
    stream = INIT
    for i, load in enumerate(LOADS):
        stream += frame(json.dumps({"jsonrpc": "2.0", "id": f"load{i}", "method": "models/load", "params": load}).encode())
    for i, (method, params) in enumerate(batch):
        stream += frame(json.dumps({"jsonrpc": "2.0", "id": i, "method": method, "params": params}).encode())
    stream += frame(b'{"jsonrpc":"2.0","id":"last","method":"ping"}')
    proc = subprocess.Popen([vlmd_path(), "--log-level", "off"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc.stdin.write(stream)
    proc.stdin.flush()
    # Keep stdin open until the final ping is answered, so nothing is cancelled by end of input.
    out = b""
    while b'"id":"last"' not in out:
        chunk = proc.stdout.read1(1 << 16)
        assert chunk, f"daemon exited early (code {proc.poll()}) after: {out[-500:]!r}"
        out += chunk
    proc.stdin.close()
    out += proc.stdout.read()
    assert proc.wait(timeout=60) == 1  # end of input without shutdown
    replies = [m for m in read_messages(out) if "method" not in m]
    ids = [m["id"] for m in replies]
    assert sorted(i for i in ids if isinstance(i, int)) == list(range(len(batch)))
    for m in replies:
        if "error" in m:
            assert m["error"]["code"] != -32603 or m["id"] is None, m  # bad input is never an internal error
