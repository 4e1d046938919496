"""selector/train, selector/evaluate and attribute {selector} end to end, with the trained demo CLIP
(../shared/models/cifar-clip-rn64) on the composite scenes of scripts/make_scenes.py: training
scenes from train_5000.bin, evaluation scenes from test_batch.bin."""

import asyncio
import json
import subprocess
import sys

import pytest
from pygls.exceptions import JsonRpcException

from conftest import ROOT, Daemon, run

SHARED = ROOT.parent / "shared"
DEMO_CLIP = SHARED / "models" / "cifar-clip-rn64"
TINY_CLIP = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures" / "rn-tiny"
POINTING = json.loads((ROOT / "tests" / "protocol" / "fixtures" / "pointing-scenes.json").read_text())


def scenes(out, split, grid, count, seed):
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_scenes.py"), "--split", split, "--grid", str(grid), "--count",
                    str(count), "--seed", str(seed), "--out", str(out), "--shared", str(SHARED)], check=True, capture_output=True)
    return out / "scenes.jsonl"


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    # The evaluation scenes are the 500 seed-0 scenes open_clip's pointing figure was measured on.
    return {"train": scenes(root / "train", "train", 2, 400, 1), "test": scenes(root / "test", "test", 2, 500, 0)}


async def with_demo_clip(prompts):
    d = await Daemon("--prompts-dir", str(prompts)).start()
    d.clip_id = (await d.request("models/load", {"kind": "clip", "path": str(DEMO_CLIP)})).id
    return d


@pytest.mark.parametrize("crop_grid, gain", [(0, 0.06), (2, 0.20)], ids=["dense-cells", "crops"])
def test_a_trained_selector_points_better_than_the_similarity_map_on_held_out_scenes(tmp_path, scene_files, crop_grid, gain):
    """Measured (400 training scenes, 150 steps, seed 0): the plain map points at the query's cell in
    52.15 % of 2,000 held-out queries (open_clip's own figure); the head on the dense cells about 64 %,
    on the 2x2 crops' embeddings about 85 %. The thresholds are half those gains."""
    async def body():
        d = await with_demo_clip(tmp_path)
        trained = await d.request("selector/train", {
            "examples": str(scene_files["train"]), "steps": 150, "learningRate": 0.01, "cropGrid": crop_grid,
            "saveAs": "scenes", "partialResultToken": "p"})
        steps = [v for v in d.progress("p") if isinstance(v, dict) and "step" in v]
        assert [s["step"] for s in steps] == list(range(1, 151))
        assert trained.images == 400 and trained.trainExamples + trained.validationExamples == 1600
        assert trained.bestValidationLoss < trained.initialValidationLoss
        assert trained.savedTo.endswith("scenes.selector.safetensors")
        result = await d.request("selector/evaluate", {"examples": str(scene_files["test"]), "selector": "scenes"})
        assert result.queries == 2000 and result.images == 500
        assert abs(result.similarity.pointing - POINTING["grids"]["2x2"]["allAccuracy"]) <= 1 / 2000
        assert result.learned.pointing >= result.similarity.pointing + gain, (result.learned, result.similarity)
        assert result.learned.meanIoU > result.similarity.meanIoU
        assert await d.stop() == 0
    run(body(), timeout=900)


def test_attribute_returns_the_selectors_maps_over_dense_cells_and_over_crops(tmp_path, scene_files):
    async def body():
        d = await with_demo_clip(tmp_path)
        for name, grid in (("dense", 0), ("crops", 2)):
            await d.request("selector/train", {"examples": str(scene_files["train"]), "steps": 20, "cropGrid": grid, "saveAs": name})
        line = json.loads(scene_files["test"].read_text().splitlines()[0])
        image = {"path": str(scene_files["test"].parent / line["image"])}
        plain = await d.request("attribute", {"image": image, "texts": [line["text"]], "select": "off"})
        learned = await d.request("attribute", {"image": image, "texts": [line["text"]], "select": "off", "selector": "dense"})
        got = learned.attributions[0]
        assert got.normalization.startswith("selector(") and abs(sum(got.scores) - 1) < 1e-4
        assert got.scores != plain.attributions[0].scores
        crops = await d.request("attribute", {"image": image, "texts": [line["text"]], "select": "box", "mass": 0.01, "selector": "crops"})
        got = crops.attributions[0]
        # The crop grid tiles the whole 64x64 scene in 32 px cells; a tiny mass selects the top cell alone.
        assert [crops.gridHeight, crops.gridWidth] == [2, 2] and got.normalization.startswith("selector(")
        seen = crops.visibleBox
        assert (seen.x, seen.y, seen.width, seen.height) == (0, 0, 64, 64)
        top = max(range(4), key=got.scores.__getitem__)
        box = got.selection.pixelBox
        assert (box.x, box.y, box.width, box.height) == (32 * (top % 2), 32 * (top // 2), 32, 32)
        assert await d.stop() == 0
    run(body(), timeout=600)


def test_cancelling_training_keeps_and_saves_the_best_state(tmp_path, scene_files):
    async def body():
        d = await with_demo_clip(tmp_path)
        task = asyncio.ensure_future(d.request("selector/train", {
            "examples": str(scene_files["train"]), "steps": 1000000, "validateEvery": 1, "saveAs": "cut",
            "partialResultToken": "p"}, msg_id="train"))
        while len(d.progress("p")) < 5:
            await asyncio.sleep(0.01)
        d.notify("$/cancelRequest", {"id": "train"})
        with pytest.raises(JsonRpcException) as err:
            await task
        assert err.value.code == -32800
        data = next(m for m in d.checker.received if m.get("id") == "train")["error"]["data"]
        assert data["cancelled"] and 5 <= data["stepsRun"] < 1000000 and data["savedTo"].endswith("cut.selector.safetensors")
        assert (tmp_path / "cut.selector.safetensors").is_file()
        result = await d.request("selector/evaluate", {"examples": str(scene_files["test"]), "selector": "cut"})
        assert result.learned is not None
        assert await d.stop() == 0
    run(body(), timeout=600)


def write_lines(path, lines):
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return str(path)


@pytest.mark.parametrize("line, needle", [
    ({"box": [40, 40, 32, 32]}, "outside"),
    ({"box": [0, 0, 0, 32]}, "width, height"),
    ({"text": "  "}, "text is empty"),
    ({"map": [1, 0, 0, 0]}, "exactly one"),
    ({"box": None, "map": [1, 2]}, "4 non-negative values"),
], ids=["box-outside", "empty-box", "empty-text", "box-and-map", "map-size"])
def test_bad_examples_are_refused_before_any_work(tmp_path, scene_files, line, needle):
    async def body():
        d = await with_demo_clip(tmp_path)
        first = json.loads(scene_files["test"].read_text().splitlines()[0])
        bad = {**first, "image": str(scene_files["test"].parent / first["image"]), **line}
        bad = {k: v for k, v in bad.items() if v is not None}
        with pytest.raises(JsonRpcException) as err:
            await d.request("selector/train", {"examples": write_lines(tmp_path / "bad.jsonl", [bad]), "saveAs": "never"})
        assert err.value.code == -32602 and needle in err.value.message, err.value.message
        assert not (tmp_path / "never.selector.safetensors").exists()
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_unknown_selectors_and_selectors_of_another_model_are_refused(tmp_path, scene_files):
    async def body():
        d = await with_demo_clip(tmp_path)
        await d.request("selector/train", {"examples": str(scene_files["train"]), "steps": 2, "saveAs": "demo"})
        with pytest.raises(JsonRpcException) as err:
            await d.request("selector/evaluate", {"examples": str(scene_files["test"]), "selector": "missing"})
        assert err.value.code == -32602 and "no selector named 'missing'" in err.value.message
        await d.request("models/unload", {"id": d.clip_id})
        await d.request("models/load", {"kind": "clip", "path": str(TINY_CLIP)})
        with pytest.raises(JsonRpcException) as err:
            await d.request("selector/evaluate", {"examples": str(scene_files["test"]), "selector": "demo"})
        assert err.value.code == -32602 and "another CLIP model" in err.value.message
        with pytest.raises(JsonRpcException) as err:
            await d.request("selector/train", {"examples": str(scene_files["train"]), "steps": 0})
        assert err.value.code == -32602 and "params.steps" in err.value.message
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_learned_selection_looks_up_front_and_steps_still_stream_maps(tmp_path, scene_files):
    """generate-with-visual-selection {select: "learned"}: the region the selector picks for the
    question (attribute with the same selector and select "box" names it independently of the run)
    is looked at before the stages, and the steps' attribution maps still stream."""
    async def body():
        d = await with_demo_clip(tmp_path)
        await d.request("models/load", {"kind": "gguf", "path": str(SHARED / "models" / "stories260K.gguf"), "contextLength": 1024})
        await d.request("selector/train", {"examples": str(scene_files["train"]), "steps": 50, "learningRate": 0.01, "saveAs": "s"})
        line = json.loads(scene_files["test"].read_text().splitlines()[0])
        image = {"path": str(scene_files["test"].parent / line["image"])}
        chosen = await d.request("attribute", {"image": image, "texts": [line["text"]], "selector": "s", "select": "box"})
        result = await d.request("generate-with-visual-selection", {
            "clip": d.clip_id, "image": image, "question": line["text"], "select": "learned", "selector": "s",
            "labels": ["cat", "dog", "ship", "truck"], "regionGrid": [1, 2], "maxSteps": 2, "maxTokensPerStage": 12, "seed": 1,
            "partialResultToken": "p"})
        assert result.outcome == "completed"
        evidence = [v["evidence"] for v in d.progress("p") if v["event"] == "evidence"]
        selected = [e for e in evidence if e.get("region") == "selected"]
        assert len(selected) == 1 and selected[0]["source"] == "region"
        box = chosen.attributions[0].selection.pixelBox
        assert selected[0]["box"] == {"x": box.x, "y": box.y, "width": box.width, "height": box.height}
        stages = [v for v in d.progress("p") if v["event"] == "stage"]
        first_stage = d.progress("p").index(stages[0])
        assert d.progress("p").index(next(v for v in d.progress("p") if v.get("evidence", {}).get("region") == "selected")) < first_stage
        assert [v for v in d.progress("p") if v["event"] == "attribution"]
        with pytest.raises(JsonRpcException) as err:
            await d.request("generate-with-visual-selection", {"image": image, "question": "what?", "select": "learned"})
        assert err.value.code == -32602 and "params.selector" in err.value.message
        assert await d.stop() == 0
    run(body(), timeout=600)


def test_distil_trains_a_selector_that_predicts_held_out_reasoning_from_the_question(tmp_path, scene_files):
    """selector/distil: stories260K reasons about every query of 12 scenes (48 questions) with the demo
    CLIP; each run's step maps, averaged, are its target; the head learns to predict that map from the
    question alone. On the 12 questions of the 3 held-out scenes it must beat the untrained head (the
    plain map) and chance (the target's top cell among 4: 3 of 12 questions). Measured (seed 1, 60
    steps at 0.03): held-out loss 3.37 -> 1.69 (best at step 50), top cell 7 of 12 there; the
    thresholds: loss at most 3/4 of the plain map's, top cell at least 5 of 12."""
    async def body():
        d = await with_demo_clip(tmp_path)
        await d.request("models/load", {"kind": "gguf", "path": str(SHARED / "models" / "stories260K.gguf"), "contextLength": 1024})
        lines = [json.loads(line) for line in scene_files["test"].read_text().splitlines()[:48]]
        questions = write_lines(tmp_path / "questions.jsonl", [
            {"image": str(scene_files["test"].parent / line["image"]), "question": line["text"]} for line in lines])
        result = await d.request("selector/distil", {
            "examples": questions, "labels": ["cat", "dog", "ship", "truck"], "regionGrid": [1, 2], "maxTokensPerStage": 12,
            "steps": 60, "learningRate": 0.03, "validationFraction": 0.25, "saveAs": "distilled", "seed": 1, "partialResultToken": "p"})
        assert result.questions == 48 and result.recorded == 48
        steps = d.progress("p")
        assert [v["step"] for v in steps] == list(range(1, 61))
        assert result.training.validationExamples == 12 and result.training.savedTo.endswith("distilled.selector.safetensors")
        training = result.training
        assert training.bestValidationLoss <= 0.75 * training.initialValidationLoss, training
        best = next(v for v in steps if v["step"] == training.bestStep)
        assert best["validationTopCell"] >= 5 / 12 - 1e-9, best
        image = {"path": str(scene_files["test"].parent / lines[0]["image"])}
        got = await d.request("attribute", {"image": image, "texts": [lines[0]["text"]], "selector": "distilled"})
        assert got.attributions[0].normalization.startswith("selector(")
        with pytest.raises(JsonRpcException) as err:
            await d.request("selector/distil", {"examples": write_lines(tmp_path / "bad.jsonl", [{"image": "x.png", "question": " "}])})
        assert err.value.code == -32602 and "question is empty" in err.value.message
        assert await d.stop() == 0
    run(body(), timeout=900)


NATIVE = json.loads((ROOT / "tests" / "protocol" / "fixtures" / "native-dense.json").read_text())
VIT_CLIP = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures" / "vit-tiny"


@pytest.mark.parametrize("grid", [2, 3], ids=["2x2-at-128", "3x3-at-192"])
def test_attribute_at_another_resolution_is_open_clips_map(tmp_path, grid):
    """attribute {resolution}: the scene through the model's preprocessing at that size, the trunk at
    that size, the attnpool positional embedding resized bicubically: the same 4x4 / 6x6 maps as
    open_clip on PyTorch (scripts/fixtures/make_native_dense_fixtures.py, first test scene, seed 0)."""
    reference = NATIVE["grids"][f"{grid}x{grid}"]
    lines = [json.loads(line) for line in scenes(tmp_path / "scene", "test", grid, 1, 0).read_text().splitlines()]
    assert [line["record"] for line in lines] == reference["first"]["records"]

    async def body():
        d = await with_demo_clip(tmp_path)
        image = {"path": str(tmp_path / "scene" / lines[0]["image"])}
        texts = [line["text"] for line in lines]
        result = await d.request("attribute", {"image": image, "texts": texts, "select": "off", "resolution": reference["resolution"]})
        assert [result.gridHeight, result.gridWidth] == reference["mapGrid"]
        for got, want in zip(result.attributions, reference["first"]["maps"]):
            assert max(abs(a - b) for a, b in zip(got.scores, want["scores"])) < 1e-4, (got.text, got.scores, want["scores"])
        plain = await d.request("attribute", {"image": image, "texts": texts[:1], "select": "off"})
        assert [plain.gridHeight, plain.gridWidth] == [2, 2]
        assert await d.stop() == 0
    run(body(), timeout=300)


@pytest.fixture(scope="module")
def native_train_scenes(tmp_path_factory):
    return scenes(tmp_path_factory.mktemp("native") / "train", "train", 2, 400, 1)


def test_a_selector_at_the_native_resolution_beats_both_plain_maps(tmp_path, scene_files, native_train_scenes):
    """The 2x2 scenes at 128 px (every CIFAR image at the 64 px the model was trained at, a 4x4 map):
    the plain map points at the query's cell as often as open_clip's same computation (72.1 % of
    2,000 held-out queries, box IoU 0.317), the 64 px plain map 52.15 %; a head trained at 128 px on
    400 training scenes (150 steps) measured 72.6 %, box IoU 0.546: the head's gain at the same
    resolution is in the box (its map concentrates on the object's cells), hardly in the pointing.
    The thresholds keep about half of each gain; pointing at 128 px must not drop."""
    async def body():
        d = await with_demo_clip(tmp_path)
        trained = await d.request("selector/train", {
            "examples": str(native_train_scenes), "steps": 150, "learningRate": 0.01, "resolution": 128, "saveAs": "native"})
        assert trained.bestValidationLoss < trained.initialValidationLoss
        result = await d.request("selector/evaluate", {"examples": str(scene_files["test"]), "selector": "native"})
        assert result.resolution == 128 and result.learnedResolution == 128
        assert abs(result.similarity.pointing - NATIVE["grids"]["2x2"]["accuracy"]) <= 2 / 2000, result.similarity
        default = await d.request("selector/evaluate", {"examples": str(scene_files["test"]), "selector": "native", "resolution": 64})
        assert default.resolution == 64 and default.learned == result.learned
        assert abs(default.similarity.pointing - POINTING["grids"]["2x2"]["allAccuracy"]) <= 1 / 2000
        assert result.learned.pointing >= default.similarity.pointing + 0.10, (result.learned, default.similarity)
        assert result.learned.pointing >= result.similarity.pointing - 0.01, (result.learned, result.similarity)
        assert result.learned.meanIoU >= result.similarity.meanIoU + 0.10, (result.learned, result.similarity)
        line = json.loads(scene_files["test"].read_text().splitlines()[0])
        image = {"path": str(scene_files["test"].parent / line["image"])}
        got = await d.request("attribute", {"image": image, "texts": [line["text"]], "select": "off", "selector": "native"})
        assert [got.gridHeight, got.gridWidth] == [4, 4] and got.attributions[0].normalization.startswith("selector(")
        with pytest.raises(JsonRpcException) as err:
            await d.request("attribute", {"image": image, "texts": [line["text"]], "selector": "native", "resolution": 192})
        assert err.value.code == -32602 and "trained on cells at 128 px" in err.value.message
        assert await d.stop() == 0
    run(body(), timeout=900)


@pytest.mark.parametrize("method, params, needle", [
    ("attribute", {"resolution": 100}, "multiple of 32"),
    ("attribute", {"resolution": 16}, "multiple of 32"),
    ("attribute", {"resolution": 0}, "multiple of 32"),
    ("attribute", {"resolution": -64}, "multiple of 32"),
    ("attribute", {"resolution": 288}, "32...256"),
    ("selector/train", {"resolution": 96, "cropGrid": 2}, "cropGrid"),
    ("selector/train", {"resolution": 100}, "params.resolution"),
    ("selector/evaluate", {"resolution": 320}, "params.resolution"),
], ids=["not-a-multiple", "too-small", "zero", "negative", "too-large", "with-crops", "train", "evaluate"])
def test_bad_resolutions_are_refused_before_any_work(tmp_path, scene_files, method, params, needle):
    async def body():
        d = await with_demo_clip(tmp_path)
        line = json.loads(scene_files["test"].read_text().splitlines()[0])
        base = {"attribute": {"image": {"path": str(scene_files["test"].parent / line["image"])}, "texts": ["a cat"]},
                "selector/train": {"examples": str(scene_files["train"]), "saveAs": "never"},
                "selector/evaluate": {"examples": str(scene_files["test"])}}[method]
        with pytest.raises(JsonRpcException) as err:
            await d.request(method, {**base, **params})
        assert err.value.code == -32602 and needle in err.value.message, err.value.message
        assert not (tmp_path / "never.selector.safetensors").exists()
        await d.request("models/unload", {"id": d.clip_id})
        await d.request("models/load", {"kind": "clip", "path": str(VIT_CLIP)})
        with pytest.raises(JsonRpcException) as err:
            await d.request("attribute", {"image": base.get("image", {"path": str(scene_files["test"].parent / line["image"])}),
                                          "texts": ["a cat"], "resolution": 448})
        assert err.value.code == -32602 and "ModifiedResNet" in err.value.message, err.value.message
        assert await d.stop() == 0
    run(body(), timeout=300)
