"""The `vlm` CLI as a person at a terminal meets it: the real binaries under a pseudo-terminal,
Ctrl-C typed at the terminal (SIGINT to the whole foreground process group, daemon included unless
vlm keeps it apart), progress lines that must not mangle output, help, piped output."""

import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest

from conftest import ROOT, read_messages, vlmd_path
from test_language import smollm2_path

VLM = os.path.join(os.path.dirname(vlmd_path()), "vlm")
SHARED = ROOT.parent / "shared"
CIFAR = SHARED / "data" / "cifar-10"
IMAGES = SHARED / "data" / "images"
DEMO_CLIP = SHARED / "models" / "cifar-clip-rn64"
RN = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures" / "rn-tiny"

# What "promptly" means for exit after Ctrl-C. vlm's own bound is 0.7 s; the slack is for a loaded
# machine. Every job below would run far longer than this if Ctrl-C were not honoured.
PROMPTLY = 3.0


class TerminalRun:
    def __init__(self, output: bytes, code, seconds_after_interrupt):
        self.output, self.code, self.seconds_after_interrupt = output, code, seconds_after_interrupt
        self.screen = render_screen(output.decode("utf-8", "replace"))
        self.text = "\n".join(self.screen)


def run_under_terminal(args, interrupt_when=None, env=None, timeout=120, give_up_after_interrupt=15):
    """Runs vlm with a pseudo-terminal as its controlling terminal and stdin/stdout/stderr. When
    `interrupt_when(output_so_far)` first holds, types Ctrl-C (the line discipline then sends SIGINT
    to the foreground process group). A run still going `give_up_after_interrupt` s later is killed
    and reported with code None."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen([VLM, *args], stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0), env=env)
    os.close(slave)
    output, interrupted_at, start = b"", None, time.monotonic()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.02)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: every process holding the terminal has gone
                    chunk = b""
                if not chunk:
                    break
                output += chunk
            if interrupted_at is None and interrupt_when and interrupt_when(output):
                os.write(master, b"\x03")
                interrupted_at = time.monotonic()
            now = time.monotonic()
            if interrupted_at is not None and proc.poll() is not None and not ready:
                break
            if (interrupted_at and now - interrupted_at > give_up_after_interrupt) or now - start > timeout:
                proc.kill()
                proc.wait()
                return TerminalRun(output, None, None)
        proc.wait(timeout=10)
        ended = time.monotonic()
    finally:
        os.close(master)
    return TerminalRun(output, proc.returncode, ended - interrupted_at if interrupted_at else None)


def render_screen(text: str) -> list:
    """What the terminal shows: applies carriage returns, line feeds and 'erase line' (ESC[2K, ESC[K)."""
    lines, row, column = [[]], 0, 0
    i = 0
    while i < len(text):
        ch = text[i]
        if text.startswith("\x1b[2K", i):
            lines[row] = []
            i += 4
            continue
        if text.startswith("\x1b[K", i):
            del lines[row][column:]
            i += 3
            continue
        if ch == "\r":
            column = 0
        elif ch == "\n":
            row += 1
            column = 0
            if row == len(lines):
                lines.append([])
        elif ch == "\x07":
            pass
        else:
            line = lines[row]
            line.extend(" " * (column - len(line)))
            if column < len(line):
                line[column] = ch
            else:
                line.append(ch)
            column += 1
        i += 1
    return ["".join(line).rstrip() for line in lines]


def recording_daemon(tmp_path, drop_cancel=False):
    """A --daemon that passes everything through to the real vlmd and records what vlm sends it.
    With drop_cancel it swallows $/cancelRequest, as a daemon busy in an uncancellable model load
    would leave it unanswered."""
    log = tmp_path / "sent.bin"
    script = tmp_path / "recording-vlmd"
    script.write_text(f"""#!{sys.executable}
import json, os, subprocess, sys, threading
log = open({str(log)!r}, "ab", buffering=0)
child = subprocess.Popen([{vlmd_path()!r}, *sys.argv[1:]], stdin=subprocess.PIPE)
threading.Thread(target=lambda: os._exit(child.wait()), daemon=True).start()
buffer = b""
while data := os.read(0, 65536):
    log.write(data)
    buffer += data
    while b"\\r\\n\\r\\n" in buffer:
        header, rest = buffer.split(b"\\r\\n\\r\\n", 1)
        length = int(header.split(b":")[1])
        if len(rest) < length:
            break
        body, buffer = rest[:length], rest[length:]
        if {drop_cancel!r} and json.loads(body).get("method") == "$/cancelRequest":
            continue
        child.stdin.write(header + b"\\r\\n\\r\\n" + body)
        child.stdin.flush()
child.stdin.close()
child.wait()
""")
    script.chmod(0o755)
    return str(script), log


def sent_messages(log):
    return read_messages(log.read_bytes()) if log.exists() else []


def assert_cancelled_promptly(run, sent=None, method=None):
    assert run.code == 130, f"exit code {run.code}; screen:\n{run.text}"
    assert run.seconds_after_interrupt < PROMPTLY
    assert "vlm: cancelled" in run.text
    if sent is not None:
        cancels = [m for m in sent if m.get("method") == "$/cancelRequest"]
        assert len(cancels) == 1, cancels
        target = [m for m in sent if m.get("id") == cancels[0]["params"]["id"]]
        assert target and target[0]["method"] == method


# --- help -------------------------------------------------------------------------------------

SUBCOMMANDS = [["ping"], ["status"], ["call"], ["models"], ["models", "list"], ["models", "check"], ["models", "fetch"],
               ["encode-image"], ["classify"], ["evaluate"], ["generate"], ["optimise-prompt"]]


@pytest.mark.parametrize("args", [[], ["--help"], ["help"]], ids=["bare", "--help", "help"])
def test_root_help_lists_the_subcommands(args):
    out = subprocess.run([VLM, *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    assert "USAGE: vlm <subcommand>" in out.stdout
    for sub in ("encode-image", "classify", "evaluate", "generate", "optimise-prompt", "status"):
        assert sub in out.stdout


@pytest.mark.parametrize("sub", SUBCOMMANDS, ids=[" ".join(s) for s in SUBCOMMANDS])
def test_every_subcommand_prints_its_usage(sub):
    for args in ([*sub, "--help"], ["help", *sub]):
        out = subprocess.run([VLM, *args], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, args
        assert f"USAGE: vlm {' '.join(sub)}" in out.stdout, (args, out.stdout, out.stderr)


# --- argument validation -------------------------------------------------------------------------

def test_negative_numbers_parse_and_get_a_validation_message():
    out = subprocess.run([VLM, "generate", "--lm", "x.gguf", "--temperature", "-1", "hello"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "--temperature must be ≥ 0" in out.stderr and "Missing value" not in out.stderr


def test_a_missing_daemon_is_named_plainly():
    out = subprocess.run([VLM, "ping", "--daemon", "/nonexistent"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "--daemon /nonexistent: no such file" in out.stderr
    assert "NSCocoaErrorDomain" not in out.stderr and "Error Domain" not in out.stderr


def test_status_is_a_table_unless_json():
    table = subprocess.run([VLM, "status"], capture_output=True, text=True, timeout=30)
    assert table.returncode == 0
    assert table.stdout.startswith("uptime ") and "image-embeddings" in table.stdout and "models: none loaded" in table.stdout
    raw = subprocess.run([VLM, "status", "--json"], capture_output=True, text=True, timeout=30)
    assert set(json.loads(raw.stdout)) >= {"uptimeSeconds", "models", "caches", "memory"}


# --- piped output ----------------------------------------------------------------------------------

def test_piped_lines_arrive_as_they_are_made():
    proc = subprocess.Popen([VLM, "call", "debug/stream", '{"count": 5, "intervalMs": 400}'],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    arrivals = []
    for line in proc.stdout:
        arrivals.append((time.monotonic(), json.loads(line)))
    assert proc.wait(timeout=30) == 0
    assert [value for _, value in arrivals] == [{"index": i} for i in range(5)] + [{"count": 5}]
    gaps = [later - earlier for (earlier, _), (later, _) in zip(arrivals, arrivals[1:5])]
    assert min(gaps) > 0.25, gaps


def test_a_reader_that_goes_away_ends_vlm():
    # `vlm ... | head -2`: once nobody reads, vlm stops (as SIGPIPE would stop a C tool), not 20 s later.
    proc = subprocess.Popen([VLM, "call", "debug/stream", '{"count": 2000, "intervalMs": 10}'],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert json.loads(proc.stdout.readline()) == {"index": 0}
    proc.stdout.close()
    assert proc.wait(timeout=10) == 141


# --- Ctrl-C ----------------------------------------------------------------------------------------

def test_ctrl_c_cancels_a_generation_and_exits_130(tmp_path):
    daemon, log = recording_daemon(tmp_path)
    run = run_under_terminal(["generate", "--daemon", daemon, "--lm", smollm2_path(), "--max-tokens", "3000",
                              "Once upon a time"],
                             interrupt_when=after(b"Generating", seconds=1.0))
    assert_cancelled_promptly(run, sent_messages(log), "generate")
    story = run.text.split("vlm: cancelled")[0]
    assert len(story.strip()) > 0


def test_ctrl_c_with_a_daemon_that_cannot_answer_still_exits_promptly(tmp_path):
    # A model load cannot be cancelled; the daemon answers only when it is done. vlm must not wait.
    daemon, log = recording_daemon(tmp_path, drop_cancel=True)
    run = run_under_terminal(["call", "--daemon", daemon, "ping", '{"delayMs": 60000}'],
                             interrupt_when=after(b"", seconds=1.0))
    assert_cancelled_promptly(run, sent_messages(log), "ping")


def test_ctrl_c_between_requests_stops_the_next_one(tmp_path):
    # Ctrl-C while the model loads: the generation must never be sent.
    daemon, log = recording_daemon(tmp_path, drop_cancel=True)
    run = run_under_terminal(["generate", "--daemon", daemon, "--lm", smollm2_path(), "--max-tokens", "3000", "Hi"],
                             interrupt_when=after(b"Loading", seconds=0.0))
    assert_cancelled_promptly(run)
    assert "generate" not in [m.get("method") for m in sent_messages(log)]


def test_ctrl_c_cancels_an_evaluation_and_prints_the_accuracy_so_far(tmp_path):
    daemon, log = recording_daemon(tmp_path)
    run = run_under_terminal(["evaluate", "--daemon", daemon, "--clip", str(DEMO_CLIP), "--dataset", str(CIFAR / "test_batch.bin"),
                              "--labels", str(CIFAR / "batches.meta.txt")],
                             interrupt_when=lambda out: b"Evaluat" in out and b"%]" in out.split(b"Evaluat", 1)[1])
    assert_cancelled_promptly(run, sent_messages(log), "dataset/evaluate")
    assert "accuracy so far" in run.text


def test_ctrl_c_stops_prompt_learning_and_shows_the_best_prompt_so_far(tmp_path):
    daemon, log = recording_daemon(tmp_path)
    env = {**os.environ, "VLMD_PROMPTS_DIR": str(tmp_path)}
    run = run_under_terminal(["optimise-prompt", "--daemon", daemon, "--clip", str(DEMO_CLIP), "--dataset", str(CIFAR / "train_5000.bin"),
                              "--labels", str(CIFAR / "batches.meta.txt"), "--shots", "4", "--steps", "2000"],
                             interrupt_when=lambda out: b"step 3/" in out, env=env)
    assert_cancelled_promptly(run, sent_messages(log), "optimise-prompt")
    assert "prompt (coop)" in run.text and "best so far" in run.text


def test_ctrl_c_stops_visual_reasoning(tmp_path):
    daemon, log = recording_daemon(tmp_path)
    run = run_under_terminal(["generate", "--daemon", daemon, "--lm", smollm2_path(), "--clip", str(DEMO_CLIP),
                              "--image", str(IMAGES / "chelsea.png"), "--question", "What animal is this?", "--max-tokens", "400"],
                             interrupt_when=after(b"== SUMMARY ==", seconds=0.5))
    assert_cancelled_promptly(run, sent_messages(log), "generate-with-visual-selection")


def after(marker: bytes, seconds: float):
    """An interrupt condition: `seconds` after `marker` first appears in the output."""
    seen = []

    def condition(output):
        if not seen and marker in output:
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] >= seconds
    return condition


# --- progress and output on one terminal ---------------------------------------------------------

def test_progress_never_runs_into_output(tmp_path):
    env = {**os.environ, "VLMD_PROMPTS_DIR": str(tmp_path)}
    run = run_under_terminal(["optimise-prompt", "--clip", str(RN), "--dataset", str(CIFAR / "train_5000.bin"),
                              "--labels", str(CIFAR / "batches.meta.txt"), "--shots", "2", "--steps", "6"], env=env)
    assert run.code == 0, run.text
    step_lines = [line for line in run.screen if "step " in line and "/6" in line]
    assert len(step_lines) == 6
    for line in step_lines:
        assert line.startswith("step "), line
        assert line.count("step ") == 1, line
    assert not any("%]" in line for line in run.screen), run.screen
