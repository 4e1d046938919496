"""encode-image and classify stream one result per image as each batch is done, and a cancelled
request returns what it streamed; through the daemon (pygls) and through `vlm` at a terminal."""

import asyncio
import math
import struct
import zlib

import pytest
from pygls.exceptions import JsonRpcException

from conftest import ROOT, Daemon, run
from test_cli_terminal import PROMPTLY, run_under_terminal

RN = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures" / "rn-tiny"
IMAGES = ROOT.parent / "shared" / "data" / "images"
PATTERN = bytes(range(256)) * 64


def write_png(path, seed, size=512):
    """An RGB PNG whose pixels differ for every seed (distinct content ids, so no cache hits), big
    enough that reading and resizing it takes real time."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    rows = b"".join(b"\x00" + PATTERN[(y * 7 + seed * 13) % 256:][:size * 3] for y in range(size))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def many_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many")
    return [write_png(folder / f"image-{seed:02d}.png", seed) for seed in range(48)]


async def with_model():
    d = await Daemon().start()
    await d.request("models/load", {"kind": "clip", "path": str(RN)})
    return d


@pytest.mark.parametrize("method, extra, key", [
    ("encode-image", {}, "images"),
    ("classify", {"labels": ["stripes", "noise", "a cat"]}, "results"),
])
def test_cancel_after_the_first_partial_returns_every_streamed_image(many_images, method, extra, key):
    async def body():
        d = await with_model()
        params = {"images": [{"path": str(p)} for p in many_images], "batchSize": 2, "partialResultToken": "p", **extra}
        task = asyncio.ensure_future(d.request(method, params, msg_id="many"))
        while not d.progress("p") and not task.done():
            await asyncio.sleep(0.002)
        d.notify("$/cancelRequest", {"id": "many"})
        with pytest.raises(JsonRpcException) as err:
            await task
        assert err.value.code == -32800
        reply = next(m for m in d.checker.received if m.get("id") == "many")
        sofar = reply["error"]["data"][key]
        streamed = d.progress("p")
        assert 1 <= len(sofar) < len(many_images)
        assert sofar == streamed                                   # the reply holds exactly what was streamed
        assert [item["index"] for item in sofar] == list(range(len(sofar)))
        caches = {c.name: c for c in (await d.request("daemon/status")).caches}
        assert caches["image-embeddings"].entries == len(sofar)   # and everything streamed was kept
        assert await d.stop() == 0
    run(body())


def test_batch_size_does_not_change_results():
    async def body():
        d = await with_model()
        images = [{"path": str(IMAGES / name)} for name in ("chelsea.png", "coins.png", "astronaut.png")]
        one = await d.request("encode-image", {"images": images, "batchSize": 1, "dense": True})
        d2 = await with_model()  # a fresh cache, so both are computed
        two = await d2.request("encode-image", {"images": images, "batchSize": 2, "dense": True, "partialResultToken": "p"})
        assert [p["index"] for p in d2.progress("p")] == [0, 1, 2]
        for a, b in zip(one.images, two.images):
            assert a.imageId == b.imageId and not a.cached and not b.cached
            assert max(abs(x - y) for x, y in zip(a.embedding, b.embedding)) < 1e-5
            assert max(abs(x - y) for fa, fb in zip(a.dense.features, b.dense.features) for x, y in zip(fa, fb)) < 1e-4
        again = await d2.request("encode-image", {"images": images + [{"imageId": two.images[0].imageId}], "batchSize": 3})
        assert [i.cached for i in again.images] == [True] * 4
        assert await d.stop() == 0 and await d2.stop() == 0
    run(body())


@pytest.mark.parametrize("size", [0, 257, "8"])
def test_batch_size_out_of_range_is_refused(size):
    async def body():
        d = await with_model()
        with pytest.raises(JsonRpcException) as err:
            await d.request("encode-image", {"images": [{"path": str(IMAGES / "coins.png")}], "batchSize": size})
        assert err.value.code == -32602 and "batchSize" in err.value.message
        assert await d.stop() == 0
    run(body())


def test_an_unreadable_image_ends_the_stream_at_its_place(tmp_path):
    async def body():
        d = await with_model()
        images = [{"path": str(IMAGES / "coins.png")}, {"path": str(IMAGES / "camera.png")}, {"path": "/nonexistent.png"},
                  {"path": str(IMAGES / "chelsea.png")}]
        with pytest.raises(JsonRpcException) as err:
            await d.request("classify", {"images": images, "labels": ["coin", "cat"], "batchSize": 1, "partialResultToken": "p"})
        assert err.value.code == -32004 and "/nonexistent.png" in err.value.message
        assert [p["index"] for p in d.progress("p")] == [0, 1]
        assert await d.stop() == 0
    run(body())


def test_vlm_classify_prints_each_image_as_it_is_done_and_ctrl_c_keeps_them(many_images):
    def first_result(output):
        return any(".png:" in line for line in output.decode(errors="replace").splitlines())
    run = run_under_terminal(["classify", "--clip", str(RN), "--labels", "stripes,noise,cat", "--batch-size", "2",
                              *map(str, many_images)], interrupt_when=first_result)
    assert run.code == 130, run.text
    assert run.seconds_after_interrupt < PROMPTLY
    results = [line for line in run.screen if ".png:" in line]
    assert 1 <= len(results) < len(many_images)
    for line in results:
        probs = [float(p.rstrip("%")) for p in line.split()[2::2]]
        assert len(probs) == 3 and math.isclose(sum(probs), 100, abs_tol=0.5), line
