"""Errors as the spec words them (protocol/README.md: Errors): load errors name the file, dataset
files that cannot be read are -32007, list datasets are checked whole before any work."""

import random

import pytest
from pygls.exceptions import JsonRpcException

from conftest import ROOT, Daemon, run

SHARED = ROOT.parent / "shared"
CIFAR = SHARED / "data" / "cifar-10"
IMAGES = SHARED / "data" / "images"
RN = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures" / "rn-tiny"
STORIES = (SHARED / "models" / "stories260K.gguf").read_bytes()


async def refused(d, method, params):
    with pytest.raises(JsonRpcException) as err:
        await d.request(method, params)
    return err.value


def damaged_ggufs(tmp_path, count=40):
    """Truncations and byte flips of a real GGUF, at offsets spread over its header and tensor table."""
    rng = random.Random(1)
    for n in range(count):
        data = bytearray(STORIES)
        if n % 2 == 0:
            data = data[:rng.randrange(0, 4096 if n % 4 == 0 else len(data))]
        else:
            for _ in range(4):
                data[rng.randrange(0, 8192)] = rng.randrange(256)
        path = tmp_path / f"damaged-{n}.gguf"
        path.write_bytes(bytes(data))
        yield path


def test_every_gguf_load_error_names_the_file(tmp_path):
    async def body():
        d = await Daemon().start()
        failures = 0
        for path in damaged_ggufs(tmp_path):
            try:
                await d.request("models/load", {"kind": "gguf", "path": str(path)})
                await d.request("models/unload", {"id": path.name})
            except JsonRpcException as err:
                failures += 1
                assert err.code == -32003, err.message
                assert str(path) in err.message, err.message
        assert failures >= 20
        assert (await d.request("ping")).pong
        assert await d.stop() == 0
    run(body(), timeout=300)


@pytest.mark.parametrize("method, params", [
    ("dataset/evaluate", {"dataset": "/no/such/test_batch.bin", "labelsFile": str(CIFAR / "batches.meta.txt")}),
    ("dataset/evaluate", {"dataset": str(CIFAR / "test_batch.bin"), "labelsFile": "/no/such/labels.txt"}),
    ("optimise-prompt", {"method": "bank", "dataset": {"path": "/no/such/train.bin", "labelsFile": str(CIFAR / "batches.meta.txt")}}),
])
def test_a_dataset_file_that_cannot_be_read_is_32007(method, params):
    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "clip", "path": str(RN)})
        err = await refused(d, method, params)
        assert err.code == -32007 and "/no/such/" in err.message
        assert await d.stop() == 0
    run(body(), timeout=120)


def test_list_dataset_with_a_missing_image_is_refused_before_any_work(tmp_path):
    lines = [f"{IMAGES / name}\t{label}" for name, label in
             [("chelsea.png", "cat"), ("coffee.png", "cup"), ("astronaut.png", "person")] * 4]
    lines.insert(7, f"{tmp_path / 'gone.png'}\tcup")
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(lines) + "\n")

    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "clip", "path": str(RN)})
        # One shot per class: the split would seldom draw line 8, so only an up-front check finds it.
        err = await refused(d, "optimise-prompt", {"method": "bank", "dataset": {"path": str(listing), "format": "list"},
                                                   "shots": 1, "validationPerClass": 1, "partialResultToken": "p"})
        assert err.code == -32007 and "line 8" in err.message and "gone.png" in err.message
        assert not d.progress("p")
        assert await d.stop() == 0
    run(body(), timeout=120)


def test_a_model_that_yields_nan_answers_with_nulls_not_an_internal_error(tmp_path):
    """preprocess mean 1e30 makes every activation overflow: the numbers go out as null (README: Numbers)."""
    import json
    import shutil
    import subprocess
    from conftest import INIT, frame, read_messages, vlmd_path
    model = tmp_path / "nan-clip"
    shutil.copytree(RN, model)
    config = json.loads((model / "open_clip_config.json").read_text())
    config["preprocess_cfg"]["mean"] = [1e30, 1e30, 1e30]
    (model / "open_clip_config.json").write_text(json.dumps(config))

    proc = subprocess.Popen([vlmd_path(), "--log-level", "off"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def call(msg_id, method, params):
        """One request at a time: each reply is read before the next request is sent."""
        proc.stdin.write(frame(json.dumps({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}).encode()))
        proc.stdin.flush()
        while True:
            header = b""
            while not header.endswith(b"\r\n\r\n"):
                header += proc.stdout.read(1)
            message = json.loads(proc.stdout.read(int(header.split(b":")[1])))
            if message.get("id") == msg_id:
                return message

    proc.stdin.write(INIT)
    image = {"path": str(IMAGES / "chelsea.png")}
    loaded = call(1, "models/load", {"kind": "clip", "path": str(model)})
    encoded = call(2, "encode-image", {"images": [image]})
    classified = call(3, "classify", {"images": [image], "labels": ["cat", "dog"]})
    assert call(4, "ping", {})["result"] == {"pong": True}
    proc.stdin.close()
    proc.wait(timeout=30)
    for reply in (loaded, encoded, classified):
        assert reply.get("error", {}).get("code") != -32603, reply
    if "result" in loaded:  # loaded: the NaNs arrive as nulls, which the schema allows for every result number
        from conftest import SCHEMA, validator
        assert None in encoded["result"]["images"][0]["embedding"]
        assert "result" in classified
        validator(SCHEMA["methods"]["encode-image"]["result"]).validate(encoded["result"])
        validator(SCHEMA["methods"]["classify"]["result"]).validate(classified["result"])
    else:
        assert loaded["error"]["code"] == -32003


def test_a_loaded_model_file_truncated_on_disk_does_not_crash_the_daemon(tmp_path):
    """Weights are copied at load, not mapped: truncating the file in place (a re-download over the
    loaded model) used to kill the daemon with SIGBUS on the next request."""
    async def body():
        path = tmp_path / "stories.gguf"
        path.write_bytes(STORIES)
        d = await Daemon().start()
        await d.request("models/load", {"kind": "gguf", "path": str(path), "id": "s"})
        with open(path, "r+b") as f:
            f.truncate(4096)
        for _ in range(2):
            result = await d.request("generate", {"model": "s", "prompt": "Once upon a time", "maxTokens": 16})
            assert result.text is not None
            assert (await d.request("tokenize", {"model": "s", "text": "hello"})).tokens
        assert (await d.request("ping")).pong
        assert await d.stop() == 0
    run(body(), timeout=120)


def test_concurrent_loads_reserve_the_budget_before_reading_their_files():
    """Two loads that each fit but not together: the second is refused before it reads anything
    (it used to load in full, doubling peak memory, and be refused afterwards)."""
    import asyncio
    rn64 = SHARED / "models" / "cifar-clip-rn64"
    size_mib = (rn64 / "open_clip_model.safetensors").stat().st_size / 2**20

    async def body():
        d = await Daemon("--memory-budget-mib", str(int(size_mib * 1.5) + 1)).start()
        outcomes = await asyncio.gather(
            *(d.request("models/load", {"kind": "clip", "path": str(rn64), "id": tag, "workDoneToken": tag}) for tag in "ab"),
            return_exceptions=True)
        refused = [(tag, o) for tag, o in zip("ab", outcomes) if isinstance(o, JsonRpcException)]
        assert len(refused) == 1 and refused[0][1].code == -32005
        assert d.progress(refused[0][0]) == []  # refused before loading began
        status = await d.request("daemon/status")
        assert status.memory.modelBytes <= status.memory.budgetBytes
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_unload_during_generation_cancels_it_and_frees_the_model_only_then():
    """models/unload used to answer at once while the generation kept the model (and its KV cache)
    alive, and let the same id load again beside it."""
    import asyncio

    async def body():
        d = await Daemon().start()
        path = str(SHARED / "models" / "stories260K.gguf")
        await d.request("models/load", {"kind": "gguf", "path": path, "id": "s", "contextLength": 512})
        generation = asyncio.ensure_future(d.request("generate", {"model": "s", "prompt": "Once upon a time",
                                                                  "maxTokens": 500, "partialResultToken": "g"}))
        while not d.progress("g"):  # generating
            await asyncio.sleep(0.01)
        unloaded = await d.request("models/unload", {"id": "s"})
        assert generation.done()  # answered before the unload was
        with pytest.raises(JsonRpcException) as err:
            generation.result()
        assert err.value.code == -32800
        assert unloaded.freedBytes > 0
        assert await d.request("models/list") == []
        assert await d.stop() == 0
    run(body(), timeout=120)
