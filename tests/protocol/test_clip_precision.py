"""`precision: "bf16"` image encoding end to end: offered in `initialize` exactly when the CPU has the
instructions (read from /proc/cpuinfo here, independently of the daemon's cpuid check), close to the
fp32 embedding where offered, cached apart from it, and a clear -32602 where not offered."""

import json
import math
import pathlib

import pytest
from pygls.exceptions import JsonRpcException

from conftest import ROOT, Daemon, run

FIXTURES = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures"
IMAGES = ROOT.parent / "shared" / "data" / "images"
CIFAR = ROOT.parent / "shared" / "data" / "cifar-10"


def cpu_has_bf16() -> bool:
    """AVX-512 BF16 and the AVX-512 subsets its kernels use, as the kernel reports them."""
    flags = set()
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return {"avx512_bf16", "avx512f", "avx512bw", "avx512vl"} <= flags


BF16 = cpu_has_bf16()


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


async def with_model(name):
    d = await Daemon().start()
    await d.request("models/load", {"kind": "clip", "path": str(FIXTURES / name)})
    return d


def test_without_bf16_only_fp32_is_offered_and_bf16_is_invalid_params(monkeypatch):
    """VLMD_NO_BF16 makes the daemon behave as on a CPU without the instructions, so this path runs here too."""
    monkeypatch.setenv("VLMD_NO_BF16", "1")

    async def body():
        d = await with_model("rn-tiny")
        assert d.init_result.capabilities.experimental.imagePrecisions == ["fp32"]
        for method, params in [("encode-image", {"images": [{"path": str(IMAGES / "chelsea.png")}]}),
                               ("classify", {"images": [{"path": str(IMAGES / "chelsea.png")}], "labels": ["cat", "dog"]}),
                               ("dataset/evaluate", {"dataset": str(CIFAR / "test_batch.bin"),
                                                     "labelsFile": str(CIFAR / "batches.meta.txt"), "limit": 4})]:
            with pytest.raises(JsonRpcException) as err:
                await d.request(method, {**params, "precision": "bf16"})
            assert err.value.code == -32602 and "AVX-512 BF16" in err.value.message
        status = await d.request("daemon/status")
        assert {c.name: c for c in status.caches}["image-embeddings"].misses == 0, "nothing was encoded"
        ok = await d.request("encode-image", {"images": [{"path": str(IMAGES / "chelsea.png")}]})
        assert len(ok.images) == 1
        assert await d.stop() == 0
    run(body())


def test_initialize_offers_bf16_exactly_when_the_cpu_has_it():
    async def body():
        d = await Daemon().start()
        offered = d.init_result.capabilities.experimental.imagePrecisions
        assert offered == (["fp32", "bf16"] if BF16 else ["fp32"])
        assert await d.stop() == 0
    run(body())


@pytest.mark.skipif(not BF16, reason="needs AVX-512 BF16")
@pytest.mark.parametrize("name", ["rn-tiny", "vit-tiny"])
def test_bf16_embedding_is_close_to_fp32_and_cached_apart(name):
    async def body():
        d = await with_model(name)
        images = [{"path": str(IMAGES / "chelsea.png")}, {"path": str(IMAGES / "coffee.png")}]
        fp32 = await d.request("encode-image", {"images": images})
        bf16 = await d.request("encode-image", {"images": images, "precision": "bf16", "dense": True})
        for exact, reduced in zip(fp32.images, bf16.images):
            assert not reduced.cached, "an fp32 entry must not answer a bf16 request"
            assert reduced.imageId == exact.imageId
            assert 0.999 < cosine(exact.embedding, reduced.embedding) < 1 - 1e-9
            assert reduced.dense is not None
        again = await d.request("encode-image", {"images": [{"imageId": bf16.images[0].imageId}], "precision": "bf16"})
        assert again.images[0].cached and again.images[0].embedding == bf16.images[0].embedding
        fp32_again = await d.request("encode-image", {"images": [{"imageId": fp32.images[0].imageId}]})
        assert fp32_again.images[0].embedding == fp32.images[0].embedding
        classified = await d.request("classify", {"images": images[:1], "labels": ["cat", "coffee"], "precision": "bf16"})
        assert abs(sum(classified.results[0].probs) - 1) < 1e-5
        evaluated = await d.request("dataset/evaluate", {"dataset": str(CIFAR / "test_batch.bin"),
                                                         "labelsFile": str(CIFAR / "batches.meta.txt"), "limit": 20, "precision": "bf16"})
        assert evaluated.count == 20
        assert await d.stop() == 0
    run(body())


@pytest.mark.parametrize("method, params", [
    ("encode-image", {"images": [{"path": str(IMAGES / "chelsea.png")}]}),
    ("classify", {"images": [{"path": str(IMAGES / "chelsea.png")}], "labels": ["cat", "dog"]}),
])
def test_unknown_precision_and_bf16_where_not_offered_are_invalid_params(method, params):
    async def body():
        d = await with_model("rn-tiny")
        with pytest.raises(JsonRpcException) as err:
            await d.request(method, {**params, "precision": "fp16"})
        assert err.value.code == -32602 and "params.precision" in err.value.message
        if not BF16:
            with pytest.raises(JsonRpcException) as err:
                await d.request(method, {**params, "precision": "bf16"})
            assert err.value.code == -32602 and "AVX-512 BF16" in err.value.message
        ok = await d.request(method, {**params, "precision": "fp32"})
        assert ok is not None
        assert await d.stop() == 0
    run(body())


def test_cli_encode_image_precision():
    from test_cli import vlm
    image = str(IMAGES / "camera.png")
    fp32 = vlm("encode-image", "--clip", str(FIXTURES / "rn-tiny"), "--json", image)
    assert fp32.returncode == 0, fp32.stderr
    bf16 = vlm("encode-image", "--clip", str(FIXTURES / "rn-tiny"), "--json", "--precision", "bf16", image)
    if BF16:
        assert bf16.returncode == 0, bf16.stderr
        exact, reduced = json.loads(fp32.stdout)["embedding"], json.loads(bf16.stdout)["embedding"]
        assert 0.999 < cosine(exact, reduced) < 1 - 1e-9
    else:
        assert bf16.returncode == 1 and "AVX-512 BF16" in bf16.stderr
    assert vlm("encode-image", "--clip", str(FIXTURES / "rn-tiny"), "--precision", "fp16", image).returncode == 2
