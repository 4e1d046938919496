"""CLIP methods end to end through the daemon, against open_clip's outputs (fixtures made by
scripts/fixtures/make_clip_fixtures.py from PNG files in ../shared/data/images)."""

import asyncio
import base64
import json
import math

import pytest
from pygls.exceptions import JsonRpcException

from conftest import ROOT, Daemon, run

FIXTURES = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures"
SHARED = ROOT.parent / "shared"
IMAGES = SHARED / "data" / "images"
CIFAR = SHARED / "data" / "cifar-10"


def reference(name):
    return json.loads((FIXTURES / name / "reference.json").read_text())


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


async def with_model(name="rn-tiny", *args):
    d = await Daemon(*args).start()
    info = await d.request("models/load", {"kind": "clip", "path": str(FIXTURES / name), "workDoneToken": "load"})
    assert info.id == name and info.kind == "clip" and info.memoryBytes > 0
    return d


def test_encode_image_from_png_matches_open_clip():
    async def body():
        ref = reference("rn-tiny")
        d = await with_model()
        result = await d.request("encode-image", {"images": [{"path": str(IMAGES / "chelsea.png")},
                                                            {"png": base64.b64encode((IMAGES / "astronaut.png").read_bytes()).decode()}],
                                                 "partialResultToken": "p"})
        for got, want in zip(result.images, ref["image_embeddings"][:2]):
            assert cosine(got.embedding, want) > 0.99999
            assert abs(sum(x * x for x in got.embedding) - 1) < 1e-5
            assert not got.cached
        assert [p["index"] for p in d.progress("p")] == [0, 1]
        # The same pixels again: a cache hit, by path or by id.
        again = await d.request("encode-image", {"images": [{"path": str(IMAGES / "chelsea.png")}, {"imageId": result.images[1].imageId}]})
        assert [i.cached for i in again.images] == [True, True]
        assert again.images[1].embedding == result.images[1].embedding
        caches = {c.name: c for c in (await d.request("daemon/status")).caches}
        assert caches["image-embeddings"].hits >= 2
        assert await d.stop() == 0
    run(body())


def test_png_variants_of_one_photo_decode_to_the_same_content_id():
    async def body():
        d = await with_model()
        variants = sorted((IMAGES / "variants").glob("*.png"))
        result = await d.request("encode-image", {"images": [{"path": str(IMAGES / "chelsea.png")}] + [{"path": str(v)} for v in variants]})
        assert all(i.width == result.images[0].width for i in result.images)
        assert await d.stop() == 0
    run(body())


def test_dense_features_match_open_clip():
    async def body():
        ref = reference("vit-tiny")
        d = await with_model("vit-tiny")
        result = await d.request("encode-image", {"images": [{"path": str(IMAGES / "coffee.png")}], "dense": True})
        dense = result.images[0].dense
        assert [dense.gridHeight, dense.gridWidth] == ref["dense_grid"]
        for got, want in zip(dense.features, ref["dense_features"][0]):
            assert cosine(got, want) > 0.9999
        assert cosine(result.images[0].embedding, ref["image_embeddings"][0]) > 0.99999
        assert await d.stop() == 0
    run(body())


def test_classify_with_cifar_template_ensemble_matches_open_clip():
    async def body():
        ref = reference("rn-tiny")
        d = await with_model()
        result = await d.request("classify", {"images": [{"path": str(IMAGES / "chelsea.png")}],
                                             "labels": ref["classifier_classnames"], "templates": "cifar", "perTemplate": True, "topK": 2})
        image = ref["image_embeddings"][0]
        logits = [ref["logit_scale"] * sum(a * b for a, b in zip(image, w)) for w in ref["classifier"]]
        top = max(logits)
        expected = [math.exp(l - top) for l in logits]
        expected = [e / sum(expected) for e in expected]
        got = result.results[0].probs
        assert max(abs(a - b) for a, b in zip(got, expected)) < 1e-4
        assert len(result.results[0].top) == 2 and result.results[0].top[0].prob >= result.results[0].top[1].prob
        assert len(result.results[0].perTemplate) == 18
        assert await d.stop() == 0
    run(body())


def test_dataset_evaluate_streams_batches_and_counts_correctly():
    async def body():
        d = await with_model()
        result = await d.request("dataset/evaluate", {
            "dataset": str(CIFAR / "test_batch.bin"), "labelsFile": str(CIFAR / "batches.meta.txt"),
            "limit": 100, "batchSize": 25, "partialResultToken": "p", "workDoneToken": "w"})
        assert result.count == 100
        assert sum(map(sum, result.confusion)) == 100
        assert abs(result.accuracy - sum(result.confusion[i][i] for i in range(10)) / 100) < 1e-12
        assert [p["processed"] for p in d.progress("p")] == [25, 50, 75, 100]
        assert d.progress("w")[-1]["kind"] == "end"
        # Records are class-interleaved (record k has label k mod 10): 10 per class.
        assert [sum(row) for row in result.confusion] == [10] * 10
        assert await d.stop() == 0
    run(body())


@pytest.mark.parametrize("params, code, needle", [
    ({"images": [{"path": "/nonexistent.png"}], "labels": ["a"]}, -32004, "/nonexistent.png"),
    ({"images": [{"path": str(ROOT / "README.md")}], "labels": ["a"]}, -32004, "README.md"),
    ({"images": [{"png": "bm90IGEgcG5n"}], "labels": ["a"]}, -32004, "params.images[0].png"),
    ({"images": [{"imageId": "img_00000000000000000000000000000000"}], "labels": ["a"]}, -32004, "not in the cache"),
    ({"images": [{"path": "a", "png": "b"}], "labels": ["a"]}, -32602, "params.images[0]"),
    ({"images": [], "labels": ["a"]}, -32602, "params.images"),
    ({"images": [{"path": str(IMAGES / "coins.png")}], "labels": []}, -32602, "params.labels"),
    ({"images": [{"path": str(IMAGES / "coins.png")}], "labels": ["a"], "templates": "nope"}, -32602, "params.templates"),
    ({"images": [{"path": str(IMAGES / "coins.png")}], "labels": ["a"], "model": "other"}, -32001, "other"),
])
def test_bad_input_gets_clear_errors_and_daemon_keeps_serving(params, code, needle):
    async def body():
        d = await with_model()
        with pytest.raises(JsonRpcException) as err:
            await d.request("classify", params)
        assert err.value.code == code and needle in err.value.message
        ok = await d.request("classify", {"images": [{"path": str(IMAGES / "coins.png")}], "labels": ["coin", "cat"]})
        assert abs(sum(ok.results[0].probs) - 1) < 1e-5
        assert await d.stop() == 0
    run(body())


def test_oversized_image_refused_before_decoding():
    async def body():
        d = await with_model("rn-tiny", "--max-image-pixels", "1000")
        with pytest.raises(JsonRpcException) as err:
            await d.request("encode-image", {"images": [{"path": str(IMAGES / "chelsea.png")}]})
        assert err.value.code == -32006 and "1000" in err.value.message
        assert await d.stop() == 0
    run(body())


def test_model_lifecycle_errors():
    async def body():
        d = await Daemon("--memory-budget-mib", "1").start()
        with pytest.raises(JsonRpcException) as err:
            await d.request("encode-image", {"images": [{"path": str(IMAGES / "coins.png")}]})
        assert err.value.code == -32001
        with pytest.raises(JsonRpcException) as err:
            await d.request("models/load", {"kind": "clip", "path": str(FIXTURES / "rn-tiny")})
        assert err.value.code == -32005
        with pytest.raises(JsonRpcException) as err:
            await d.request("models/load", {"kind": "clip", "path": "/no/such/dir"})
        assert err.value.code == -32003
        with pytest.raises(JsonRpcException) as err:
            await d.request("models/load", {"kind": "clip", "path": str(ROOT / "protocol")})
        assert err.value.code == -32003
        with pytest.raises(JsonRpcException) as err:
            await d.request("models/unload", {"id": "nothing"})
        assert err.value.code == -32001
        assert await d.stop() == 0
    run(body())


def test_classify_answered_while_a_long_request_streams():
    async def body():
        d = await with_model()
        # The stream runs until it is cancelled: classify is answered while it runs however long it takes.
        long = asyncio.ensure_future(d.request("debug/stream", {"count": 1_000_000, "intervalMs": 20, "partialResultToken": "s"},
                                               msg_id="long"))
        while not d.progress("s"):
            await asyncio.sleep(0.01)
        result = await d.request("classify", {"images": [{"path": str(IMAGES / "coins.png")}], "labels": ["coin", "cat"]})
        assert len(result.results) == 1 and not long.done()
        d.notify("$/cancelRequest", {"id": "long"})
        with pytest.raises(JsonRpcException) as err:
            await long
        assert err.value.code == -32800
        assert await d.stop() == 0
    run(body())
