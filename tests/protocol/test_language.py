"""Language-model methods through the daemon, against llama.cpp's outputs
(../shared/models/stories260K.reference.json, produced with llama-cpp-python)."""

import asyncio
import json
import os

import pytest
from pygls.exceptions import JsonRpcException

from conftest import ROOT, Daemon, run

SHARED = ROOT.parent / "shared"
STORIES = SHARED / "models" / "stories260K.gguf"
REFERENCE = json.loads((SHARED / "models" / "stories260K.reference.json").read_text())


def cached_model(name, script):
    cache = os.environ.get("VLMD_MODEL_CACHE") or str(ROOT / "models-cache")
    path = os.path.join(cache, name)
    if not os.path.exists(path):
        if os.environ.get("VLMD_REQUIRE_MODELS") == "1":
            pytest.fail(f"{path} is missing: run scripts/{script}")
        pytest.skip(f"{path} is missing (scripts/{script} fetches it)")
    return path


def smollm2_path():
    return cached_model("SmolLM2-135M-Instruct.Q4_1.gguf", "get-smollm2.sh")


async def with_stories():
    d = await Daemon().start()
    info = await d.request("models/load", {"kind": "gguf", "path": str(STORIES), "id": "stories"})
    assert info.kind == "gguf" and info.details.architecture == "llama"
    return d


@pytest.mark.parametrize("run_index", range(len(REFERENCE["runs"])))
def test_greedy_generation_matches_llama_cpp(run_index):
    ref = REFERENCE["runs"][run_index]  # the empty prompt tokenizes to BOS alone, as in llama.cpp

    async def body():
        d = await with_stories()
        result = await d.request("generate", {"prompt": ref["prompt"], "maxTokens": len(ref["greedy_token_ids"]),
                                             "partialResultToken": "p"})
        assert result.promptTokenIds == ref["prompt_token_ids"]
        assert result.tokenIds == ref["greedy_token_ids"]
        assert result.text == ref["greedy_text"]
        streamed = d.progress("p")
        assert [t["id"] for t in streamed] == ref["greedy_token_ids"]
        assert "".join(t["text"] for t in streamed) == result.text
        assert await d.stop() == 0
    run(body())


def test_tokenize_detokenize_round_trip():
    async def body():
        d = await with_stories()
        for ref in REFERENCE["runs"]:
            tokens = await d.request("tokenize", {"text": ref["prompt"]})
            assert tokens.tokens == ref["prompt_token_ids"]
        text = await d.request("detokenize", {"tokens": REFERENCE["runs"][1]["greedy_token_ids"]})
        assert text.text == REFERENCE["runs"][1]["greedy_text"]
        with pytest.raises(JsonRpcException) as err:
            await d.request("detokenize", {"tokens": [1, 99999]})
        assert err.value.code == -32602 and "params.tokens[1]" in err.value.message
        assert await d.stop() == 0
    run(body())


def test_score_agrees_with_generation_logprobs():
    async def body():
        d = await with_stories()
        prompt = "Once upon a time"
        generated = await d.request("generate", {"prompt": prompt, "maxTokens": 8, "logprobs": True})
        scored = await d.request("score", {"context": prompt, "continuations": [generated.text, " purple elephant quantum"]})
        # Two code paths (sampling loop vs batched scoring with a forked KV cache) give the same number.
        assert scored.scores[0].tokens == 8
        assert abs(scored.scores[0].logprob - sum(generated.logprobs)) < 1e-3
        assert scored.scores[0].logprob > scored.scores[1].logprob
        assert await d.stop() == 0
    run(body())


def test_seeded_sampling_is_reproducible():
    async def body():
        d = await with_stories()
        params = {"prompt": "Lily and Tom", "maxTokens": 30, "temperature": 0.9, "topP": 0.9, "seed": 42}
        a = await d.request("generate", params)
        b = await d.request("generate", params)
        c = await d.request("generate", {**params, "seed": 43})
        assert a.tokenIds == b.tokenIds
        assert a.tokenIds != c.tokenIds
        assert await d.stop() == 0
    run(body())


def test_stop_strings_and_bad_params():
    async def body():
        d = await with_stories()
        result = await d.request("generate", {"prompt": "Once upon a time", "maxTokens": 64, "stop": ["Lily"]})
        assert result.stopReason == "stop" and "Lily" not in result.text and result.text.endswith("named ")
        for params, field in [({"prompt": "a", "temperature": -1}, "params.temperature"),
                              ({"prompt": "a", "maxTokens": 0}, "params.maxTokens"),
                              ({}, "prompt"),
                              ({"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, "prompt"),
                              ({"prompt": "a", "chat": True}, "chat template")]:
            with pytest.raises(JsonRpcException) as err:
                await d.request("generate", params)
            assert err.value.code == -32602 and field in err.value.message, err.value.message
        with pytest.raises(JsonRpcException) as err:
            await d.request("generate", {"prompt": "Once " * 2000})
        assert err.value.code == -32008
        assert await d.stop() == 0
    run(body())


def test_bad_gguf_files_are_refused_with_the_reason(tmp_path):
    async def body():
        d = await Daemon().start()
        truncated = tmp_path / "truncated.gguf"
        truncated.write_bytes(STORIES.read_bytes()[:5000])
        junk = tmp_path / "junk.gguf"
        junk.write_bytes(b"GGUF" + b"\xff" * 60)
        for path in (truncated, junk, ROOT / "README.md"):
            with pytest.raises(JsonRpcException) as err:
                await d.request("models/load", {"kind": "gguf", "path": str(path)})
            assert err.value.code == -32003, err.value.message
        assert (await d.request("ping")).pong
        assert await d.stop() == 0
    run(body())


def test_cancel_mid_generation_answers_32800_with_text_so_far():
    path = smollm2_path()

    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "gguf", "path": path, "id": "smol"})
        task = asyncio.ensure_future(d.request("generate", {"prompt": "Write a long story about a dragon.", "chat": True,
                                                            "maxTokens": 1000, "partialResultToken": "p"}, msg_id="gen"))
        while len(d.progress("p")) < 3:
            await asyncio.sleep(0.01)
        d.notify("$/cancelRequest", {"id": "gen"})
        with pytest.raises(JsonRpcException) as err:
            await task
        assert err.value.code == -32800
        reply = next(m for m in d.checker.received if m.get("id") == "gen")
        sent = len([m for m in d.progress("p")])
        assert len(reply["error"]["data"]["tokenIds"]) <= sent + 1  # stopped within one token of the cancel
        assert sent < 1000
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_cancel_during_prefill_answers_32800_before_the_prefill_could_finish():
    # A ~500-token prompt is one prefill batch: the daemon must stop between layers, not after the batch.
    path = smollm2_path()
    prompt = "The quick brown fox jumps over the lazy dog. " * 50

    async def body():
        d = await Daemon().start()
        await d.request("models/load", {"kind": "gguf", "path": path, "id": "smol"})
        loop = asyncio.get_running_loop()
        began = loop.time()
        full = await d.request("generate", {"prompt": prompt, "maxTokens": 1})
        uncancelled = loop.time() - began
        assert full.promptTokens >= 400

        began = loop.time()
        task = asyncio.ensure_future(d.request("generate", {"prompt": prompt, "maxTokens": 1}, msg_id="long"))
        await asyncio.sleep(uncancelled * 0.1)
        d.notify("$/cancelRequest", {"id": "long"})
        with pytest.raises(JsonRpcException) as err:
            await task
        cancelled = loop.time() - began
        assert err.value.code == -32800
        assert cancelled < uncancelled * 0.5, (cancelled, uncancelled)  # relative, within this one run
        assert (await d.request("generate", {"prompt": "Hi", "maxTokens": 1})).generatedTokens == 1
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_smollm2_chat_generation_streams():
    path = smollm2_path()

    async def body():
        d = await Daemon().start()
        info = await d.request("models/load", {"kind": "gguf", "path": path, "id": "smol"})
        assert info.details.tokenizer == "gpt2" and info.details.chatTemplate == "chatML"
        assert info.details.chatTemplateSource == "file"
        result = await d.request("generate", {"messages": [{"role": "user", "content": "Say hello."}], "maxTokens": 16,
                                             "partialResultToken": "p"})
        assert result.generatedTokens == len(d.progress("p")) and result.generatedTokens > 0
        assert await d.stop() == 0
    run(body(), timeout=300)


def test_a_file_without_a_chat_template_says_so_and_refuses_chat():
    """Gemma-3-270M (base) carries no tokenizer.chat_template: models/load says "none", and chat is -32602."""
    path = cached_model("gemma-3-270m-q4_k_m.gguf", "get-gemma3.sh")

    async def body():
        d = await Daemon().start()
        info = await d.request("models/load", {"kind": "gguf", "path": path, "id": "gemma"})
        assert info.details.architecture == "gemma3" and info.details.chatTemplateSource == "none"
        with pytest.raises(JsonRpcException) as err:
            await d.request("generate", {"messages": [{"role": "user", "content": "a"}], "maxTokens": 1})
        assert err.value.code == -32602 and "no usable chat template (none)" in err.value.message
        result = await d.request("generate", {"prompt": "The capital of France is", "maxTokens": 2})
        assert result.generatedTokens > 0
        assert await d.stop() == 0
    run(body(), timeout=300)


TINY = ROOT / "Tests" / "VLMLanguageTests" / "Fixtures"


def test_registry_architectures_load_and_generate_as_llama_cpp():
    """The tiny qwen2/qwen3/Llama 3 files (scripts/fixtures/make_arch_fixtures.py) through the daemon:
    each reports its architecture and generates llama.cpp's greedy tokens."""
    reference = json.loads((TINY / "arch.lm.json").read_text())["models"]

    async def body():
        d = await Daemon().start()
        for name, arch in [("qwen2", "qwen2"), ("qwen3", "qwen3"), ("llama3", "llama")]:
            info = await d.request("models/load", {"kind": "gguf", "path": str(TINY / "models" / f"{name}-tiny.gguf"), "id": name})
            assert info.details.architecture == arch
            run_ = reference[name]["greedy"][0]
            result = await d.request("generate", {"model": name, "prompt": run_["prompt"], "parseSpecial": True,
                                                 "maxTokens": len(run_["greedy_ids"])})
            assert result.promptTokenIds == run_["prompt_ids"] and result.tokenIds == run_["greedy_ids"]
        assert await d.stop() == 0
    run(body())


def test_unknown_architecture_is_a_load_error_naming_it(tmp_path):
    import struct

    def gguf_string(s):
        return struct.pack("<Q", len(s)) + s.encode()
    path = tmp_path / "mamba.gguf"
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + gguf_string("general.architecture") + struct.pack("<I", 8) + gguf_string("mamba")
    path.write_bytes(header + bytes(-len(header) % 32))  # no tensors; data starts at the next 32-byte boundary

    async def body():
        d = await Daemon().start()
        with pytest.raises(JsonRpcException) as err:
            await d.request("models/load", {"kind": "gguf", "path": str(path)})
        assert err.value.code == -32003 and "'mamba'" in err.value.message and "gemma3" in err.value.message
        assert await d.stop() == 0
    run(body())


def test_generation_kv_cache_is_reserved_under_the_memory_budget():
    # SmolLM2-135M: 30 layers, 3 KV heads of 64 dimensions; keys and values in fp16.
    path = smollm2_path()
    def kv_bytes(context): return context * 30 * 3 * 64 * 2 * 2
    budget_mib = int(os.path.getsize(path) / 2**20) + 60  # the weights fit; an 8192-token cache (180 MiB) does not

    async def body():
        d = await Daemon("--memory-budget-mib", str(budget_mib)).start()
        await d.request("models/load", {"kind": "gguf", "path": path, "id": "long", "contextLength": 8192})
        with pytest.raises(JsonRpcException) as err:
            await d.request("generate", {"model": "long", "prompt": "Hi", "maxTokens": 1, "workDoneToken": "w"})
        assert err.value.code == -32005, err.value.message
        assert err.value.data["neededBytes"] == kv_bytes(8192)
        assert err.value.data["availableBytes"] < kv_bytes(8192)
        assert d.progress("w") == []  # refused before any work
        assert (await d.request("daemon/status")).memory.generationBytes == 0

        await d.request("models/unload", {"id": "long"})
        await d.request("models/load", {"kind": "gguf", "path": path, "id": "short", "contextLength": 1024})
        task = asyncio.ensure_future(d.request("generate", {"model": "short", "prompt": "Write a long story.", "maxTokens": 200,
                                                            "partialResultToken": "p"}, msg_id="gen"))
        while not d.progress("p"):
            await asyncio.sleep(0.01)
        assert (await d.request("daemon/status")).memory.generationBytes == kv_bytes(1024)
        d.notify("$/cancelRequest", {"id": "gen"})
        with pytest.raises(JsonRpcException):
            await task
        assert (await d.request("daemon/status")).memory.generationBytes == 0
        assert (await d.request("generate", {"model": "short", "prompt": "Hi", "maxTokens": 2})).generatedTokens == 2
        assert (await d.request("daemon/status")).memory.generationBytes == 0
        assert await d.stop() == 0
    run(body(), timeout=300)
