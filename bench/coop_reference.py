#!/usr/bin/env python3
"""PyTorch reference for one CoOp step, and the model directory the Swift side times against.

    /work/refvenv/bin/python bench/coop_reference.py --model-dir /tmp/coop-bench-model [--threads 2] [--steps 5]

Builds a CLIP whose text tower has RN50's size (width 512, 12 layers, 8 heads, embed 1024,
QuickGELU; random weights, seed 0; a minimal image tower, which a CoOp step never touches), saves it
as an open_clip model directory (once), then times one CoOp step exactly as CoOp runs it:
16 shots x 10 classes of cached, normalised image features, M = 16 shared context vectors,
prompts "[SOT] ctx x16 <name>. [EOT]" over the full 77-token context, text tower forward, cosine
logits, cross-entropy, backward to the context (weights frozen), SGD update. A second timing
truncates the sequence at the longest EOT (what the Swift implementation does) for comparison.
Prints one JSON line per variant: median and minimum seconds per step (the minimum is the
figure least disturbed by other load on a shared machine).
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import open_clip

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
MODEL_CFG = {
    "embed_dim": 1024,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12},
}


def make_model_dir(directory: Path):
    if (directory / "open_clip_model.safetensors").exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = open_clip.model.CLIP(**MODEL_CFG)
    state = {k: v.detach().float().contiguous() if v.is_floating_point() else v.detach().contiguous()
             for k, v in model.state_dict().items()}
    save_file(state, str(directory / "open_clip_model.safetensors"))
    (directory / "open_clip_config.json").write_text(json.dumps({"model_cfg": MODEL_CFG}, indent=2))


def time_steps(model, tokenizer, truncate: bool, steps: int, m: int, shots: int):
    sot, eot = tokenizer.sot_token_id, tokenizer.eot_token_id
    rows = [[sot] + [0] * m + tokenizer.encode(n + ".") + [eot] for n in CLASSES]
    length = max(len(r) for r in rows) if truncate else 77
    ids = torch.zeros(len(rows), length, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
    eot_positions = torch.tensor([len(r) - 1 for r in rows])
    g = torch.Generator().manual_seed(1)
    width = model.token_embedding.weight.shape[1]
    ctx = (torch.randn(m, width, generator=g) * 0.02).requires_grad_(True)
    features = F.normalize(torch.randn(shots * len(CLASSES), model.text_projection.shape[1], generator=g), dim=-1)
    labels = torch.arange(len(CLASSES)).repeat_interleave(shots)
    optimiser = torch.optim.SGD([ctx], lr=0.002, momentum=0.9)
    with torch.no_grad():
        token_embeddings = model.token_embedding(ids)  # constant: the token table is frozen
    mask = model.attn_mask[:length, :length]

    def step():
        optimiser.zero_grad()
        x = torch.cat([token_embeddings[:, :1], ctx.expand(len(CLASSES), m, width), token_embeddings[:, 1 + m:]], dim=1)
        x = x + model.positional_embedding[:length]
        x = model.transformer(x, attn_mask=mask)
        x = model.ln_final(x)
        x = x[torch.arange(len(CLASSES)), eot_positions] @ model.text_projection
        w = F.normalize(x, dim=-1)
        loss = F.cross_entropy(model.logit_scale.exp() * features @ w.T, labels)
        loss.backward()
        optimiser.step()
        return loss.item()

    step()  # warm-up
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), length


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/coop-bench-model"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--context", type=int, default=16)
    parser.add_argument("--shots", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    make_model_dir(args.model_dir)
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{args.model_dir}")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(f"local-dir:{args.model_dir}")
    for truncate in (False, True):
        median, fastest, length = time_steps(model, tokenizer, truncate, args.steps, args.context, args.shots)
        print(json.dumps({"implementation": "pytorch", "torch": torch.__version__, "threads": args.threads,
                          "sequence": length, "median_seconds_per_step": round(median, 4), "min_seconds_per_step": round(fastest, 4)}))


if __name__ == "__main__":
    main()
