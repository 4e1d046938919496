#!/usr/bin/env python3
"""open_clip side of bench/evaluate.sh: zero-shot CIFAR evaluation as a plain open_clip script does it,
the same work `vlm evaluate` asks of vlmd — read each record of a CIFAR binary file, make it a PIL image,
apply the model's own preprocessing (open_clip's `create_model_and_transforms`), encode the images
`--batch-size` at a time, and classify against the class embeddings of the 18 CIFAR templates (CLIP's
ensemble: mean of the normalised template embeddings, renormalised). Prints one JSON object with the
accuracy, the confusion matrix and the times.

    /work/refvenv/bin/python bench/evaluate_reference.py --model /tmp/rnspeed-clip-rn50 \
        --dataset ../shared/data/cifar-10/test_batch.bin --labels ../shared/data/cifar-10/batches.meta.txt \
        --threads 2 --batch-size 32 --limit 1000

`--workers N` decodes and preprocesses in N DataLoader worker processes (PyTorch's own way of overlapping
input preparation with the model); the default 0 does it in the main process, between batches.
"""
import argparse
import json
import time

import numpy as np
import torch
from PIL import Image

import open_clip
from clip_reference import CIFAR_TEMPLATES

RECORD = 1 + 3 * 32 * 32


class CIFARRecords(torch.utils.data.Dataset):
    """The first `limit` records of a CIFAR-10 binary file, as (preprocessed tensor, label)."""

    def __init__(self, path, limit, preprocess):
        self.path, self.preprocess = path, preprocess
        with open(path, "rb") as file:
            size = file.seek(0, 2)
        self.count = min(size // RECORD, limit or size // RECORD)

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        with open(self.path, "rb") as file:
            file.seek(index * RECORD)
            raw = file.read(RECORD)
        planes = np.frombuffer(raw, dtype=np.uint8, offset=1).reshape(3, 32, 32)
        image = Image.fromarray(np.ascontiguousarray(planes.transpose(1, 2, 0)), "RGB")
        return self.preprocess(image), raw[0]


def class_embeddings(model, tokenizer, labels):
    """[classes, dim]: per class, the renormalised mean of its normalised template embeddings."""
    rows = []
    for label in labels:
        text = model.encode_text(tokenizer([t.format(label) for t in CIFAR_TEMPLATES]), normalize=True)
        mean = text.mean(dim=0)
        rows.append(mean / mean.norm())
    return torch.stack(rows)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="open_clip model directory (open_clip_config.json + safetensors)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--labels", required=True, help="class names, one a line")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--workers", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    labels = [line.strip() for line in open(args.labels) if line.strip()]

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{args.model}")
    model.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{args.model}")
    loaded = time.perf_counter()
    dataset = CIFARRecords(args.dataset, args.limit, preprocess)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, num_workers=args.workers)
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    with torch.inference_mode():
        classes = class_embeddings(model, tokenizer, labels)
        for images, truth in loader:
            logits = model.encode_image(images, normalize=True) @ classes.T
            for t, p in zip(truth.tolist(), logits.argmax(dim=1).tolist()):
                confusion[t][p] += 1
    finished = time.perf_counter()
    print(json.dumps({
        "implementation": f"open_clip {open_clip.__version__} / torch {torch.__version__}",
        "threads": args.threads, "batch_size": args.batch_size, "workers": args.workers, "count": len(dataset),
        "accuracy": float(np.trace(confusion) / confusion.sum()), "confusion": confusion.tolist(),
        "load_s": loaded - started, "evaluate_s": finished - loaded, "total_s": finished - started,
    }))


if __name__ == "__main__":
    main()
