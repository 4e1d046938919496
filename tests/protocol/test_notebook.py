"""clients/python/notebooks/visual-reasoning.ipynb runs headless (nbclient) against the built daemon,
with the demo CIFAR CLIP and SmolLM2 at temperature 0, and its outputs hold the heatmaps it shows."""

import base64

import nbclient
import nbformat

from conftest import ROOT, vlmd_path
from test_language import smollm2_path

NOTEBOOK = ROOT / "clients" / "python" / "notebooks" / "visual-reasoning.ipynb"
DEMO_CLIP = ROOT.parent / "shared" / "models" / "cifar-clip-rn64"


def test_visual_reasoning_notebook_runs_and_shows_heatmaps(monkeypatch):
    monkeypatch.setenv("VLMD", vlmd_path())
    monkeypatch.setenv("VLMD_CLIP", str(DEMO_CLIP))
    monkeypatch.setenv("VLMD_LM", smollm2_path())
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    pngs = [base64.b64decode(o.data["image/png"]) for o in outputs if "image/png" in o.get("data", {})]
    assert all(p.startswith(b"\x89PNG\r\n\x1a\n") for p in pngs)
    # The photo, three attribute heatmaps, and at least one reasoning step's heatmap.
    assert len(pngs) >= 5, len(pngs)
    text = "".join(o.get("text", "") for o in outputs)
    assert "a photo of a cat.': peak" in text
    assert all(f"== {stage} ==" in text for stage in ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION"))
    assert "answer:" in text
