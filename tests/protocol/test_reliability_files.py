"""Every file the daemon writes (heatmaps, learned prompts) goes through one safe writer: into an
existing directory, never through a link, atomically, keeping permissions, checked before the long
work starts (protocol/visual-reasoning.md, optimise-prompt.md)."""

import os
import stat

import pytest
from pygls.exceptions import JsonRpcException

from conftest import ROOT, Daemon, run

SHARED = ROOT.parent / "shared"
IMAGES = SHARED / "data" / "images"
CIFAR = SHARED / "data" / "cifar-10"
RN = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures" / "rn-tiny"
STORIES = SHARED / "models" / "stories260K.gguf"
DATASET = {"path": str(CIFAR / "train_5000.bin"), "labelsFile": str(CIFAR / "batches.meta.txt")}
CLASSES = (CIFAR / "batches.meta.txt").read_text().split()
REASON = {"image": {"path": str(IMAGES / "coffee.png")}, "question": "What is on the table?", "maxTokensPerStage": 12,
          "labels": ["cat", "dog", "person", "cup"], "regionGrid": [1, 2], "maxSteps": 2, "seed": 1, "partialResultToken": "p"}


async def reasoning_daemon():
    d = await Daemon().start()
    await d.request("models/load", {"kind": "clip", "path": str(RN)})
    await d.request("models/load", {"kind": "gguf", "path": str(STORIES), "contextLength": 1024})
    return d


async def refused(d, method, params):
    with pytest.raises(JsonRpcException) as err:
        await d.request(method, params)
    return err.value


def test_heatmap_dir_must_exist_and_is_not_created(tmp_path):
    async def body():
        d = await reasoning_daemon()
        missing = tmp_path / "a" / "b"
        err = await refused(d, "generate-with-visual-selection", {**REASON, "heatmapDir": str(missing)})
        assert err.code == -32602 and "params.heatmapDir" in err.message
        assert not d.progress("p")  # refused before generation
        assert not (tmp_path / "a").exists()
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_heatmap_link_to_an_outside_file_is_refused_before_generation(tmp_path):
    async def body():
        outside = tmp_path / "outside.txt"
        outside.write_text("keep me")
        maps = tmp_path / "maps"
        maps.mkdir()
        (maps / "step-1.png").symlink_to(outside)
        d = await reasoning_daemon()
        err = await refused(d, "generate-with-visual-selection", {**REASON, "heatmapDir": str(maps)})
        assert err.code == -32602 and "params.heatmapDir" in err.message and "link" in err.message
        assert not d.progress("p")
        assert outside.read_text() == "keep me"
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_heatmaps_replace_files_atomically_keeping_their_mode_and_leave_no_temp_files(tmp_path):
    async def body():
        for step in range(0, 3):
            old = tmp_path / f"step-{step}.png"
            old.write_bytes(b"old")
            old.chmod(0o600)
        d = await reasoning_daemon()
        await d.request("generate-with-visual-selection", {**REASON, "heatmapDir": str(tmp_path), "select": "box"})
        written = [e["step"] for e in d.progress("p") if e["event"] == "attribution"]
        assert written
        for step in written:
            path = tmp_path / f"step-{step}.png"
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"step-{s}.png" for s in range(0, 3)]
        assert await d.stop() == 0
    run(body(), timeout=300)


async def clip_daemon(prompts):
    d = await Daemon("--prompts-dir", str(prompts)).start()
    await d.request("models/load", {"kind": "clip", "path": str(RN)})
    return d


@pytest.mark.parametrize("name, setup", [
    ("n" * 240, None),                   # the file name would be too long
    ("linked", "link"),                  # a link in the prompts folder
    ("subdir", "dir"),                   # a directory in the way
])
def test_save_as_that_cannot_be_written_is_refused_before_optimising(tmp_path, name, setup):
    async def body():
        prompts = tmp_path / "prompts"
        prompts.mkdir()
        outside = tmp_path / "outside.bin"
        outside.write_bytes(b"12345678 keep")
        if setup == "link":
            (prompts / f"{name}.safetensors").symlink_to(outside)
        elif setup == "dir":
            (prompts / f"{name}.safetensors").mkdir()
        d = await clip_daemon(prompts)
        err = await refused(d, "optimise-prompt", {"method": "coop", "dataset": DATASET, "shots": 1, "steps": 100_000,
                                                   "saveAs": name, "partialResultToken": "p"})
        assert err.code == -32602 and "params.saveAs" in err.message
        assert not d.progress("p")
        assert outside.read_bytes() == b"12345678 keep"
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_save_as_over_an_existing_prompt_keeps_its_mode_and_leaves_no_temp_file(tmp_path):
    async def body():
        (tmp_path / "mine.safetensors").write_bytes(b"old")
        (tmp_path / "mine.safetensors").chmod(0o600)
        d = await clip_daemon(tmp_path)
        result = await d.request("optimise-prompt", {"method": "bank", "dataset": DATASET, "shots": 1, "saveAs": "mine"})
        assert result.savedTo == str(tmp_path / "mine.safetensors")
        assert stat.S_IMODE((tmp_path / "mine.safetensors").stat().st_mode) == 0o600
        assert [p.name for p in tmp_path.iterdir()] == ["mine.safetensors"]
        classified = await d.request("classify", {"images": [{"path": str(IMAGES / "chelsea.png")}],
                                                  "labels": CLASSES, "learnedPrompt": "mine"})
        assert len(classified.results) == 1
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_classify_learned_prompt_never_follows_a_link_nor_leaks_its_target(tmp_path):
    async def body():
        secret = tmp_path / "secret"
        secret.write_bytes(b"SECRETS!" + b"x" * 64)
        prompts = tmp_path / "prompts"
        prompts.mkdir()
        (prompts / "evil.safetensors").symlink_to(secret)
        d = await clip_daemon(prompts)
        err = await refused(d, "classify", {"images": [{"path": str(IMAGES / "chelsea.png")}], "labels": ["a", "b"],
                                            "learnedPrompt": "evil"})
        assert err.code == -32602 and "params.learnedPrompt" in err.message
        leaked = str(int.from_bytes(b"SECRETS!", "little"))
        assert leaked not in err.message and "SECRETS" not in err.message
        assert await d.stop() == 0
    run(body(), timeout=300)
