#!/usr/bin/env python3
"""encode-text and attribute through the daemon: how long a batch of texts takes cold (nothing
cached) and warm (text embeddings / image features cached), with a given CLIP model.

    python bench/attribute.py [--vlmd .build/release/vlmd] [--clip ../shared/models/cifar-clip-rn64]
                              [--image ../shared/data/images/chelsea.png] [--texts 64] [--heatmaps]
"""
import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients" / "python"))
from vlmd_client import VlmdClient  # noqa: E402

NOUNS = ["cat", "dog", "ship", "truck", "bird", "horse", "frog", "deer", "airplane", "automobile", "cup", "tree",
         "person", "sofa", "road", "sky"]


def texts(count, offset=0):
    return [f"a photo of a {NOUNS[(i + offset) % len(NOUNS)]} number {i + offset}." for i in range(count)]


async def timed(label, call):
    start = time.perf_counter()
    await call
    seconds = time.perf_counter() - start
    print(f"{label:58s} {seconds * 1000:9.1f} ms")
    return seconds


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vlmd", default=str(ROOT / ".build" / "release" / "vlmd"))
    parser.add_argument("--clip", default=str(ROOT.parent / "shared" / "models" / "cifar-clip-rn64"))
    parser.add_argument("--image", default=str(ROOT.parent / "shared" / "data" / "images" / "chelsea.png"))
    parser.add_argument("--texts", type=int, default=64)
    parser.add_argument("--heatmaps", action="store_true", help="also draw every heatmap (inline PNGs)")
    args = parser.parse_args()
    n = args.texts
    async with await VlmdClient.start([args.vlmd], stderr=asyncio.subprocess.DEVNULL) as vlm:
        clip = (await vlm.load_model("clip", args.clip))["id"]
        print(f"model {clip}, {n} texts, load average {os.getloadavg()[0]:.2f}")
        await timed(f"encode-text, {n} texts, cold", vlm.encode_text(texts(n)))
        await timed(f"encode-text, the same {n} texts, cached", vlm.encode_text(texts(n)))
        await timed(f"encode-text, {n // 4} texts x 18 cifar templates, cold", vlm.encode_text(NOUNS[:n // 4] or NOUNS[:1], templates="cifar"))
        inline = args.heatmaps
        await timed(f"attribute, {n} new texts, image not yet encoded", vlm.attribute(args.image, texts(n, 1000), heatmaps_inline=inline))
        await timed(f"attribute, {n} new texts, image features cached", vlm.attribute(args.image, texts(n, 2000), heatmaps_inline=inline))
        await timed(f"attribute, the same {n} texts, all cached", vlm.attribute(args.image, texts(n, 2000), heatmaps_inline=inline))


if __name__ == "__main__":
    asyncio.run(main())
