"""`generate` with images end to end: the real `vlm` binary against llama.cpp's mtmd-cli steps
(Tests/VLMReasoningTests/Fixtures/mmchat, written by scripts/fixtures/make_mmchat_fixtures.py), and the
daemon's streaming, image cache, errors, cancellation and attribution on the stories260K LLaVA fixture."""

import asyncio
import base64
import json
import math
import os
import subprocess

import pytest
from pygls.exceptions import JsonRpcException

from conftest import ROOT, Daemon, run, vlmd_path
from test_attribute import png
from test_language import smollm2_path

VLM = os.path.join(os.path.dirname(vlmd_path()), "vlm")
SHARED = ROOT.parent / "shared"
IMAGES = SHARED / "data" / "images"
STORIES = str(SHARED / "models" / "stories260K.gguf")
LLAVA = ROOT / "Tests" / "VLMReasoningTests" / "Fixtures" / "llava"
MMCHAT = ROOT / "Tests" / "VLMReasoningTests" / "Fixtures" / "mmchat"
REFERENCE = json.loads((MMCHAT / "reference.json").read_text())


def text_tokens(chunks):
    return [t for c in chunks if "text" in c for t in c["text"]]


def comparable(run_, token_ids):
    """The reference's tokens without its end-of-generation token, and ours, over the comparable prefix."""
    n = run_["comparable_tokens"]
    return token_ids[:n], run_["greedy_ids"][:n]


@pytest.mark.parametrize("case", REFERENCE["runs"], ids=lambda case: case["prompt"][:24])
def test_vlm_generate_gives_llama_mtmd_cli_greedy_tokens(case):
    """`vlm generate --mmproj … --image … [--chat] --temperature 0 --json` against mtmd-cli's steps: the same
    prompt tokens around the images, the same number of image tokens, and the same greedy tokens up to
    llama.cpp's own first near tie."""
    lm = smollm2_path()
    args = [VLM, "generate", "--private", "--lm", lm, "--mmproj", str(MMCHAT / REFERENCE["mmproj"]),
            "--temperature", "0", "--max-tokens", str(REFERENCE["maxTokens"]), "--json"]
    for name in case["images"]:
        args += ["--image", str(IMAGES / name)]
    if case["chat"]:
        args.append("--chat")
    result = subprocess.run(args + [case["prompt"]], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["event"] == "result" and final["stopReason"] in ("eos", "length")
    assert final["promptTokenIds"] == text_tokens(case["chunks"])
    assert [i["tokens"] for i in final["imageTokens"]] == [c["image"] for c in case["chunks"] if "image" in c]
    assert final["promptTokens"] == case["positions"]
    ours, theirs = comparable(case, final["tokenIds"])
    assert ours == theirs
    assert final["timings"]["imageEncodeSeconds"] >= 0


def test_content_parts_place_the_image_like_a_marker():
    """messages with content parts give the tokens the CLI gives for the same text with the image after it."""
    lm = smollm2_path()
    case = REFERENCE["runs"][0]

    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "gguf", "path": lm, "contextLength": 1024})
        await d.request("models/load", {"kind": "mmproj", "path": str(MMCHAT / REFERENCE["mmproj"])})
        result = await d.request("generate", {"messages": [{"role": "user", "content": [
            {"type": "text", "text": case["prompt"]}, {"type": "image", "image": {"path": str(IMAGES / case["images"][0])}}]}],
            "maxTokens": REFERENCE["maxTokens"], "temperature": 0})
        assert list(result.promptTokenIds) == text_tokens(case["chunks"])
        ours, theirs = comparable(case, list(result.tokenIds))
        assert ours == theirs
        assert await d.stop() == 0
    run(body(), timeout=600)


async def stories_with_projector(context_length=256, projector="tiny-mmproj.gguf"):
    d = await Daemon().start()
    await d.request("models/load", {"kind": "gguf", "path": STORIES, "contextLength": context_length})
    await d.request("models/load", {"kind": "mmproj", "path": str(LLAVA / projector), "id": "proj"})
    return d


def test_tokens_stream_and_a_second_question_encodes_nothing():
    async def body():
        d = await stories_with_projector()
        first = await d.request("generate", {"prompt": "Once upon a time <__media__> there was a", "maxTokens": 12,
                                             "images": [{"path": str(IMAGES / "chelsea.png")}], "partialResultToken": "p"})
        streamed = [v for v in d.progress("p")]
        assert [v["id"] for v in streamed] == list(first.tokenIds) and len(first.tokenIds) > 0
        assert [i.cached for i in first.imageTokens] == [False] and first.imageTokens[0].tokens == 16
        hits = {c.name: c.hits for c in (await d.request("daemon/status")).caches}["projector-image-tokens"]
        # The same pixels sent as PNG bytes: the same image id, from the cache.
        png = base64.b64encode((IMAGES / "chelsea.png").read_bytes()).decode()
        second = await d.request("generate", {"prompt": "Once upon a time <__media__> there was a", "maxTokens": 12,
                                              "images": [{"png": png}], "mmproj": "proj"})
        assert [i.cached for i in second.imageTokens] == [True]
        assert second.imageTokens[0].imageId == first.imageTokens[0].imageId
        assert list(second.tokenIds) == list(first.tokenIds)
        after = {c.name: c.hits for c in (await d.request("daemon/status")).caches}["projector-image-tokens"]
        assert after > hits
        # By id alone, now that it is cached.
        third = await d.request("generate", {"prompt": "<__media__>", "maxTokens": 4,
                                             "images": [{"imageId": first.imageTokens[0].imageId}]})
        assert third.imageTokens[0].cached
        assert await d.stop() == 0
    run(body(), timeout=300)


@pytest.mark.parametrize("params,code,words", [
    ({"prompt": "a <__media__> b <__media__>", "images": [{"path": "chelsea.png"}]}, -32602, "2 <__media__> markers for 1 image"),
    ({"prompt": "a <__media__>", "images": [{"path": "chelsea.png"}, {"path": "coins.png"}]}, -32602, "1 <__media__> marker for 2 images"),
    ({"prompt": "a", "attribution": True}, -32602, "no images"),
    ({"messages": [{"role": "user", "content": [{"type": "image"}]}], "images": []}, -32602, "content[0]"),
    ({"prompt": "a", "images": [{"imageId": "img_0000"}]}, -32602, "not in proj's image cache"),
])
def test_bad_multimodal_requests_are_refused(params, code, words):
    async def body():
        d = await stories_with_projector()
        for image in params.get("images", []):
            if "path" in image:
                image["path"] = str(IMAGES / image["path"])
        with pytest.raises(JsonRpcException) as err:
            await d.request("generate", params)
        assert err.value.code == code and words in err.value.message, err.value.message
        assert (await d.request("ping")).pong
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_images_without_a_projector_or_of_the_wrong_width_or_too_many_tokens():
    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "gguf", "path": STORIES, "contextLength": 24})
        image = {"path": str(IMAGES / "coins.png")}
        with pytest.raises(JsonRpcException) as err:
            await d.request("generate", {"prompt": "a", "images": [image]})
        assert err.value.code == -32001 and "mmproj" in err.value.message
        await d.request("models/load", {"kind": "mmproj", "path": str(LLAVA / "bad-width-32.gguf"), "id": "narrow"})
        with pytest.raises(JsonRpcException) as err:
            await d.request("generate", {"prompt": "a", "images": [image], "mmproj": "narrow"})
        assert err.value.code == -32602 and "width" in err.value.message
        await d.request("models/load", {"kind": "mmproj", "path": str(LLAVA / "tiny-mmproj.gguf"), "id": "proj"})
        # 16 image tokens and this text do not fit 24 positions.
        with pytest.raises(JsonRpcException) as err:
            await d.request("generate", {"prompt": "Once upon a time there was a little girl who", "images": [image, image],
                                         "mmproj": "proj"})
        assert err.value.code == -32008
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_cancellation_returns_what_was_generated():
    async def body():
        d = await stories_with_projector(context_length=512)
        task = asyncio.ensure_future(d.request("generate", {
            "prompt": "<__media__>Once upon a time", "images": [{"path": str(IMAGES / "astronaut.png")}], "maxTokens": 480,
            "partialResultToken": "q"}, msg_id="mm"))
        while len(d.progress("q")) < 3:
            await asyncio.sleep(0.01)
        d.notify("$/cancelRequest", {"id": "mm"})
        with pytest.raises(JsonRpcException) as err:
            await task
        assert err.value.code == -32800
        reply = next(m for m in d.checker.received if m.get("id") == "mm")
        assert len(reply["error"]["data"]["tokenIds"]) >= 3
        assert (await d.request("ping")).pong
        assert await d.stop() == 0
    run(body(), timeout=300)


def llava_edges(width, height, canvas=32, patch=8):
    """The cell edges in image pixels of LLaVA-1.5's grid as mtmd lays an image on its square canvas: fitted
    (sides rounded up) and centred, padding around; the canvas's patch rows and columns that show the image,
    with their edges mapped back to the image and clipped to it."""
    scale = min(canvas / width, canvas / height)
    fitted = (min(canvas, math.ceil(width * scale)), min(canvas, math.ceil(height * scale)))
    edges = []
    for side, size in zip((width, height), fitted):
        offset = (canvas - size) // 2
        inner = [(i * patch - offset) * side / size for i in range(1, canvas // patch)]
        edges.append([0] + [e for e in inner if 0 < e < side] + [side])
    return edges


def solid_png(width, height):
    return {"png": base64.b64encode(png(width, height, bytes([90, 160, 30]) * (width * height))).decode()}


def check_sentence_maps(result, images):
    """One map per image and sentence, on the grid its edges describe, all of a sentence's summing to 1."""
    assert result.attributions, "expected one entry per sentence"
    assert "".join(s.text for s in result.attributions) == result.text
    for sentence in result.attributions:
        assert [m.image for m in sentence.maps] == list(range(len(images)))
        total = 0
        for m, (columns, rows) in zip(sentence.maps, images):
            assert list(m.columnEdges) == pytest.approx(columns) and list(m.rowEdges) == pytest.approx(rows)
            assert (m.gridHeight, m.gridWidth) == (len(rows) - 1, len(columns) - 1) and len(m.scores) == m.gridHeight * m.gridWidth
            assert all(math.isfinite(s) and s >= 0 for s in m.scores)
            total += sum(m.scores)
        assert abs(total - 1) < 1e-4


def test_attribution_maps_lie_on_each_images_token_pixels():
    """LLaVA's 4x4 patch grid clipped to each image: chelsea (451x300) shows in all four patch rows, with
    uneven edges; a wide 64x16 image only in rows 1-2 (cells of 16x8 px), a tall 16x64 one in columns 1-2."""
    async def body():
        d = await stories_with_projector()
        images = [{"path": str(IMAGES / "chelsea.png")}, solid_png(64, 16), solid_png(16, 64)]
        result = await d.request("generate", {
            "prompt": "<__media__> and <__media__> and <__media__> Lily saw a big", "maxTokens": 24, "attribution": True,
            "images": images})
        expected = [llava_edges(451, 300), llava_edges(64, 16), llava_edges(16, 64)]
        assert expected[1] == [[0, 16, 32, 48, 64], [0, 8, 16]] and expected[2] == [[0, 8, 16], [0, 16, 32, 48, 64]]
        assert len(expected[0][1]) == 5 and expected[0][1][1] == pytest.approx(3 * 300 / 22)
        check_sentence_maps(result, expected)
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_idefics3_attribution_places_the_tiles_back_on_the_image():
    """idefics3 (32-px tiles of 2x2 tokens, longest edge 96): a 300x100 image is stretched over a row of three
    tiles, so its map is 6 x 2 cells of 50 px, each tile's tokens on its own part of the image, and a 100x300
    one over a column of three (2 x 6 cells)."""
    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "gguf", "path": str(IDEFICS3 / "tiny-lm.gguf"), "contextLength": 256})
        await d.request("models/load", {"kind": "mmproj", "path": str(IDEFICS3 / "tiny-mmproj.gguf")})
        result = await d.request("generate", {"prompt": "<__media__> <__media__> a", "maxTokens": 12, "attribution": True,
                                              "images": [solid_png(300, 100), solid_png(100, 300)]})
        fifties = [50.0 * i for i in range(7)]
        check_sentence_maps(result, [(fifties, fifties[:3]), (fifties[:3], fifties)])
        assert await d.stop() == 0
    run(body(), timeout=300)


async def python_client():
    """The Python client (clients/python) on a fresh daemon."""
    import sys
    sys.path.insert(0, str(ROOT / "clients" / "python"))
    from vlmd_client import VlmdClient
    return await VlmdClient.start([vlmd_path(), "--log-level", "off"])


def test_python_client_generate_with_images():
    async def body():
        async with await python_client() as vlm:
            from vlmd_methods import Generation
            await vlm.load_model("gguf", STORIES, context_length=256)
            await vlm.load_model("mmproj", str(LLAVA / "tiny-mmproj.gguf"))
            tokens = []
            generation = await vlm.generate("Once upon a time <__media__> there was a", images=[IMAGES / "chelsea.png"],
                                            max_tokens=8, attribution=True, on_token=tokens.append)
            assert isinstance(generation, Generation)
            assert "".join(tokens) == generation.text and len(generation.token_ids) == 8
            assert [i["tokens"] for i in generation.image_tokens] == [16]
            assert generation.attributions and generation.timings["imageEncodeSeconds"] >= 0
            # PNG bytes of the same picture: the cache answers.
            again = await vlm.generate("Once upon a time <__media__> there was a", images=[(IMAGES / "chelsea.png").read_bytes()],
                                       max_tokens=8)
            assert again.image_tokens[0]["cached"] and again.token_ids == generation.token_ids
    run(body(), timeout=300)


def test_text_only_content_parts_are_the_text_run_together():
    lm = smollm2_path()

    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "gguf", "path": lm, "contextLength": 512})
        plain = await d.request("generate", {"messages": [{"role": "user", "content": "Name a bird."}], "maxTokens": 6})
        parts = await d.request("generate", {"messages": [{"role": "user", "content": [
            {"type": "text", "text": "Name "}, {"type": "text", "text": "a bird."}]}], "maxTokens": 6})
        assert list(parts.promptTokenIds) == list(plain.promptTokenIds) and list(parts.tokenIds) == list(plain.tokenIds)
        assert await d.stop() == 0
    run(body(), timeout=300)


IDEFICS3 = ROOT / "Tests" / "VLMReasoningTests" / "Fixtures" / "idefics3"
GEMMA3 = ROOT / "Tests" / "VLMReasoningTests" / "Fixtures" / "gemma3"
FULL_PARITY = [
    (LLAVA, STORIES, "tiny-mmproj.gguf", case)
    for case in json.loads((LLAVA / "reference.json").read_text())["greedy"]
] + [
    (IDEFICS3, str(IDEFICS3 / "tiny-lm.gguf"), "tiny-mmproj.gguf", case)
    for case in json.loads((IDEFICS3 / "reference.json").read_text())["greedy"]
] + [
    (GEMMA3, str(GEMMA3 / "tiny-lm.gguf"), "tiny-mmproj.gguf", case)
    for case in json.loads((GEMMA3 / "reference.json").read_text())["greedy"]
]


@pytest.mark.parametrize("directory,lm,mmproj,case", FULL_PARITY,
                         ids=lambda v: v["prompt"][:16] if isinstance(v, dict) else getattr(v, "name", None))
def test_vlm_generate_matches_mtmd_for_every_token_on_the_projector_fixtures(directory, lm, mmproj, case):
    """The LLaVA-1.5 (stories260K), idefics3 and gemma3 fixtures, whose references have no near ties: every
    greedy token of `vlm generate --mmproj … --image … --temperature 0 --json` equals mtmd_helper_eval_chunks'
    (written by make_llava_fixtures.py, make_idefics3_fixtures.py and make_gemma3_mmproj_fixtures.py), with
    mtmd's text chunks around the image tokens — for idefics3 the tile markers and the global view, for
    gemma3 the image tokens decoded with causal attention off."""
    args = [VLM, "generate", "--private", "--lm", lm, "--mmproj", str(directory / mmproj), "--image", str(IMAGES / case["image"]),
            "--temperature", "0", "--max-tokens", str(len(case["greedy_ids"])), "--json", case["prompt"]]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["promptTokenIds"] == text_tokens(case["chunks"])
    assert [i["tokens"] for i in final["imageTokens"]] == [sum(c["image"] for c in case["chunks"] if "image" in c)]
    assert final["promptTokens"] == case["positions"]
    assert final["tokenIds"] == case["greedy_ids"]


QWEN_FIXTURES = {name: ROOT / "Tests" / "VLMReasoningTests" / "Fixtures" / name for name in ("qwen2vl", "qwen25vl")}
QWEN_LM = QWEN_FIXTURES["qwen2vl"] / "tiny-lm.gguf"  # both qwen fixtures' language model
QWEN_PARITY = [(name, json.loads((directory / "reference.json").read_text()), case)
               for name, directory in QWEN_FIXTURES.items()
               for case in json.loads((directory / "reference.json").read_text())["greedy"]]


@pytest.mark.parametrize("name,reference,case", QWEN_PARITY, ids=[f"{name}-{case['prompt'][:16]}" for name, _, case in QWEN_PARITY])
def test_vlm_generate_matches_mtmd_on_the_qwen_fixtures(name, reference, case):
    """`vlm generate --mmproj … --image-max-tokens 32 --image … --temperature 0 --json` on the Qwen2-VL and
    Qwen2.5-VL fixtures (make_qwen2vl_fixtures.py; mtmd ran with image_max_tokens 32): mtmd's text chunks around
    the image, its image-token count, and its greedy tokens — all 24 on qwen25vl, whose generator chose weights
    that keep llama.cpp's top two logits apart at every step, on qwen2vl up to llama.cpp's first near tie (top
    two within 0.05), where our tower's other summation order may flip a token."""
    args = [VLM, "generate", "--private", "--lm", str(QWEN_LM), "--mmproj", str(QWEN_FIXTURES[name] / "tiny-mmproj.gguf"),
            "--image-max-tokens", str(reference["image_max_tokens"]), "--image", str(IMAGES / case["image"]),
            "--temperature", "0", "--max-tokens", str(len(case["greedy_ids"])), "--json", case["prompt"]]
    result = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    final = json.loads(result.stdout.strip().splitlines()[-1])
    assert final["promptTokenIds"] == text_tokens(case["chunks"])
    image = sum(c["image"] for c in case["chunks"] if "image" in c)
    assert [i["tokens"] for i in final["imageTokens"]] == [image]
    # M-RoPE: the cache holds every token, though mtmd's n_past (positions) advances max(nx, ny) over the image.
    assert final["promptTokens"] == len(final["promptTokenIds"]) + image
    clear = next((i for i, m in enumerate(case["margins"]) if m < 0.05), len(case["margins"]))
    if name == "qwen25vl":
        assert clear == len(case["greedy_ids"]) == 24
    assert final["tokenIds"][:clear] == case["greedy_ids"][:clear]


def test_models_load_sets_and_checks_image_token_limits():
    """`imageMinTokens`/`imageMaxTokens` on a Qwen mmproj: the range in force in its details and in the tokens an
    image becomes (astronaut.png, 512 px: 18 x 18 tokens by default, 5 x 5 within 32); bad values, crossed bounds
    and limits for a fixed-size projector are refused with -32602 naming the field, and the daemon serves on."""
    mmproj = str(QWEN_FIXTURES["qwen25vl"] / "tiny-mmproj.gguf")

    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "gguf", "path": str(QWEN_LM), "contextLength": 512})
        wide = await d.request("models/load", {"kind": "mmproj", "path": mmproj, "id": "wide"})
        assert (wide.details.imageMinTokens, wide.details.imageMaxTokens) == (8, 4096)
        small = await d.request("models/load", {"kind": "mmproj", "path": mmproj, "id": "small", "imageMaxTokens": 32})
        assert (small.details.imageMinTokens, small.details.imageMaxTokens) == (8, 32)
        again = await d.request("models/load", {"kind": "mmproj", "path": mmproj, "id": "small", "imageMaxTokens": 32})
        assert again.alreadyLoaded
        # No limits means the defaults: the copy with others does not answer, and its id is taken.
        with pytest.raises(JsonRpcException) as err:
            await d.request("models/load", {"kind": "mmproj", "path": mmproj, "id": "small"})
        assert err.value.code == -32602 and "'small' is already loaded" in err.value.message, err.value.message
        image = [{"path": str(IMAGES / "astronaut.png")}]
        for projector, tokens in [("small", 25), ("wide", 18 * 18)]:
            result = await d.request("generate", {"prompt": "<__media__>", "images": image, "mmproj": projector, "maxTokens": 1})
            assert result.imageTokens[0].tokens == tokens
        for params, words in [({"imageMaxTokens": 0}, "params.imageMaxTokens"),
                              ({"imageMinTokens": 70000}, "params.imageMinTokens"),
                              ({"imageMinTokens": 64, "imageMaxTokens": 32}, "params.imageMinTokens: 64 is more than imageMaxTokens 32"),
                              ({"imageMaxTokens": "many"}, "imageMaxTokens")]:
            # Under the id of a resident copy of the file: bad options are refused, not answered by the copy.
            with pytest.raises(JsonRpcException) as err:
                await d.request("models/load", {"kind": "mmproj", "path": mmproj, "id": "wide", **params})
            assert err.value.code == -32602 and words in err.value.message, err.value.message
        with pytest.raises(JsonRpcException) as err:
            await d.request("models/load", {"kind": "mmproj", "path": str(LLAVA / "tiny-mmproj.gguf"), "imageMaxTokens": 32})
        assert err.value.code == -32602 and "'mlp'" in err.value.message, err.value.message
        assert sorted(m["id"] for m in await d.request("models/list") if m["kind"] == "mmproj") == ["small", "wide"]
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_python_client_loads_a_qwen_projector_with_image_token_limits():
    async def body():
        async with await python_client() as vlm:
            await vlm.load_model("gguf", QWEN_LM, context_length=512)
            info = await vlm.load_model("mmproj", QWEN_FIXTURES["qwen25vl"] / "tiny-mmproj.gguf", image_min_tokens=4,
                                        image_max_tokens=32)
            assert (info["details"]["imageMinTokens"], info["details"]["imageMaxTokens"]) == (4, 32)
            generation = await vlm.generate("<__media__>", images=[IMAGES / "astronaut.png"], max_tokens=1)
            assert [i["tokens"] for i in generation.image_tokens] == [25]
    run(body(), timeout=300)
