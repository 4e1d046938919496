#!/usr/bin/env python3
"""open_clip side of bench/clip.sh: builds (once) a full-size RN50 CLIP with random weights as an
open_clip model directory, then times open_clip on PyTorch CPU with the same workload as
`vlmbench clip`. Prints one JSON object.

    /work/refvenv/bin/python bench/clip_reference.py --model /tmp/vlmd-rn50-random --threads 2
"""
import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import open_clip

CIFAR_TEMPLATES = [
    "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
    "a low contrast photo of a {}.", "a high contrast photo of a {}.", "a bad photo of a {}.",
    "a good photo of a {}.", "a photo of a small {}.", "a photo of a big {}.",
    "a photo of the {}.", "a blurry photo of the {}.", "a black and white photo of the {}.",
    "a low contrast photo of the {}.", "a high contrast photo of the {}.", "a bad photo of the {}.",
    "a good photo of the {}.", "a photo of the small {}.", "a photo of the big {}.",
]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def make_model_dir(directory: Path, name: str):
    """Random-initialised open_clip model saved in the hub layout (activations kept O(1))."""
    if (directory / "open_clip_model.safetensors").exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    cfg = open_clip.get_model_config(name)
    model = open_clip.model.CLIP(**cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5)
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(directory / "open_clip_model.safetensors"))
    config = {"model_cfg": cfg, "preprocess_cfg": {
        "mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD),
        "interpolation": "bicubic", "resize_mode": "shortest"}}
    (directory / "open_clip_config.json").write_text(json.dumps(config, indent=2))


def best_of(fn, repeats):
    """Best and median wall time, and the best process CPU time (a load-robust figure at 1 thread)."""
    times, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    best_of.cpu = min(cpu)
    return min(times), float(np.median(times))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="/tmp/vlmd-rn50-random")
    parser.add_argument("--arch", default="RN50")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workloads", default="image1,image16,text", help="comma-separated subset to time")
    args = parser.parse_args()
    workloads = set(args.workloads.split(","))
    torch.set_num_threads(args.threads)
    directory = Path(args.model)
    make_model_dir(directory, args.arch)

    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{directory}")
    model.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{directory}")
    size = model.visual.image_size if isinstance(model.visual.image_size, int) else model.visual.image_size[0]
    g = torch.Generator().manual_seed(1)
    images16 = torch.randn(16, 3, size, size, generator=g)
    texts = [t.format(c) for c in CIFAR_CLASSES for t in CIFAR_TEMPLATES]
    tokens = tokenizer(texts)

    result = {"implementation": f"open_clip {open_clip.__version__} / torch {torch.__version__}", "threads": args.threads}
    with torch.inference_mode():
        from torch.utils.flop_counter import FlopCounterMode
        with FlopCounterMode(display=False) as counter:
            model.encode_image(images16[:1])
        result["image_gflop_per_image"] = counter.get_total_flops() / 1e9
        with FlopCounterMode(display=False) as counter:
            model.encode_text(tokens)
        result["text_gflop_full_context"] = counter.get_total_flops() / 1e9

        if "image1" in workloads:
            model.encode_image(images16[:1])  # warm-up
            best, median = best_of(lambda: model.encode_image(images16[:1], normalize=True), args.repeats)
            result["image_batch1_ms_per_image"] = {"best": best * 1e3, "median": median * 1e3, "cpu": best_of.cpu * 1e3}
        if "image16" in workloads:
            model.encode_image(images16)
            best, median = best_of(lambda: model.encode_image(images16, normalize=True), max(2, args.repeats // 2))
            result["image_batch16_ms_per_image"] = {"best": best * 1e3 / 16, "median": median * 1e3 / 16, "cpu": best_of.cpu * 1e3 / 16}
        if "text" in workloads:
            model.encode_text(tokens)
            best, median = best_of(lambda: model.encode_text(tokens, normalize=True), max(2, args.repeats // 2))
            result["text_180_prompts_ms"] = {"best": best * 1e3, "median": median * 1e3}
            best, median = best_of(lambda: tokenizer(texts), args.repeats)
            result["tokenize_180_prompts_ms"] = {"best": best * 1e3, "median": median * 1e3}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
