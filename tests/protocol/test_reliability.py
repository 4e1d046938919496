"""Hostile input, faults and signals, through raw pipes: no message, header, stderr or signal may
kill, stall or desynchronise the daemon (protocol/README.md: Framing, Lifecycle; daemon.md)."""

import json
import os
import select
import signal
import subprocess
import time

import pytest

from conftest import INIT, frame, raw_session, read_messages, vlmd_path


def ping(msg_id, **params):
    return frame(json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": "ping", "params": params}).encode())


def by_id(messages):
    return {m.get("id"): m for m in messages}


# --- 1. JSON nesting: bounded, refused with an error, never a crash --------------------------------

@pytest.mark.parametrize("depth", [512, 513, 514, 10_000, 100_000])
def test_deeply_nested_body_is_refused_and_the_daemon_keeps_serving(depth):
    messages, code = raw_session(INIT + frame(b"[" * depth) + ping(2))
    assert code == 1  # end of input without shutdown; not a signal
    errors = [m for m in messages if m.get("id") is None]
    assert len(errors) == 1 and errors[0]["error"]["code"] in (-32700, -32600)
    assert by_id(messages)[2]["result"] == {"pong": True}


def nested(depth):
    value = 0
    for _ in range(depth):
        value = [value]
    return value


def test_depth_limit_is_advertised_and_enforced_with_the_request_id():
    messages, _ = raw_session(INIT)
    limit = by_id(messages)["init"]["result"]["capabilities"]["experimental"]["limits"]["maxJSONDepth"]
    assert limit >= 16
    # The message object is level 1 and params level 2, so an echo of depth d nests d + 2 deep.
    fits = ping(1, echo=nested(limit - 2))
    too_deep = ping(2, echo=nested(limit - 1))
    messages, _ = raw_session(INIT + fits + too_deep + ping(3))
    replies = by_id(messages)
    assert replies[1]["result"]["echo"] == nested(limit - 2)
    assert replies[2]["error"]["code"] == -32600 and "deeper" in replies[2]["error"]["message"]
    assert replies[3]["result"] == {"pong": True}


def test_large_body_parsed_off_the_loop_keeps_its_place_before_shutdown():
    # Bodies over 64 KiB are parsed on a compute thread; a shutdown sent after one still waits for it.
    big = ping(1, echo="x" * 300_000)
    shutdown = frame(b'{"jsonrpc":"2.0","id":2,"method":"shutdown"}')
    exit_ = frame(b'{"jsonrpc":"2.0","method":"exit"}')
    messages, code = raw_session(INIT + big + shutdown + exit_)
    replies = by_id(messages)
    assert replies[1]["result"]["echo"] == "x" * 300_000
    assert replies[2]["result"] is None and code == 0


def test_cancel_arriving_while_its_large_request_is_still_parsed_is_honoured():
    big = ping(1, delayMs=60_000, echo="y" * 300_000)
    cancel = frame(b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":1}}')
    messages, _ = raw_session(INIT + big + cancel + ping(2), timeout=30)
    replies = by_id(messages)
    assert replies[1]["error"]["code"] == -32800
    assert replies[2]["result"] == {"pong": True}


def test_ids_are_echoed_exactly_as_sent():
    body = b'{"jsonrpc":"2.0","id":2.0,"method":"ping"}'
    proc = subprocess.run([vlmd_path(), "--log-level", "off"], input=INIT + frame(body), capture_output=True, timeout=30)
    assert b'"id":2.0,' in proc.stdout


# --- 2. stderr closed, broken or never drained ------------------------------------------------------

def session_with_stderr(stream, stderr_setup, timeout=60):
    """Runs vlmd (log level debug, so every message logs) with stderr arranged by `stderr_setup`."""
    proc = subprocess.Popen([vlmd_path(), "--log-level", "debug"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            **stderr_setup)
    out, _ = proc.communicate(stream, timeout=timeout)
    return read_messages(out), proc.returncode


UNKNOWN_NOTES = b"".join(frame(b'{"jsonrpc":"2.0","method":"no/such/note"}') for _ in range(50))


def test_closed_stderr_does_not_kill_the_daemon():
    messages, code = session_with_stderr(INIT + UNKNOWN_NOTES + ping(2), {"stderr": subprocess.DEVNULL,
                                                                          "preexec_fn": lambda: os.close(2)})
    assert by_id(messages)[2]["result"] == {"pong": True}
    assert code == 1


def test_stderr_pipe_whose_reader_is_gone_does_not_kill_the_daemon():
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        messages, code = session_with_stderr(INIT + UNKNOWN_NOTES + ping(2), {"stderr": write_end})
    finally:
        os.close(write_end)
    assert by_id(messages)[2]["result"] == {"pong": True}
    assert code == 1


def test_undrained_stderr_never_blocks_and_dropped_lines_are_counted():
    read_end, write_end = os.pipe()  # nobody reads read_end: the pipe fills after ~64 KiB
    notes = b"".join(frame(b'{"jsonrpc":"2.0","method":"no/such/note/with/a/long/name/to/fill/the/pipe"}')
                     for _ in range(20_000))
    status = frame(b'{"jsonrpc":"2.0","id":3,"method":"daemon/status"}')
    try:
        messages, code = session_with_stderr(INIT + notes + ping(2) + status, {"stderr": write_end})
    finally:
        os.close(read_end)
        os.close(write_end)
    replies = by_id(messages)
    assert replies[2]["result"] == {"pong": True}
    assert replies[3]["result"]["logLinesDropped"] > 0


# --- 3. a refused header never desynchronises the stream ---------------------------------------------

BODY = b'{"jsonrpc":"2.0","id":7,"method":"ping"}'
BAD_HEADERS = {
    "twice": b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % (len(BODY), len(BODY)),
    "latin1": b"Content-Length: %d\r\nContent-Type: application/json; charset=latin1\r\n\r\n" % len(BODY),
    "lf-only": b"Content-Length: %d\n\n" % len(BODY),
    "over-8k": b"Content-Length: %d\r\nX-Padding: %s\r\n\r\n" % (len(BODY), b"p" * 9000),
    "non-ascii": b"Content-Length: %d\r\nX-Name: caf\xe9\r\n\r\n" % len(BODY),
}


@pytest.mark.parametrize("case", sorted(BAD_HEADERS))
def test_refused_header_skips_its_body_and_the_stream_stays_in_step(case):
    messages, _ = raw_session(INIT + BAD_HEADERS[case] + BODY + ping(8) + ping(9))
    errors = [m for m in messages if m.get("id") is None]
    assert len(errors) == 1 and errors[0]["error"]["code"] == -32700, messages
    assert 7 not in by_id(messages)  # the refused message is not run
    assert by_id(messages)[8]["result"] == {"pong": True}
    assert by_id(messages)[9]["result"] == {"pong": True}


def test_blank_lines_between_messages_are_tolerated():
    messages, _ = raw_session(INIT + b"\r\n" + ping(8) + b"\r\n\r\n" + ping(9))
    assert not [m for m in messages if "error" in m]
    assert {8, 9} <= set(by_id(messages))


def test_header_without_length_resynchronises_at_the_next_header():
    # The junk body runs straight into the next header; that message must not be lost.
    stream = INIT + b"Content-Type: x\r\n\r\n" + BODY + ping(8)
    messages, _ = raw_session(stream)
    assert [m["error"]["code"] for m in messages if m.get("id") is None] == [-32700]
    assert by_id(messages)[8]["result"] == {"pong": True}


# --- 10. signals: every request in flight gets its reply, then the daemon exits -----------------------

def complete_messages(buffer):
    """The whole messages at the start of `buffer` (a reply may still be arriving)."""
    messages = []
    while b"\r\n\r\n" in buffer:
        header, _, rest = buffer.partition(b"\r\n\r\n")
        length = int(header.split(b":")[1])
        if len(rest) < length:
            break
        messages.append(json.loads(rest[:length]))
        buffer = rest[length:]
    return messages


def read_until(proc, predicate, timeout=20):
    buffer, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            if predicate(complete_messages(buffer)):
                return buffer
    return buffer


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_signal_cancels_requests_in_flight_replies_to_each_and_exits(signum):
    proc = subprocess.Popen([vlmd_path(), "--log-level", "off"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc.stdin.write(INIT + ping(1, delayMs=60_000) + ping(2, delayMs=60_000) + ping(3))
    proc.stdin.flush()
    out = read_until(proc, lambda ms: 3 in by_id(ms))
    time.sleep(0.2)  # both slow pings are running by now (ping 3 was answered after they started)
    proc.send_signal(signum)
    out += proc.stdout.read()
    code = proc.wait(timeout=20)
    replies = by_id(read_messages(out))
    assert replies[1]["error"]["code"] == -32800
    assert replies[2]["error"]["code"] == -32800
    assert code == -signum  # died of the signal it was sent, after replying
    proc.stdin.close()


# --- 7. CPU-heavy requests never hold up cheap ones -----------------------------------------------------

STORIES = str((__import__("conftest").ROOT.parent / "shared" / "models" / "stories260K.gguf"))


def test_ping_is_answered_while_every_core_tokenizes_megabytes():
    # More slow tokenize requests than cores: on Swift's cooperative pool (one thread per core) they
    # used to block every thread, and a ping sent after them waited until one finished.
    heavy = (os.cpu_count() or 2) + 1
    text = "the quick brown fox jumps over the lazy dog " * 40_000  # 1.8 MB
    load = frame(json.dumps({"jsonrpc": "2.0", "id": "load", "method": "models/load",
                             "params": {"kind": "gguf", "path": STORIES}}).encode())
    proc = subprocess.Popen([vlmd_path(), "--log-level", "off"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    proc.stdin.write(INIT + load)
    proc.stdin.flush()
    out = read_until(proc, lambda ms: "load" in by_id(ms), timeout=60)
    for n in range(heavy):
        proc.stdin.write(frame(json.dumps({"jsonrpc": "2.0", "id": f"t{n}", "method": "tokenize",
                                           "params": {"text": text}}).encode()))
    proc.stdin.flush()
    time.sleep(0.3)  # the tokenize requests are running
    proc.stdin.write(ping("p"))
    proc.stdin.flush()
    out += read_until(proc, lambda ms: all(f"t{n}" in by_id(ms) for n in range(heavy)) or "p" in by_id(ms), timeout=120)
    first = [m.get("id") for m in complete_messages(out) if m.get("id") not in ("init", "load")]
    proc.stdin.close()
    out += proc.stdout.read()
    proc.wait(timeout=60)
    replies = by_id(read_messages(out))
    assert all("result" in replies[f"t{n}"] for n in range(heavy))
    assert first and first[0] == "p", f"ping answered after {first}"
