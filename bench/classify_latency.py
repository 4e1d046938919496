"""Round trip of `classify` on a cached image, through the daemon and the Python client.

    python bench/classify_latency.py --model DIR [--vlmd .build/release/vlmd] [--runs 200]

The first classify encodes the image and the prompts; every later one hits both caches, so the
round trip measures protocol + cache lookups + the (labels x dim) dot products + softmax.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "clients", "python"))
from vlmd_client import VlmdClient  # noqa: E402

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


async def main(args):
    vlm = await VlmdClient.start([args.vlmd, "--log-level", "off", "--threads", str(args.threads)])
    await vlm.request("models/load", {"kind": "clip", "path": args.model, "id": "m"})
    image = os.path.join(HERE, "..", "..", "shared", "data", "images", "chelsea.png")
    start = time.perf_counter()
    first = await vlm.request("encode-image", {"images": [{"path": os.path.abspath(image)}]})
    encode_ms = (time.perf_counter() - start) * 1e3
    image_id = first["images"][0]["imageId"]
    for templates in ("a photo of a {}.", "cifar"):
        params = {"images": [{"imageId": image_id}], "labels": LABELS, "templates": templates}
        start = time.perf_counter()
        await vlm.request("classify", params)  # fills the text cache
        cold_ms = (time.perf_counter() - start) * 1e3
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            await vlm.request("classify", params)
            times.append((time.perf_counter() - start) * 1e3)
        print(f"classify, cached image, templates={templates!r}: median {statistics.median(times):.3f} ms "
              f"(p90 {sorted(times)[int(0.9 * len(times))]:.3f} ms; first call with text encoding {cold_ms:.1f} ms)")
    print(f"first encode-image (decode + preprocess + RN50 forward): {encode_ms:.1f} ms")
    await vlm.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--vlmd", default=os.path.join(HERE, "..", ".build", "release", "vlmd"))
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
