"""optimise-prompt end to end: CIFAR-10 few-shot splits from ../shared, the tiny CLIP fixture."""

import asyncio

import pytest
from pygls.exceptions import JsonRpcException

from conftest import ROOT, Daemon, run

SHARED = ROOT.parent / "shared"
CIFAR = SHARED / "data" / "cifar-10"
RN = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures" / "rn-tiny"
DATASET = {"path": str(CIFAR / "train_5000.bin"), "labelsFile": str(CIFAR / "batches.meta.txt")}
CLASSES = (CIFAR / "batches.meta.txt").read_text().split()


async def with_clip(tmp_path):
    d = await Daemon("--prompts-dir", str(tmp_path)).start()
    await d.request("models/load", {"kind": "clip", "path": str(RN)})
    return d


def test_coop_streams_steps_lowers_loss_and_saves_a_prompt_classify_can_use(tmp_path):
    async def body():
        d = await with_clip(tmp_path)
        result = await d.request("optimise-prompt", {
            "method": "coop", "dataset": {**DATASET, "test": str(CIFAR / "test_batch.bin"), "testLimit": 100},
            "shots": 4, "steps": 30, "optimiser": "adam", "learningRate": 0.01, "seed": 7, "saveAs": "tiny-coop",
            "partialResultToken": "p", "workDoneToken": "w"})
        steps = d.progress("p")
        assert [s["step"] for s in steps] == list(range(1, len(steps) + 1)) and len(steps) == result.stepsRun
        assert result.finalTrainingLoss < result.initialTrainingLoss
        assert result.trainImages == 40 and result.validationImages == 40 and result.testImages == 100
        assert [len(g) for g in result.nearestTokens] == [4]  # one shared context; "a photo of a" is four tokens
        assert result.savedTo and (tmp_path / "tiny-coop.safetensors").exists()
        assert d.progress("w")[-1]["kind"] == "end"
        classified = await d.request("classify", {"images": [{"path": str(SHARED / "data/images/chelsea.png")}],
                                                  "labels": CLASSES, "learnedPrompt": "tiny-coop"})
        assert abs(sum(classified.results[0].probs) - 1) < 1e-4
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_runs_are_reproducible_with_a_seed(tmp_path):
    async def body():
        d = await with_clip(tmp_path)
        params = {"method": "pez", "dataset": DATASET, "shots": 2, "steps": 5, "seed": 3}
        a = await d.request("optimise-prompt", params)
        b = await d.request("optimise-prompt", params)
        assert a.prompt == b.prompt and a.finalTrainingLoss == b.finalTrainingLoss
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_bank_selection_picks_templates_from_the_bank(tmp_path):
    async def body():
        d = await with_clip(tmp_path)
        result = await d.request("optimise-prompt", {"method": "bank", "dataset": DATASET, "shots": 2, "bank": "cifar"})
        assert result.templates and all("{}" in t for t in result.templates)
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_cancelled_run_reports_best_so_far(tmp_path):
    async def body():
        d = await with_clip(tmp_path)
        task = asyncio.ensure_future(d.request("optimise-prompt", {"method": "coop", "dataset": DATASET, "shots": 2,
                                                                  "steps": 100000, "partialResultToken": "p"}, msg_id="opt"))
        while len(d.progress("p")) < 3:
            await asyncio.sleep(0.01)
        d.notify("$/cancelRequest", {"id": "opt"})
        with pytest.raises(JsonRpcException) as err:
            await task
        assert err.value.code == -32800
        reply = next(m for m in d.checker.received if m.get("id") == "opt")
        assert reply["error"]["data"]["prompt"] and reply["error"]["data"]["stepsRun"] < 100000
        assert await d.stop() == 0
    run(body(), timeout=300)


@pytest.mark.parametrize("params, code, needle", [
    ({"method": "coop", "steps": 0}, -32602, "params.steps"),
    ({"method": "sgd-magic"}, -32602, "params.method"),
    ({"method": "coop", "shots": 600}, -32602, "600 shots"),
    ({"method": "lm"}, -32001, "gguf"),
    ({"method": "coop", "dataset": {"path": str(CIFAR / "train_5000.bin"), "labels": ["a", "b"]}}, -32007, "label"),
    ({"method": "coop", "dataset": {"path": str(ROOT / "README.md"), "labels": ["a"]}}, -32007, "README.md"),
    ({"method": "coop", "saveAs": "../escape"}, -32602, "params.saveAs"),
])
def test_bad_input_is_refused_before_work(tmp_path, params, code, needle):
    async def body():
        d = await with_clip(tmp_path)
        with pytest.raises(JsonRpcException) as err:
            await d.request("optimise-prompt", {"dataset": DATASET, **params})
        assert err.value.code == code and needle in err.value.message, err.value.message
        assert await d.stop() == 0
    run(body(), timeout=300)


def image_list(tmp_path):
    images = SHARED / "data" / "images"
    lines = [f"{images / 'chelsea.png'} cat"] + [f"{p} cat" for p in sorted((images / "variants").glob("*.png"))]
    lines += [f"{images / name} thing" for name in ("astronaut.png", "coffee.png", "motorcycle_left.png", "camera.png", "coins.png")]
    path = tmp_path / "list.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_labelled_image_list_dataset(tmp_path):
    async def body():
        d = await with_clip(tmp_path)
        result = await d.request("optimise-prompt", {"method": "coop", "dataset": {"format": "list", "path": str(image_list(tmp_path))},
                                                     "shots": 2, "validationPerClass": 2, "steps": 3})
        assert result.trainImages == 4 and result.validationImages == 4
        with pytest.raises(JsonRpcException) as err:
            await d.request("optimise-prompt", {"method": "coop", "dataset": {"format": "list", "path": str(image_list(tmp_path))},
                                                "shots": 5, "validationPerClass": 1})
        assert err.value.code == -32602 and "thing" in err.value.message  # names the class that is too small
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_image_list_respects_the_pixel_budget(tmp_path):
    async def body():
        d = await Daemon("--prompts-dir", str(tmp_path), "--max-image-pixels", "1000").start()
        await d.request("models/load", {"kind": "clip", "path": str(RN)})
        with pytest.raises(JsonRpcException) as err:
            await d.request("optimise-prompt", {"method": "coop", "dataset": {"format": "list", "path": str(image_list(tmp_path))},
                                                "shots": 1, "validationPerClass": 1, "steps": 1})
        assert err.value.code == -32006
        assert await d.stop() == 0
    run(body(), timeout=300)
