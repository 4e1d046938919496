"""The `vlm` command-line client: output formats, exit codes, Ctrl-C."""

import json
import os
import signal
import subprocess
import time

from conftest import ROOT, vlmd_path

VLM = os.path.join(os.path.dirname(vlmd_path()), "vlm")
SHARED = ROOT.parent / "shared"
RN = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures" / "rn-tiny"
IMAGES = SHARED / "data" / "images"


def vlm(*args, timeout=120):
    return subprocess.run([VLM, *args], capture_output=True, text=True, timeout=timeout)


def test_exit_codes():
    assert vlm("ping").returncode == 0
    assert vlm("call", "no/such").returncode == 1
    assert vlm("ping", "--count", "0").returncode == 2
    assert vlm("no-such-subcommand").returncode == 2
    assert vlm("call", "ping", "{not json").returncode == 2


def test_call_streams_json_lines():
    out = vlm("call", "debug/stream", '{"count": 3}')
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines == [{"index": 0}, {"index": 1}, {"index": 2}, {"count": 3}]


def test_classify_json_lines_one_per_image():
    out = vlm("classify", "--clip", str(RN), "--labels", "cat,dog,coin", "--json",
              str(IMAGES / "chelsea.png"), str(IMAGES / "coins.png"))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(IMAGES / "chelsea.png"), str(IMAGES / "coins.png")]
    for line in lines:
        assert set(line["probs"]) == {"cat", "dog", "coin"}
        assert abs(sum(line["probs"].values()) - 1) < 1e-5
        assert line["imageId"].startswith("img_") and line["top"][0]["label"] in line["probs"]


def test_encode_image_json_and_bad_image_exit_1():
    out = vlm("encode-image", "--clip", str(RN), "--json", str(IMAGES / "camera.png"))
    line = json.loads(out.stdout)
    assert line["image"] == str(IMAGES / "camera.png") and len(line["embedding"]) == 32
    bad = vlm("encode-image", "--clip", str(RN), str(ROOT / "README.md"))
    assert bad.returncode == 1 and "README.md" in bad.stderr


def test_evaluate_prints_accuracy_and_confusion():
    out = vlm("evaluate", "--clip", str(RN), "--dataset", str(SHARED / "data/cifar-10/test_batch.bin"),
              "--labels", str(SHARED / "data/cifar-10/batches.meta.txt"), "--limit", "50")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("accuracy ") and "airplane" in out.stdout and "truck" in out.stdout


def test_evaluate_a_labelled_image_list_without_labels(tmp_path):
    """A list carries its own class names: `vlm evaluate --format list` needs no --labels and prints
    the list's classes (in order of first appearance) in its table."""
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{IMAGES / image}\t{label}\n" for image, label in
                               [("chelsea.png", "cat"), ("coffee.png", "cup"), ("astronaut.png", "person")]))
    out = vlm("evaluate", "--clip", str(RN), "--format", "list", "--dataset", str(listing))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("accuracy ") and "(3 images," in out.stdout
    rows = [line.split()[0] for line in out.stdout.splitlines()[3:]]
    assert rows == ["cat", "cup", "person"]
    help_text = vlm("evaluate", "--help").stdout
    assert "list" in help_text and "--labels" in help_text
    refused = vlm("evaluate", "--clip", str(RN), "--dataset", str(SHARED / "data/cifar-10/test_batch.bin"), "--limit", "5")
    assert refused.returncode == 1 and "labels" in refused.stderr


def test_generate_json_final_object():
    out = vlm("generate", "--lm", str(SHARED / "models/stories260K.gguf"), "--max-tokens", "5", "--json", "Once upon a time")
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    tokens, final = lines[:-1], lines[-1]
    assert [t["event"] for t in tokens] == ["token"] * 5
    assert final["event"] == "result"
    for key in ("text", "tokenIds", "promptTokenIds", "stopReason", "timings"):
        assert key in final
    assert "".join(t["text"] for t in tokens) == final["text"]


def test_ctrl_c_cancels_the_request_and_waits_for_its_reply():
    proc = subprocess.Popen([VLM, "call", "ping", '{"delayMs": 60000}'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.0)  # long enough for the private daemon to start on a loaded machine; the reply waits 60 s
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert "vlm: cancelled" in err


def test_optimise_prompt_prints_the_table_and_saves(tmp_path):
    env = {**os.environ, "VLMD_PROMPTS_DIR": str(tmp_path)}
    cifar = SHARED / "data" / "cifar-10"
    out = subprocess.run([VLM, "optimise-prompt", "--clip", str(RN), "--dataset", str(cifar / "train_5000.bin"),
                          "--labels", str(cifar / "batches.meta.txt"), "--shots", "2", "--steps", "5", "--save-as", "cli"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    assert "zero-shot" in out.stdout and "learned" in out.stdout and "prompt (coop)" in out.stdout
    assert (tmp_path / "cli.safetensors").exists()
    assert "step 5/5" in out.stderr
    classified = subprocess.run([VLM, "classify", "--clip", str(RN), "--labels", str(cifar / "batches.meta.txt"),
                                 "--learned-prompt", "cli", "--json", str(IMAGES / "chelsea.png")],
                                capture_output=True, text=True, timeout=120, env=env)
    assert classified.returncode == 0, classified.stderr
    assert len(json.loads(classified.stdout)["probs"]) == 10


def test_generate_with_image_renders_stages_and_writes_heatmaps(tmp_path):
    out = vlm("generate", "--lm", str(SHARED / "models/stories260K.gguf"), "--context-length", "1024", "--clip", str(RN),
              "--image", str(IMAGES / "chelsea.png"), "--question", "What animal is it?", "--max-tokens", "12",
              "--heatmaps", str(tmp_path), timeout=300)
    assert out.returncode == 0, out.stderr
    for tag in ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION"):
        assert f"== {tag} ==" in out.stdout
    assert "answer:" in out.stdout and list(tmp_path.glob("step-*.png"))
    usage = vlm("generate", "--lm", str(SHARED / "models/stories260K.gguf"), "--image", str(IMAGES / "chelsea.png"))
    assert usage.returncode == 2


def test_models_check_names_the_problem():
    llava = ROOT / "Tests" / "VLMReasoningTests" / "Fixtures" / "llava"
    ok = vlm("models", "check", "--mmproj", str(llava / "tiny-mmproj.gguf"), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["kind"] == "mmproj"
    bad = vlm("models", "check", "--mmproj", str(llava / "bad-projector-type.gguf"))
    assert bad.returncode == 1 and "projector type" in bad.stderr
    assert vlm("models", "check", "--clip", str(RN), "--gguf", "x").returncode == 2
    listing = vlm("models")
    assert listing.returncode == 0 and "timm/resnet50_clip.openai" in listing.stdout


def test_beam_search_shows_each_stage_once_and_looks_only_when_looking():
    args = ["generate", "--lm", str(SHARED / "models/stories260K.gguf"), "--context-length", "2048", "--clip", str(RN),
            "--image", str(IMAGES / "chelsea.png"), "--question", "What animal is it?", "--max-tokens", "12", "--beam", "2",
            "--seed", "3"]
    events = [json.loads(line) for line in vlm(*args, "--json", timeout=300).stdout.splitlines()]
    chosen = {e["stage"]: e["text"] for e in events if e.get("event") == "stage" and e.get("phase") == "end"}
    looks = [e for e in events if e.get("event") == "look"]
    out = vlm(*args, timeout=300)
    assert out.returncode == 0, out.stderr
    for stage, text in chosen.items():
        section = out.stdout.split(f"== {stage} ==\n", 1)[1].split("\n== ", 1)[0].split("\nanswer:", 1)[0]
        prose = [line for line in section.splitlines() if line.strip() and not line.startswith("  [")]
        assert " ".join(" ".join(prose).split()) == " ".join(text.split()), (stage, section)
    assert "looks at" not in out.stdout
    assert out.stdout.count("  [look] ") == len(looks)


def test_models_fetch_finds_its_script_when_vlm_is_run_by_name_from_elsewhere(tmp_path):
    bin_dir, cache = tmp_path / "bin", tmp_path / "cache"
    bin_dir.mkdir()
    cache.mkdir()
    (bin_dir / "vlm").symlink_to(VLM)
    (cache / "SmolLM2-135M-Instruct.Q4_1.gguf").write_bytes(b"already here")  # the script then has nothing to fetch
    out = subprocess.run(["vlm", "models", "fetch", "smollm2", "--dir", str(cache)], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(cache / "SmolLM2-135M-Instruct.Q4_1.gguf")
