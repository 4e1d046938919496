"""llama.cpp's side of bench/projectors.sh: the bench mmproj files, and mtmd's encode of an image through one.

  projectors_reference.py build DIR                      writes DIR/<type>.gguf for every type below (+ a qwen LM)
  projectors_reference.py time DIR TYPE IMAGE [REPEATS]  one line: llama.cpp's image encode through DIR/<type>.gguf

The towers (random weights, F16 matrices) are the sizes of BENCHMARKS.md's projector rows: LLaVA-1.5 "mlp" a
ViT-B/16 at 224 px (196 tokens); idefics3 SmolVLM-256M's SigLIP (512 px views in 16 px patches, width 768, 12
blocks, pixel shuffle 4: 64 tokens a view); gemma3 the same tower on one 512 px square pooled 2x2 to 256
tokens; qwen2vl / qwen25vl width 640, 8 blocks, at most 256 tokens (1024 patches of 14 px merged 2x2). Each
projects to the width of the small LM it is opened beside (the projection is a small share of the work).

The figure is mtmd_tokenize's preprocessing (timed once: libmtmd in llama-cpp-python cannot tokenize a second
time on a gemma3 context) plus the best of REPEATS mtmd_encode_chunk passes over every image chunk, after a
warm-up, on 2 threads, flash attention off: the image's tokens from its pixels, what `vlmbench projector`
times on the Swift side (MultimodalProjector.imageTokens).
"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "scripts", "fixtures"))
import make_idefics3_fixtures as idefics3  # noqa: E402
import make_llava_fixtures as llava  # noqa: E402
import make_qwen2vl_fixtures as qwen  # noqa: E402
from llama_cpp import mtmd_cpp as mtmd  # noqa: E402

FIXTURES = os.path.join(idefics3.ROOT, "Tests", "VLMReasoningTests", "Fixtures")
SIGLIP = dict(tile=512, patch=16, width=768, heads=12, ffn=3072, blocks=12, quantize=False, half=True)
QWEN = dict(width=640, heads=10, ffn=2560, blocks=8, half=True)
MAX_TOKENS = 256

# type -> (writes the mmproj at a path, the LM it is opened beside (DIR-relative names are built), mtmd overrides)
TYPES = {
    "mlp": (lambda p: llava.build_mmproj(p, image_size=224, patch=16, width=768, heads=12, ffn=3072, blocks=13,
                                         mm_hidden=1024, half=True), llava.LM, {}),
    "idefics3": (lambda p: idefics3.build_mmproj(p, scale=4, longest=512, **SIGLIP),
                 os.path.join(FIXTURES, "idefics3", "tiny-lm.gguf"), {}),
    "gemma3": (lambda p: idefics3.build_mmproj(p, projector="gemma3", scale=2, longest=None, **SIGLIP),
               os.path.join(FIXTURES, "gemma3", "tiny-lm.gguf"), {}),
    "qwen2vl": (lambda p: qwen.build_mmproj(p, "qwen2vl_merger", **QWEN), "qwen-lm.gguf", {"image_max_tokens": MAX_TOKENS}),
    "qwen25vl": (lambda p: qwen.build_mmproj(p, "qwen2.5vl_merger", **QWEN), "qwen-lm.gguf", {"image_max_tokens": MAX_TOKENS}),
}


def build(directory):
    os.makedirs(directory, exist_ok=True)
    qwen.build_lm(os.path.join(directory, "qwen-lm.gguf"))
    for name, (write, _, _) in TYPES.items():
        write(os.path.join(directory, name + ".gguf"))
        print(f"wrote {name}.gguf", file=sys.stderr)


def encode_chunks(ctx, chunks):
    start = time.perf_counter()
    for chunk in idefics3.chunk_list(chunks):
        if mtmd.mtmd_input_chunk_get_type(chunk) != 0:
            assert mtmd.mtmd_encode_chunk(ctx, chunk) == 0
    return time.perf_counter() - start


def measure(directory, name, image, repeats):
    _, lm, overrides = TYPES[name]
    llm, ctx = idefics3.open_mtmd(os.path.join(directory, lm), os.path.join(directory, name + ".gguf"), **overrides)
    bm, _ = llava.bitmap(image)
    start = time.perf_counter()
    chunks, described = llava.tokenize(ctx, mtmd.mtmd_default_marker().decode(), [bm])
    preprocess = time.perf_counter() - start
    images = [d["image"] for d in described if "image" in d]
    encode_chunks(ctx, chunks)  # warm-up: pages the mapped weights in
    times = sorted(encode_chunks(ctx, chunks) for _ in range(repeats))
    mtmd.mtmd_input_chunks_free(chunks)
    mtmd.mtmd_bitmap_free(bm)
    mtmd.mtmd_free(ctx)
    del llm
    print(f"llama.cpp {name}: {sum(images)} tokens in {len(images)} views, best {preprocess + times[0]:.3f} s, "
          f"median {preprocess + statistics.median(times):.3f} s (preprocessing {preprocess:.3f} s, 2 threads)")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "build":
        return build(sys.argv[2])
    if len(sys.argv) in (5, 6) and sys.argv[1] == "time":
        return measure(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]) if len(sys.argv) == 6 else 3)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
