#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python) side of bench/lm.sh: same prompt text, token counts and threads as
`vlmbench lm`. Prints a RESULT line in the same format.

usage: lm_reference.py MODEL [--threads N] [--prompt-tokens 512] [--gen-tokens 128] [--repeats 3]
"""
import argparse
import resource
import time

import numpy as np
from llama_cpp import Llama, llama_cpp as C

PARAGRAPH = ("The history of computing is a story of people who wanted to calculate faster and more reliably. "
             "From the abacus to mechanical calculators, from punched cards to transistors, each step made machines "
             "smaller, cheaper and more capable, and each step changed what people expected computers to do. ")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    llm = Llama(model_path=a.model, n_ctx=a.prompt_tokens + a.gen_tokens + 8, n_batch=512, n_ubatch=512,
                n_threads=a.threads, n_threads_batch=a.threads, verbose=False)
    ids = llm.tokenize((PARAGRAPH * (a.prompt_tokens // 16 + 2)).encode(), add_bos=True)[: a.prompt_tokens]
    n_vocab = llm.n_vocab()
    # Wall-clock rates, and rates per CPU-second of the process (all threads, as vlmbench reports them).
    prefill, decode, prefill_cpu, decode_cpu = [], [], [], []
    for _ in range(a.repeats):
        llm.reset()
        C.llama_memory_clear(C.llama_get_memory(llm._ctx.ctx), True)
        t, cpu = time.perf_counter(), time.process_time()
        llm.eval(ids)
        prefill.append(len(ids) / (time.perf_counter() - t))
        prefill_cpu.append(len(ids) / (time.process_time() - cpu))
        t, cpu = time.perf_counter(), time.process_time()
        for _ in range(a.gen_tokens):
            logits = np.ctypeslib.as_array(C.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,))
            llm.eval([int(np.argmax(logits))])
        decode.append(a.gen_tokens / (time.perf_counter() - t))
        decode_cpu.append(a.gen_tokens / (time.process_time() - cpu))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"llama.cpp    threads {a.threads}  prompt {len(ids)}  gen {a.gen_tokens}")
    print(f"  prefill {max(prefill):.1f} tok/s (best of {a.repeats})   decode {max(decode):.1f} tok/s   peak RSS {rss:.0f} MB")
    print(f"RESULT prefill_tps={max(prefill):.2f} decode_tps={max(decode):.2f} peak_rss_mb={rss:.1f} "
          f"prefill_cpu_tps={max(prefill_cpu):.2f} decode_cpu_tps={max(decode_cpu):.2f}")


if __name__ == "__main__":
    main()
