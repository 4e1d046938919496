"""Stress: the daemon under a saturating encode-image load, and a soak of mixed requests.

    python bench/stress.py [--vlmd .build/release/vlmd] [--clip ../shared/models/cifar-clip-rn64]
                           [--seconds 20] [--concurrency 8] [--side 256]
                           [--soak 10000] [--soak-clip Tests/VLMCLIPTests/Fixtures/rn-tiny]

Load: `--concurrency` encode-image requests kept in flight, each on a fresh random image (so the
embedding cache never answers), while one `ping` every 20 ms measures latency. Reports encode-image
requests/s held, and the ping round trip p50/p99/max under that load.

Soak: `--soak` mixed requests (ping, daemon/status, encode-image on new and cached images, classify,
invalid params, unknown methods, junk frames, cancellations) written in waves of 200; every request
must get exactly one reply. Reports RSS after warm-up and at the end, and lost replies.
tests/protocol/test_reliability_soak.py runs the soak (opt-in: VLMD_SOAK=1).
"""

import argparse
import base64
import json
import os
import random
import select
import statistics
import struct
import subprocess
import sys
import time
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def png(width, height, rng):
    """A random RGB PNG (stored rows, so it costs the daemon a real decode)."""
    raw = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b"")


def frame(message):
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


class Session:
    """A vlmd subprocess on raw pipes: write frames, read whole replies as they come."""

    def __init__(self, vlmd, *args):
        self.proc = subprocess.Popen([vlmd, "--log-level", "off", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        self.buffer = b""
        self.send({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {"capabilities": {}}})
        self.wait_for({"init"})

    def send(self, message):
        self.send_raw(frame(message))

    def send_raw(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def poll(self, timeout):
        """Replies (and notifications) that arrived within `timeout` seconds."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if ready:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            if not chunk:
                raise EOFError("vlmd closed its output")
            self.buffer += chunk
        messages = []
        while b"\r\n\r\n" in self.buffer:
            header, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = int(header.split(b":")[1])
            if len(rest) < length:
                break
            messages.append(json.loads(rest[:length]))
            self.buffer = rest[length:]
        return messages

    def wait_for(self, ids, timeout=300):
        replies, deadline = {}, time.monotonic() + timeout
        while set(ids) - set(replies) and time.monotonic() < deadline:
            for m in self.poll(0.05):
                if m.get("id") in ids:
                    replies[m["id"]] = m
        return replies

    def rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def load_run(vlmd, clip, seconds, concurrency, side):
    s = Session(vlmd)
    s.send({"jsonrpc": "2.0", "id": "load", "method": "models/load", "params": {"kind": "clip", "path": clip}})
    assert "result" in s.wait_for({"load"})["load"]
    rng = random.Random(1)
    counter, in_flight, sent_at, pings, encoded = 0, set(), {}, [], 0
    next_ping, ping_id, start = time.monotonic(), None, time.monotonic()

    def encode_request():
        nonlocal counter
        counter += 1
        fresh = base64.b64encode(png(side, side, rng)).decode()  # new content: the cache never answers
        s.send({"jsonrpc": "2.0", "id": counter, "method": "encode-image", "params": {"images": [{"png": fresh}]}})
        in_flight.add(counter)

    while time.monotonic() - start < seconds:
        while len(in_flight) < concurrency:
            encode_request()
        now = time.monotonic()
        if ping_id is None and now >= next_ping:
            ping_id = f"p{len(pings)}"
            sent_at[ping_id] = now
            s.send({"jsonrpc": "2.0", "id": ping_id, "method": "ping"})
            next_ping = now + 0.02
        for m in s.poll(0.002):
            if m.get("id") == ping_id:
                pings.append(time.monotonic() - sent_at.pop(ping_id))
                ping_id = None
            elif m.get("id") in in_flight:
                in_flight.discard(m["id"])
                assert "result" in m, m
                encoded += 1
    elapsed = time.monotonic() - start
    s.wait_for(set(in_flight) | ({ping_id} if ping_id else set()))
    s.close()
    pings.sort()
    return {"encode_per_s": encoded / elapsed, "pings": len(pings), "ping_p50_ms": 1e3 * statistics.median(pings),
            "ping_p99_ms": 1e3 * pings[int(0.99 * (len(pings) - 1))], "ping_max_ms": 1e3 * pings[-1]}


def soak(vlmd, clip, total, wave=200, seed=7):
    """Mixed requests in waves; returns RSS figures and how many requests got no reply (or two)."""
    s = Session(vlmd)
    s.send({"jsonrpc": "2.0", "id": "load", "method": "models/load", "params": {"kind": "clip", "path": clip}})
    assert "result" in s.wait_for({"load"})["load"]
    rng = random.Random(seed)
    cached = base64.b64encode(png(32, 32, rng)).decode()
    kinds = ["ping", "status", "encode-new", "encode-cached", "classify", "bad-params", "unknown", "junk", "cancel"]
    sent, replies, rss, start = 0, {}, [], time.monotonic()
    expected_errors = 0
    while sent < total:
        ids = []
        for _ in range(min(wave, total - sent)):
            sent += 1
            kind = rng.choice(kinds)
            msg_id = sent
            if kind == "ping":
                s.send({"jsonrpc": "2.0", "id": msg_id, "method": "ping", "params": {"echo": rng.random()}})
            elif kind == "status":
                s.send({"jsonrpc": "2.0", "id": msg_id, "method": "daemon/status"})
            elif kind == "encode-new":
                image = base64.b64encode(png(32, 32, rng)).decode()
                s.send({"jsonrpc": "2.0", "id": msg_id, "method": "encode-image", "params": {"images": [{"png": image}]}})
            elif kind == "encode-cached":
                s.send({"jsonrpc": "2.0", "id": msg_id, "method": "encode-image", "params": {"images": [{"png": cached}]}})
            elif kind == "classify":
                s.send({"jsonrpc": "2.0", "id": msg_id, "method": "classify",
                        "params": {"images": [{"png": cached}], "labels": ["cat", "dog", f"thing {msg_id % 50}"]}})
            elif kind == "bad-params":
                s.send({"jsonrpc": "2.0", "id": msg_id, "method": "encode-image", "params": {"images": "nope"}})
            elif kind == "unknown":
                s.send({"jsonrpc": "2.0", "id": msg_id, "method": "no/such/method"})
            elif kind == "junk":
                s.send_raw(b"Content-Length: 9\r\n\r\n{not json")
                expected_errors += 1
                continue
            elif kind == "cancel":
                s.send({"jsonrpc": "2.0", "id": msg_id, "method": "ping", "params": {"delayMs": 5000}})
                s.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": msg_id}})
            ids.append(msg_id)
        got = s.wait_for(set(ids))
        for msg_id, m in got.items():
            replies[msg_id] = replies.get(msg_id, 0) + 1
        rss.append(s.rss())
    # Duplicates or strays would show up now.
    extra = [m for m in s.poll(0.5) if m.get("id") is not None]
    answered = sum(1 for v in replies.values() if v == 1)
    requests = sent - expected_errors
    s.close()
    return {"requests": requests, "answered_once": answered, "lost": requests - answered, "stray_replies": len(extra),
            "rss_after_first_wave_mb": rss[0] / 2**20, "rss_peak_mb": max(rss) / 2**20, "rss_end_mb": rss[-1] / 2**20,
            "seconds": time.monotonic() - start}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vlmd", default=os.path.join(ROOT, ".build", "release", "vlmd"))
    parser.add_argument("--clip", default=os.path.join(ROOT, "..", "shared", "models", "cifar-clip-rn64"))
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--side", type=int, default=256, help="side of the random PNGs the load encodes")
    parser.add_argument("--soak", type=int, default=10_000)
    parser.add_argument("--soak-clip", default=os.path.join(ROOT, "Tests", "VLMCLIPTests", "Fixtures", "rn-tiny"))
    args = parser.parse_args()
    print(json.dumps({"load": load_run(args.vlmd, args.clip, args.seconds, args.concurrency, args.side)}), flush=True)
    if args.soak:
        print(json.dumps({"soak": soak(args.vlmd, args.soak_clip, args.soak)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
