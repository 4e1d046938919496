"""encode-text end to end: CLIP text embeddings against open_clip's (the fixtures of
scripts/fixtures/make_clip_fixtures.py: plain texts, and the 18-template CIFAR ensembles of
open_clip.build_zero_shot_classifier), streamed per batch, through the text cache, and from the CLI."""

import json
import math
import os
import subprocess

import pytest
from pygls.exceptions import JsonRpcException

from conftest import ROOT, Daemon, run, vlmd_path

FIXTURES = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures"
VLM = os.path.join(os.path.dirname(vlmd_path()), "vlm")


def reference(name="rn-tiny"):
    return json.loads((FIXTURES / name / "reference.json").read_text())


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


async def with_model(name="rn-tiny"):
    d = await Daemon().start()
    await d.request("models/load", {"kind": "clip", "path": str(FIXTURES / name)})
    return d


@pytest.mark.parametrize("name", ["rn-tiny", "vit-tiny"])
def test_texts_match_open_clip_and_stream_per_batch(name):
    async def body():
        ref = reference(name)
        d = await with_model(name)
        result = await d.request("encode-text", {"texts": ref["texts"], "batchSize": 3, "partialResultToken": "p"})
        assert [t.text for t in result.texts] == ref["texts"]
        for got, want in zip(result.texts, ref["text_embeddings"]):
            assert cosine(got.embedding, want) > 0.99999
            assert abs(sum(x * x for x in got.embedding) - 1) < 1e-5
        assert [p["index"] for p in d.progress("p")] == list(range(len(ref["texts"])))
        assert not hasattr(result, "templates")
        assert await d.stop() == 0
    run(body())


def test_template_ensembles_match_open_clip_zero_shot_weights_and_use_the_text_cache():
    async def body():
        ref = reference()
        d = await with_model()
        params = {"texts": ref["classifier_classnames"], "templates": "cifar"}
        result = await d.request("encode-text", params)
        assert len(result.templates) == 18
        for got, want in zip(result.texts, ref["classifier"]):
            assert cosine(got.embedding, want) > 0.99999
        before = {c.name: c.hits for c in (await d.request("daemon/status")).caches}["text-embeddings"]
        again = await d.request("encode-text", params)
        after = {c.name: c.hits for c in (await d.request("daemon/status")).caches}["text-embeddings"]
        assert after - before == 3 * 18
        assert [t.embedding for t in again.texts] == [t.embedding for t in result.texts]
        # classify's class weights are the same ensembles: a template given alone embeds like classify does.
        single = await d.request("encode-text", {"texts": ["cat"], "templates": ["a photo of a {}."]})
        plain = await d.request("encode-text", {"texts": ["a photo of a cat."]})
        assert cosine(single.texts[0].embedding, plain.texts[0].embedding) > 0.999999
        assert await d.stop() == 0
    run(body())


@pytest.mark.parametrize("params", [
    {"texts": []},
    {"texts": ["cat"], "templates": "no placeholder"},
    {"texts": ["cat"], "templates": []},
    {"texts": ["cat"], "batchSize": 0},
    {"texts": "cat"},
])
def test_bad_parameters_are_invalid_params(params):
    async def body():
        d = await with_model()
        with pytest.raises(JsonRpcException) as err:
            await d.request("encode-text", params)
        assert err.value.code == -32602, err.value.message
        assert (await d.request("ping")).pong  # the daemon carries on
        assert await d.stop() == 0
    run(body())


def test_cli_prints_json_lines_in_order():
    ref = reference()
    out = subprocess.run([VLM, "encode-text", "--clip", str(FIXTURES / "rn-tiny"), "--json",
                          "--batch-size", "1", *ref["texts"][:3]], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [line["text"] for line in lines] == ref["texts"][:3]
    for line, want in zip(lines, ref["text_embeddings"]):
        assert cosine(line["embedding"], want) > 0.99999
