"""The Python client's example scripts, run as a user runs them from a terminal."""

import os
import subprocess
import sys

from conftest import ROOT, vlmd_path

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
