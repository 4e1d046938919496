"""dataset/evaluate and multi-image encode-image read, decode and preprocess batch i + 1 while the
tower encodes batch i. Staging ahead must lose nothing: the results, their order, the partial results,
the cache flags, errors and cancellation are those of a run that takes one step at a time (a single
batch, or one image per request)."""

import asyncio

import pytest
from pygls.exceptions import JsonRpcException

from conftest import ROOT, Daemon, run

SHARED = ROOT.parent / "shared"
CIFAR = SHARED / "data" / "cifar-10"
IMAGES = SHARED / "data" / "images"
DEMO_CLIP = SHARED / "models" / "cifar-clip-rn64"
RN = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures" / "rn-tiny"


async def with_model(path):
    d = await Daemon().start()
    await d.request("models/load", {"kind": "clip", "path": str(path)})
    return d


def evaluation(**params):
    return {"dataset": str(CIFAR / "test_batch.bin"), "labelsFile": str(CIFAR / "batches.meta.txt"),
            "templates": "cifar", **params}


def test_evaluation_in_staged_batches_equals_one_batch():
    """The trained demo CLIP on 120 test images: in one batch nothing is staged ahead; in batches of 8
    and 7 every batch after the first is read while the one before is encoded."""
    async def body():
        whole = await with_model(DEMO_CLIP)
        one = await whole.request("dataset/evaluate", evaluation(limit=120, batchSize=120))
        for size in (8, 7):
            d = await with_model(DEMO_CLIP)  # a fresh image cache: every batch goes through the tower
            staged = await d.request("dataset/evaluate", evaluation(limit=120, batchSize=size, partialResultToken="p"))
            assert staged.confusion == one.confusion
            assert (staged.accuracy, staged.top5Accuracy, staged.perClassAccuracy) == (one.accuracy, one.top5Accuracy, one.perClassAccuracy)
            partials = d.progress("p")
            assert [p["processed"] for p in partials] == [min(n, 120) for n in range(size, 120 + size, size)]
            assert partials[-1]["correct"] == sum(one.confusion[c][c] for c in range(10))
            assert await d.stop() == 0
        assert one.accuracy > 0.4  # the model means something: chance is 0.1
        assert await whole.stop() == 0
    run(body(), timeout=300)


def test_encode_image_in_staged_batches_equals_image_by_image():
    """Pictures repeat across adjacent batches of 2: a picture staged while the batch before (which
    holds it too) is still being encoded is reported cached, as it is when the requests come one by one."""
    async def body():
        names = ["chelsea.png", "coins.png", "chelsea.png", "astronaut.png", "coins.png", "camera.png", "camera.png"]
        images = [{"path": str(IMAGES / name)} for name in names]
        staged_daemon = await with_model(RN)
        staged = await staged_daemon.request("encode-image", {"images": images, "batchSize": 2, "partialResultToken": "p"})
        single = await with_model(RN)
        one_by_one = [(await single.request("encode-image", {"images": [image]})).images[0] for image in images]
        assert [i.index for i in staged.images] == list(range(len(names)))
        assert [p["index"] for p in staged_daemon.progress("p")] == list(range(len(names)))
        assert [i.cached for i in staged.images] == [i.cached for i in one_by_one] == [False, False, True, False, True, False, True]
        for a, b in zip(staged.images, one_by_one):
            assert (a.imageId, a.width, a.height, a.embedding) == (b.imageId, b.width, b.height, b.embedding)
        assert await staged_daemon.stop() == 0 and await single.stop() == 0
    run(body(), timeout=300)


def test_cancelling_an_evaluation_mid_run_stops_it_and_the_daemon_keeps_serving():
    async def body():
        d = await with_model(DEMO_CLIP)
        task = asyncio.ensure_future(d.request("dataset/evaluate", evaluation(batchSize=32, partialResultToken="p"), msg_id="eval"))
        while len(d.progress("p")) < 2 and not task.done():
            await asyncio.sleep(0.002)
        d.notify("$/cancelRequest", {"id": "eval"})
        with pytest.raises(JsonRpcException) as err:
            await task
        assert err.value.code == -32800
        processed = [p["processed"] for p in d.progress("p")]
        assert processed == list(range(32, 32 * len(processed) + 1, 32))
        assert processed[-1] < 5000  # stopped within a few batches of 10,000 images, not at the end
        assert (await d.request("ping")).pong
        again = await d.request("dataset/evaluate", evaluation(limit=40, batchSize=16))
        assert again.count == 40 and sum(map(sum, again.confusion)) == 40
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_a_corrupt_image_mid_list_ends_the_evaluation_at_its_batch(tmp_path):
    """The corrupt image is in the third batch of 2: it is read while the second batch is encoded, but
    the client sees the first two batches' partial results, then the error naming it; what was encoded
    stays cached; and the daemon goes on serving."""
    async def body():
        corrupt = tmp_path / "corrupt.png"
        corrupt.write_bytes((IMAGES / "coins.png").read_bytes()[:300])  # a real PNG header, then nothing
        entries = [("chelsea.png", "cat"), ("coffee.png", "cup"), ("astronaut.png", "person"), ("coins.png", "cup"),
                   (str(corrupt), "cat"), ("camera.png", "person"), ("logo.png", "cat")]
        listing = tmp_path / "list.txt"
        listing.write_text("".join(f"{IMAGES / image}\t{label}\n" for image, label in entries))
        d = await with_model(RN)
        with pytest.raises(JsonRpcException) as err:
            await d.request("dataset/evaluate", {"dataset": str(listing), "format": "list", "batchSize": 2, "partialResultToken": "p"})
        assert err.value.code == -32004 and str(corrupt) in err.value.message
        assert [p["processed"] for p in d.progress("p")] == [2, 4]
        caches = {c.name: c for c in (await d.request("daemon/status")).caches}
        assert caches["image-embeddings"].entries == 4
        result = await d.request("dataset/evaluate", {"dataset": str(listing), "format": "list", "limit": 4})
        assert result.count == 4
        assert await d.stop() == 0
    run(body(), timeout=300)
