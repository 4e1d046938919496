"""`vlm` with a shared daemon: `vlm daemon start|status|stop`, commands reusing resident models, and
Ctrl-C that cancels only this client's request. Every socket is in a temp dir (VLMD_SOCKET), never
the user's default."""

import json
import os
import signal
import stat
import subprocess
import time

import pytest

from test_cli import IMAGES, RN, SHARED, VLM
from test_multimodal_generate import QWEN_FIXTURES, QWEN_LM


def vlm(env, *args, timeout=120):
    return subprocess.run([VLM, *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def shared(tmp_path):
    """Environment naming a socket in a fresh temp dir, with a daemon started by `vlm daemon start`."""
    env = {**os.environ, "VLMD_SOCKET": str(tmp_path / "run" / "vlmd.sock")}
    started = vlm(env, "daemon", "start", timeout=90)
    assert started.returncode == 0, started.stderr
    yield env
    vlm(env, "daemon", "stop", timeout=60)


def status(env):
    out = vlm(env, "status", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_daemon_start_status_stop(tmp_path):
    sock = tmp_path / "run" / "vlmd.sock"
    env = {**os.environ, "VLMD_SOCKET": str(sock)}
    assert vlm(env, "daemon", "status").returncode == 3  # not running
    started = vlm(env, "daemon", "start", timeout=90)
    assert started.returncode == 0, started.stderr
    assert str(sock) in started.stdout
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(sock.parent / "vlmd.log").st_mode) == 0o600
    assert "listening on" in (sock.parent / "vlmd.log").read_text()
    again = vlm(env, "daemon", "start")
    assert again.returncode == 0 and "already running" in again.stdout
    shown = vlm(env, "daemon", "status")
    assert shown.returncode == 0 and "model loads since start: 0" in shown.stdout
    stopped = vlm(env, "daemon", "stop", timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert not sock.exists()
    assert vlm(env, "daemon", "status").returncode == 3


def test_two_classify_runs_load_the_model_once(shared):
    args = ["classify", "--clip", str(RN), "--labels", "cat,dog,rocket", str(IMAGES / "chelsea.png")]
    first, second = vlm(shared, *args), vlm(shared, *args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == second.stdout
    now = status(shared)
    assert now["modelLoads"] == 1
    assert [m["id"] for m in now["models"]] == ["rn-tiny"]
    # The image embedding cached by the first run served the second.
    images = next(c for c in now["caches"] if c["name"] == "image-embeddings")
    assert images["hits"] >= 1
    human = vlm(shared, "status").stdout
    assert "model loads since start: 1" in human and "rn-tiny" in human


def test_image_token_limits_on_a_shared_daemon_load_a_copy_of_their_own(shared):
    """`vlm generate --mmproj X --image-max-tokens 32` after a command with the default limits, on one shared
    daemon: the second loads a copy with its limits as `X@8-32` (rather than failing on X's id); a third with
    the same limits reuses that copy, and a command with no limits keeps the defaults (astronaut.png, 512 px:
    18 x 18 image tokens by default, 5 x 5 within 32)."""
    mmproj = QWEN_FIXTURES["qwen25vl"] / "tiny-mmproj.gguf"

    def image_tokens(*limits):
        out = vlm(shared, "generate", "--lm", str(QWEN_LM), "--context-length", "512", "--mmproj", str(mmproj), *limits,
                  "--image", str(IMAGES / "astronaut.png"), "--max-tokens", "1", "--json", "<__media__>", timeout=300)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])["imageTokens"][0]["tokens"]

    assert image_tokens() == 18 * 18
    assert image_tokens("--image-max-tokens", "32") == 25
    assert image_tokens("--image-max-tokens", "32") == 25
    assert image_tokens() == 18 * 18
    now = status(shared)
    assert now["modelLoads"] == 3  # the language model, and the projector with each range once
    projectors = {m["id"]: (m["details"]["imageMinTokens"], m["details"]["imageMaxTokens"]) for m in now["models"] if m["kind"] == "mmproj"}
    assert projectors == {"tiny-mmproj.gguf": (8, 4096), "tiny-mmproj.gguf@8-32": (8, 32)}


def test_context_lengths_on_a_shared_daemon_load_a_copy_of_their_own(shared):
    """`vlm generate --context-length 2048` after a command with 1024, on one shared daemon: the second loads
    its own copy as `X@ctx2048` rather than failing on the id; repeating either length reuses its copy, and a
    command naming no length is served by the first copy."""
    stories = SHARED / "models" / "stories260K.gguf"

    def generate(*length):
        out = vlm(shared, "generate", "--lm", str(stories), *length, "--max-tokens", "3", "--json", "Once upon a time")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout.strip().splitlines()[-1])

    for length in (["--context-length", "1024"], ["--context-length", "2048"], ["--context-length", "1024"], []):
        assert generate(*length)["generatedTokens"] == 3
    now = status(shared)
    assert now["modelLoads"] == 2
    lengths = {m["id"]: m["details"]["contextLength"] for m in now["models"] if m["kind"] == "gguf"}
    assert lengths == {"stories260K.gguf@ctx1024": 1024, "stories260K.gguf@ctx2048": 2048}


def test_private_flag_ignores_the_shared_daemon(shared):
    args = ["classify", "--private", "--clip", str(RN), "--labels", "cat,dog", str(IMAGES / "chelsea.png")]
    assert vlm(shared, *args).returncode == 0
    assert status(shared)["modelLoads"] == 0


def test_a_named_socket_with_no_daemon_is_an_error(tmp_path):
    env = {**os.environ, "VLMD_SOCKET": str(tmp_path / "nothing.sock")}
    out = vlm(env, "ping")
    assert out.returncode == 1
    assert "no vlmd is listening on" in out.stderr and "vlm daemon start" in out.stderr


def test_ctrl_c_cancels_only_this_clients_request_and_keeps_the_daemon(shared):
    other = subprocess.Popen([VLM, "call", "debug/stream", '{"count": 300, "intervalMs": 10}'],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=shared)
    proc = subprocess.Popen([VLM, "call", "ping", '{"delayMs": 60000}'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=shared)
    # Interrupted once its ping runs in the daemon (a fixed pause could end before a loaded machine got there).
    deadline = time.monotonic() + 60
    while not any(r["method"] == "ping" for r in status(shared)["inFlight"]):
        assert time.monotonic() < deadline and proc.poll() is None, "the ping never reached the daemon"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert "vlm: cancelled" in err
    # The other client's stream ran to its end; the daemon is still up with nothing left in flight.
    out, err = other.communicate(timeout=60)
    assert other.returncode == 0, err
    assert json.loads(out.splitlines()[-1]) == {"count": 300}
    assert vlm(shared, "daemon", "status").returncode == 0
    assert [r for r in status(shared)["inFlight"] if r["method"] == "ping"] == []
