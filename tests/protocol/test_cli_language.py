"""`vlm generate` as a user runs it on the real Gemma-3-270M Q4_K_M: greedy ids equal llama.cpp's on every
prompt of the committed parity set (Tests/VLMLanguageTests/Fixtures/gemma3.lm.json, written by
scripts/fixtures/make_gemma3_fixtures.py with llama-cpp-python), and the final JSON line keeps tokenIds and
promptTokenIds."""

import json
import os
import subprocess

import pytest

from conftest import ROOT, vlmd_path
from test_language import cached_model

VLM = os.path.join(os.path.dirname(vlmd_path()), "vlm")
PARITY = json.loads((ROOT / "Tests" / "VLMLanguageTests" / "Fixtures" / "gemma3.lm.json").read_text())


@pytest.mark.parametrize("case", PARITY["greedy"], ids=lambda case: case["prompt"][:24])
def test_vlm_generate_gives_llama_cpp_greedy_ids_on_gemma3(case):
    model = cached_model("gemma-3-270m-q4_k_m.gguf", "get-gemma3.sh")
    # The reference tokenized with special=True, so chat markers in a prompt are tokens: --parse-special.
    run = subprocess.run([VLM, "generate", "--private", "--lm", model, "--max-tokens", str(PARITY["max_tokens"]),
                          "--temperature", "0", "--parse-special", "--json", case["prompt"]],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    final = json.loads(run.stdout.strip().splitlines()[-1])
    assert final["promptTokenIds"] == case["prompt_ids"]
    assert final["tokenIds"] == case["greedy_ids"]
