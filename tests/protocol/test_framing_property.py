"""Property-based framing: a valid stream chopped at random points, with junk bodies injected,
still yields exactly one reply per request and one error per junk frame."""

import json
import subprocess

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import INIT, frame, read_messages, vlmd_path

junk_bodies = st.one_of(
    st.binary(min_size=1, max_size=64).filter(lambda b: not b.strip().startswith((b"{", b"["))),
    st.just(b"[1,2]"),
    st.just(b'{"jsonrpc":"2.0"}'),
    st.text(max_size=20).map(lambda t: json.dumps(t).encode()),
)

# Whole frames whose header is refused after its Content-Length was read (the body must still be
# skipped), and bodies nested past maxJSONDepth: each gets exactly one error with id null.
def bad_header(body: bytes, kind: str) -> bytes:
    n = len(body)
    return {
        "twice": b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (n, n),
        "latin1": b"Content-Length: %d\r\nContent-Type: text/json; charset=latin1\r\n\r\n" % n,
        "lf": b"Content-Length: %d\n\n" % n,
        "long": b"Content-Length: %d\r\nX-Pad: %s\r\n\r\n" % (n, b"p" * 9000),
    }[kind] + body

bad_frames = st.one_of(
    st.tuples(st.binary(max_size=40), st.sampled_from(["twice", "latin1", "lf", "long"])).map(lambda t: bad_header(*t)),
    st.integers(min_value=65, max_value=5000).map(lambda d: frame(b"[" * d + b"]" * d)),
    st.integers(min_value=500, max_value=5000).map(lambda d: frame(b"[" * d)),
)

# JSON integers beyond 64 bits are read as doubles (protocol/README.md: Numbers).
echoes = st.one_of(st.integers(min_value=-2**63, max_value=2**63 - 1), st.text(max_size=30), st.lists(st.booleans(), max_size=3))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=st.lists(st.one_of(echoes.map(lambda e: ("request", e)), junk_bodies.map(lambda j: ("junk", j)),
                             bad_frames.map(lambda f: ("bad-frame", f))), min_size=1, max_size=25),
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=20),
)
def test_chopped_stream_with_junk(items, cuts):
    body = INIT
    expected = []
    for index, (kind, value) in enumerate(items):
        if kind == "request":
            body += frame(json.dumps({"jsonrpc": "2.0", "id": index, "method": "ping", "params": {"echo": value}}).encode())
            expected.append(index)
        elif kind == "bad-frame":
            body += value
        else:
            body += frame(value)
    chunks, last = [], 0
    for cut in sorted(c % (len(body) + 1) for c in cuts):
        chunks.append(body[last:cut])
        last = cut
    chunks.append(body[last:])

    proc = subprocess.Popen([vlmd_path(), "--log-level", "off"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    for chunk in chunks:
        proc.stdin.write(chunk)
        proc.stdin.flush()
    proc.stdin.close()
    out = proc.stdout.read()
    proc.wait(timeout=30)
    messages = read_messages(out)

    replies = [m for m in messages if m.get("id") not in (None, "init")]
    assert sorted(m["id"] for m in replies) == expected
    for m in replies:
        kind, value = items[m["id"]]
        assert m["result"] == {"pong": True, "echo": value}
    junk_count = sum(1 for kind, _ in items if kind != "request")
    errors = [m for m in messages if m.get("id") is None]
    assert len(errors) == junk_count
    assert all(m["error"]["code"] in (-32700, -32600) for m in errors)
