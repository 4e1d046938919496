#!/usr/bin/env python3
"""Pointing accuracy of vlmd's plain similarity map (`attribute`) on composite scenes written by
scripts/make_scenes.py: the share of queries whose map's highest cell (its centre, in scene pixels)
falls in the box of the cell the query names.

    python3 scripts/make_scenes.py --split test --grid 2 --count 500 --out /tmp/scenes-2x2
    .venv/bin/python bench/pointing.py /tmp/scenes-2x2 [--vlmd .build/release/vlmd]
                                       [--clip ../shared/models/cifar-clip-rn64]
"""
import argparse
import asyncio
import collections
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "clients" / "python"))
sys.path.insert(0, str(ROOT / "scripts"))
from make_scenes import points_into  # noqa: E402
from vlmd_client import VlmdClient  # noqa: E402


def scenes(directory):
    """The queries of scenes.jsonl grouped by image, in file order."""
    grouped = collections.OrderedDict()
    for line in (Path(directory) / "scenes.jsonl").read_text().splitlines():
        query = json.loads(line)
        grouped.setdefault(query["image"], []).append(query)
    return grouped


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("scenes", help="a directory written by scripts/make_scenes.py")
    parser.add_argument("--vlmd", default=str(ROOT / ".build" / "release" / "vlmd"))
    parser.add_argument("--clip", default=str(ROOT.parent / "shared" / "models" / "cifar-clip-rn64"))
    args = parser.parse_args()
    hits = total = 0
    start = time.perf_counter()
    async with await VlmdClient.start([args.vlmd], stderr=asyncio.subprocess.DEVNULL) as vlm:
        await vlm.load_model("clip", args.clip)
        for image, queries in scenes(args.scenes).items():
            result = await vlm.attribute(Path(args.scenes) / image, [q["text"] for q in queries], select="off")
            for attribution, query in zip(result.attributions, queries):
                flat = [float(s) for row in attribution.scores for s in row]
                hits += points_into(flat, attribution.grid_height, attribution.grid_width, result.visible_box, query["box"])
                total += 1
    grid = queries[0]["grid"]
    print(f"{grid[0]}x{grid[1]} scenes: {len(scenes(args.scenes))}, queries {total}, map {attribution.grid_height}x"
          f"{attribution.grid_width}: pointing accuracy {hits / total:.4f} ({hits}/{total}); "
          f"{time.perf_counter() - start:.1f} s, load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
