"""generate-with-visual-selection end to end through the daemon."""

import asyncio
import base64
import math

import pytest
from pygls.exceptions import JsonRpcException

from conftest import ROOT, Daemon, run
from test_language import smollm2_path

SHARED = ROOT.parent / "shared"
IMAGES = SHARED / "data" / "images"
FIXTURES = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures"


async def with_models(clip="rn-tiny", lm=None):
    d = await Daemon().start()
    await d.request("models/load", {"kind": "clip", "path": str(FIXTURES / clip)})
    # stories260K was trained on 512 positions; the staged prompt needs more (RoPE extends).
    await d.request("models/load", {"kind": "gguf", "path": lm or str(SHARED / "models/stories260K.gguf"), "contextLength": 1024})
    return d


# stories260K has a 512-token context: a small bank and grid keep the evidence short.
SMALL = {"labels": ["cat", "dog", "person", "cup", "rocket", "coin"], "regionGrid": [1, 2], "maxSteps": 2}


def events(d, kind):
    return [v for v in d.progress("p") if v["event"] == kind]


def check_attribution(a, width, height):
    assert len(a["scores"]) == a["gridHeight"] * a["gridWidth"]
    assert all(math.isfinite(s) and s >= 0 for s in a["scores"])
    assert abs(sum(a["scores"]) - 1) < 1e-4
    if "selection" in a:
        assert all(0 <= c < len(a["scores"]) for c in a["selection"]["cells"])
        box = a["selection"]["pixelBox"]
        assert box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= width and box["y"] + box["height"] <= height


@pytest.mark.parametrize("clip", ["rn-tiny", "vit-tiny"])
def test_stages_attribution_and_heatmaps_stream(tmp_path, clip):
    async def body():
        d = await with_models(clip)
        result = await d.request("generate-with-visual-selection", {
            "image": {"path": str(IMAGES / "astronaut.png")}, "question": "What is the person wearing?",
            "maxTokensPerStage": 16, "select": "box", "maxLooks": 1, "heatmapDir": str(tmp_path), "seed": 1, **SMALL,
            "partialResultToken": "p"})
        assert result.outcome == "completed"
        stages = [(e["phase"], e["stage"]) for e in events(d, "stage")]
        assert stages == [(phase, tag) for tag in ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION") for phase in ("begin", "end")]
        assert events(d, "token") and events(d, "evidence")
        for a in events(d, "attribution"):
            check_attribution(a["attribution"], 512, 512)
            assert (tmp_path / f"step-{a['step']}.png").exists()
        assert [s.tag for s in result.stages] == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
        assert await d.stop() == 0
    run(body(), timeout=600)


def test_seeded_beam_search_is_reproducible_and_reports_verdicts():
    async def body():
        d = await with_models()
        params = {"image": {"path": str(IMAGES / "coffee.png")}, "question": "What is on the table?", "beam": 2,
                  "maxTokensPerStage": 12, "seed": 5, "select": "topk", "k": 3, "heatmapsInline": True, **SMALL}
        a = await d.request("generate-with-visual-selection", {**params, "partialResultToken": "p"})
        verdicts = events(d, "verdict")
        assert verdicts and all(v["verdict"]["winner"] in (v["verdict"]["first"], v["verdict"]["second"]) for v in verdicts)
        for e in events(d, "attribution"):
            assert base64.b64decode(e["attribution"]["heatmapPNG"])[:8] == b"\x89PNG\r\n\x1a\n"
        b = await d.request("generate-with-visual-selection", params)
        assert a.transcript == b.transcript and a.answer == b.answer
        # The second run's image features and label-bank text embeddings came from the daemon's caches.
        caches = {c.name: c for c in (await d.request("daemon/status")).caches}
        assert caches["reasoning-image-features"].hits >= 1 and caches["text-embeddings"].hits >= len(SMALL["labels"])
        assert await d.stop() == 0
    run(body(), timeout=600)


@pytest.mark.parametrize("params, code", [
    ({"beam": 9}, -32602),
    ({"select": "box", "mass": 1.5}, -32602),
    ({"select": "sideways"}, -32602),
    ({"question": "why? " * 3000}, -32008),
    ({"image": {"path": str(ROOT / "README.md")}}, -32004),
])
def test_bad_parameters_are_refused_before_generation(params, code):
    async def body():
        d = await with_models()
        with pytest.raises(JsonRpcException) as err:
            await d.request("generate-with-visual-selection", {"image": {"path": str(IMAGES / "coffee.png")}, "question": "What?", **SMALL, **params})
        assert err.value.code == code, err.value.message
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_missing_language_model_is_a_clear_error():
    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "clip", "path": str(FIXTURES / "rn-tiny")})
        with pytest.raises(JsonRpcException) as err:
            await d.request("generate-with-visual-selection", {"image": {"path": str(IMAGES / "coffee.png")}, "question": "What?"})
        assert err.value.code == -32001 and "gguf" in err.value.message
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_smollm2_end_to_end_and_cancellation_mid_stage(tmp_path):
    path = smollm2_path()

    async def body():
        d = await with_models("rn-tiny", path)
        result = await d.request("generate-with-visual-selection", {
            "image": {"path": str(IMAGES / "chelsea.png")}, "question": "What animal is this?", "maxTokensPerStage": 24,
            "heatmapDir": str(tmp_path), "partialResultToken": "p"})
        assert result.outcome == "completed" and len(result.stages) == 4
        task = asyncio.ensure_future(d.request("generate-with-visual-selection", {
            "image": {"path": str(IMAGES / "chelsea.png")}, "question": "Describe everything.", "maxTokensPerStage": 400,
            "partialResultToken": "q"}, msg_id="vr"))
        while len([v for v in d.progress("q") if v["event"] == "token"]) < 3:
            await asyncio.sleep(0.01)
        d.notify("$/cancelRequest", {"id": "vr"})
        with pytest.raises(JsonRpcException) as err:
            await task
        assert err.value.code == -32800
        reply = next(m for m in d.checker.received if m.get("id") == "vr")
        assert reply["error"]["data"]["outcome"] == "cancelled"
        assert await d.stop() == 0
    run(body(), timeout=900)


LLAVA = ROOT / "Tests" / "VLMReasoningTests" / "Fixtures" / "llava"


def test_llava_path_streams_attention_attribution_on_the_patch_grid(tmp_path):
    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "gguf", "path": str(SHARED / "models/stories260K.gguf"), "contextLength": 1024})
        info = await d.request("models/load", {"kind": "mmproj", "path": str(LLAVA / "tiny-mmproj.gguf"), "id": "proj"})
        assert info.kind == "mmproj" and info.details.outputWidth == 64
        result = await d.request("generate-with-visual-selection", {
            "mmproj": "proj", "image": {"path": str(IMAGES / "chelsea.png")}, "question": "What animal is it?",
            "maxTokensPerStage": 12, "maxSteps": 2, "heatmapDir": str(tmp_path), "partialResultToken": "p"})
        assert result.outcome == "completed" and len(result.stages) == 4
        maps = events(d, "attribution")
        assert maps
        for a in maps:
            check_attribution(a["attribution"], 451, 300)
            assert (a["attribution"]["gridHeight"], a["attribution"]["gridWidth"]) == (4, 4)
        assert await d.stop() == 0
    run(body(), timeout=600)


FIXTURES_VLM = ROOT / "Tests" / "VLMReasoningTests" / "Fixtures"
TINY_LM = FIXTURES_VLM / "idefics3" / "tiny-lm.gguf"
# Every projector type with a fixture, each with a language model of its width (gemma3's reference LM is
# idefics3's tiny llama: fixtures/gemma3/reference.json).
PROJECTOR_PATHS = {
    "mlp": (LLAVA / "tiny-mmproj.gguf", SHARED / "models/stories260K.gguf"),
    "idefics3": (FIXTURES_VLM / "idefics3" / "tiny-mmproj.gguf", TINY_LM),
    "gemma3": (FIXTURES_VLM / "gemma3" / "tiny-mmproj.gguf", TINY_LM),
    "qwen2vl_merger": (FIXTURES_VLM / "qwen2vl" / "tiny-mmproj.gguf", FIXTURES_VLM / "qwen2vl" / "tiny-lm.gguf"),
    "qwen2.5vl_merger": (FIXTURES_VLM / "qwen25vl" / "tiny-mmproj.gguf", FIXTURES_VLM / "qwen2vl" / "tiny-lm.gguf"),
    # gemma3's projector with a gemma3-architecture LM (random weights, sliding window on block 0): its image
    # tokens, the look's too, attend to each other both ways.
    "gemma3+gemma3-lm": (FIXTURES_VLM / "gemma3" / "tiny-mmproj.gguf", FIXTURES_VLM / "gemma3" / "tiny-lm.gguf"),
}
# Load params beyond the path: the qwen fixtures' image-token budget (a 451x300 image becomes 6 x 4 tokens).
PROJECTOR_LOAD = {"qwen2vl_merger": {"imageMaxTokens": 32}, "qwen2.5vl_merger": {"imageMaxTokens": 32}}
# Maps on the qwen paths lie on the merged-token grid (gridHeight, gridWidth): one cell per token.
PROJECTOR_GRID = {"qwen2vl_merger": (4, 6), "qwen2.5vl_merger": (4, 6)}


@pytest.mark.parametrize("kind", sorted(PROJECTOR_PATHS))
def test_every_projector_path_streams_stages_maps_and_looks(kind, tmp_path):
    """A streamed run on each projector path: the four stages, one attention map per reasoning step over
    the whole (wide) image, and a look whose evidence carries its pixel box inside the image."""
    mmproj, lm = PROJECTOR_PATHS[kind]

    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "gguf", "path": str(lm), "contextLength": 1024, "id": "lm"})
        info = await d.request("models/load", {"kind": "mmproj", "path": str(mmproj), "id": "proj", **PROJECTOR_LOAD.get(kind, {})})
        assert info.details.projectorType == kind.split("+")[0]
        result = await d.request("generate-with-visual-selection", {
            "lm": "lm", "mmproj": "proj", "image": {"path": str(IMAGES / "chelsea.png")}, "question": "What animal is it?",
            "maxTokensPerStage": 24, "maxSteps": 3, "maxLooks": 1, "select": "box", "mass": 0.3,
            "heatmapDir": str(tmp_path), "partialResultToken": "p"})
        assert result.outcome == "completed"
        assert [s.tag for s in result.stages] == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
        stage_ends = [e["stage"] for e in events(d, "stage") if e["phase"] == "end"]
        assert stage_ends == ["SUMMARY", "CAPTION", "REASONING", "CONCLUSION"]
        maps = events(d, "attribution")
        assert result.steps and [m["step"] for m in maps] == [s.index for s in result.steps]
        for m in maps:
            a = m["attribution"]
            check_attribution(a, 451, 300)
            assert a["normalization"].startswith("attention")
            assert PROJECTOR_GRID.get(kind, (a["gridHeight"], a["gridWidth"])) == (a["gridHeight"], a["gridWidth"])
        looks = events(d, "look")
        assert len(looks) == 1, [s.text for s in result.steps]
        box = looks[0]["evidence"]["box"]
        assert looks[0]["evidence"]["source"] == "look"
        assert box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= 451 and box["y"] + box["height"] <= 300
        assert box["width"] < 451 or box["height"] < 300
        assert await d.stop() == 0
    run(body(), timeout=600)


def test_llava_projector_width_must_match_the_language_model():
    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "gguf", "path": str(SHARED / "models/stories260K.gguf")})
        await d.request("models/load", {"kind": "mmproj", "path": str(LLAVA / "bad-width-32.gguf"), "id": "narrow"})
        with pytest.raises(JsonRpcException) as err:
            await d.request("generate-with-visual-selection", {"mmproj": "narrow", "image": {"path": str(IMAGES / "coins.png")}, "question": "What?"})
        assert err.value.code == -32602 and "width" in err.value.message
        for bad in ("bad-missing-tensor.gguf", "bad-patch-shape.gguf", "bad-projector-type.gguf"):
            with pytest.raises(JsonRpcException) as err:
                await d.request("models/load", {"kind": "mmproj", "path": str(LLAVA / bad)})
            assert err.value.code == -32003
        assert await d.stop() == 0
    run(body(), timeout=300)
