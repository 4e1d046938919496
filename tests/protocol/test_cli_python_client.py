"""The Python client as a user installs and uses it: pip install, the typed helpers against the real
daemon, the example scripts run from a terminal."""

import json
import math
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, run, vlmd_path

sys.path.insert(0, str(ROOT / "clients" / "python"))
import vlmd_methods  # noqa: E402
from vlmd_client import Classification, EncodedImage, Generation, VisualReasoning, VlmdClient  # noqa: E402

EXAMPLES = ROOT / "clients" / "python"
SHARED = ROOT.parent / "shared"
RN = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures" / "rn-tiny"

# IPython importable but no kernel running: what a terminal with IPython installed looks like.
# Outside a kernel, IPython's display() prints an object's repr, as this stand-in does.
FAKE_IPYTHON = {
    "__init__.py": "def get_ipython():\n    return None\n",
    "display.py": "class Image:\n    def __init__(self, data=None):\n        self.data = data\n"
                  "    def __repr__(self):\n        return '<IPython.core.display.Image object>'\n"
                  "def display(*objects):\n    for o in objects:\n        print(repr(o))\n",
}


def test_reasoning_example_saves_heatmaps_in_a_terminal_even_with_ipython_importable(tmp_path):
    package = tmp_path / "site" / "IPython"
    package.mkdir(parents=True)
    for name, text in FAKE_IPYTHON.items():
        (package / name).write_text(text)
    out_dir = tmp_path / "maps"
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run([sys.executable, str(EXAMPLES / "reasoning_example.py"), "--vlmd", vlmd_path(), "--clip", str(RN),
                          "--lm", str(SHARED / "models" / "stories260K.gguf"), "--context-length", "1024", "--max-tokens", "12",
                          "--image", str(SHARED / "data" / "images" / "chelsea.png"), "--question", "What animal is it?",
                          "--heatmaps", str(out_dir)],
                         capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "IPython.core.display.Image" not in out.stdout
    saved = sorted(out_dir.glob("step-*.png"))
    assert saved, out.stdout
    for path in saved:
        assert f"[heatmap for step {path.stem.split('-')[1]}: {path}]" in out.stdout
        assert path.read_bytes().startswith(b"\x89PNG")
    assert "answer:" in out.stdout


def test_pip_installs_the_client(tmp_path):
    target, source = tmp_path / "site", tmp_path / "source"
    shutil.copytree(EXAMPLES, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))  # builds write in-tree
    # As a user does it: pip builds the package in isolation (fetching setuptools from PyPI, as
    # scripts/setup.sh fetches the test dependencies).
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert install.returncode == 0, install.stderr
    probe = subprocess.run([sys.executable, "-c", "import vlmd_client, vlmd_methods; print(vlmd_client.__file__); "
                            "print(vlmd_client.VlmdClient.encode_image.__doc__)"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)})
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith(str(target)) and "CLIP embeddings" in probe.stdout


FIXTURES = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures"
IMAGES = SHARED / "data" / "images"


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_typed_clip_helpers_return_dataclasses_matching_open_clip():
    reference = json.loads((RN / "reference.json").read_text())

    async def body():
        async with await VlmdClient.start([vlmd_path(), "--log-level", "off"]) as vlm:
            info = await vlm.load_model("clip", str(RN))
            assert info["kind"] == "clip"
            seen = []
            images = await vlm.encode_image([IMAGES / "chelsea.png", (IMAGES / "astronaut.png").read_bytes()],
                                            batch_size=1, on_image=seen.append)
            assert [type(i) for i in images] == [EncodedImage, EncodedImage] and [i.index for i in seen] == [0, 1]
            for image, want in zip(images, reference["image_embeddings"][:2]):
                assert cosine(list(image.embedding), want) > 0.99999
            again = await vlm.encode_image([images[0].image_id])
            assert again[0].cached and list(again[0].embedding) == list(images[0].embedding)
            labels = reference["classifier_classnames"]
            results = await vlm.classify([IMAGES / "chelsea.png"], labels, templates="cifar", top_k=3, per_template=True)
            result = results[0]
            assert isinstance(result, Classification) and list(result.probs) == labels
            assert abs(sum(result.probs.values()) - 1) < 1e-5
            assert [label for label, _ in result.top] == sorted(labels, key=result.probs.get, reverse=True)[:3]
            assert len(result.per_template) == 18
    run(body())


@pytest.mark.skipif(vlmd_methods.numpy is None, reason="numpy is not installed")
def test_vectors_are_numpy_arrays_when_numpy_is_there():
    async def body():
        async with await VlmdClient.start([vlmd_path(), "--log-level", "off"]) as vlm:
            await vlm.load_model("clip", str(FIXTURES / "vit-tiny"))
            image = (await vlm.encode_image([IMAGES / "coffee.png"], dense=True))[0]
            assert image.embedding.dtype == vlmd_methods.numpy.float32 and image.embedding.ndim == 1
            assert image.dense.features.shape == (image.dense.grid_height * image.dense.grid_width, image.embedding.shape[0])
    run(body())


def test_typed_generation_helpers():
    stories = SHARED / "models" / "stories260K.gguf"

    async def body():
        async with await VlmdClient.start([vlmd_path(), "--log-level", "off"]) as vlm:
            await vlm.load_model("gguf", str(stories), context_length=2048)
            tokens = []
            generation = await vlm.generate("Once upon a time", max_tokens=8, on_token=tokens.append)
            assert isinstance(generation, Generation)
            assert generation.generated_tokens == len(generation.token_ids) == len(tokens) == 8
            assert "".join(tokens) == generation.text and generation.stop_reason == "length"
            await vlm.load_model("clip", str(RN))
            events = []
            reasoning = await vlm.generate_with_visual_selection(IMAGES / "chelsea.png", "What animal is it?",
                                                                 max_tokens_per_stage=8, on_event=events.append)
            assert isinstance(reasoning, VisualReasoning) and reasoning.outcome == "completed"
            assert [stage.tag for stage in reasoning.stages] == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
            ends = [e["text"] for e in events if e["event"] == "stage" and e["phase"] == "end"]
            assert ends == [stage.text for stage in reasoning.stages]
    run(body(), timeout=300)
