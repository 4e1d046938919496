#!/usr/bin/env python3
"""Composite scenes for grounding: grids of CIFAR-10 images of distinct classes, a query per cell,
and the pixel box of the cell the query names.

    python3 scripts/make_scenes.py --split test --grid 2 --count 500 --seed 0 --out scenes/test-2x2
    python3 scripts/make_scenes.py --split train --grid 3 --count 5000 --seed 0 --out scenes/train-3x3

A scene is a GRID x GRID mosaic of 32x32 CIFAR-10 images (so 64x64 or 96x96 pixels), each of a
different class. Training scenes draw from `train_5000.bin`, evaluation scenes from `test_batch.bin`
(both in ../shared/data/cifar-10, or --shared), so a selector trained on the first is evaluated on
images it never saw. For every cell the scene has one query, `TEMPLATE` filled with the cell's class,
whose target is that cell's box `[x, y, width, height]` in the scene's pixels.

Output in OUT: `scene-NNNNN.png` and `scenes.jsonl`, one line per query:
`{"image": "scene-00000.png", "text": "a photo of a cat.", "box": [32, 0, 32, 32], "label": 3,
"cell": [0, 1], "grid": [2, 2], "record": 1234}`, `image` relative to the JSON-lines file and
`record` the CIFAR record drawn for that cell. The same split, grid, count and seed give the same
files byte for byte (the draw uses Python's `random.Random(seed)` only; PNGs are written by this
script with fixed zlib settings). Only the standard library is needed.

Other scripts import `scene_records`, `scene_pixels`, `queries`, `png` and `points_into` from here so that what they
measure is exactly these scenes.
"""
import argparse
import json
import random
import struct
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CELL = 32  # CIFAR's image side
RECORD = 1 + 3 * CELL * CELL  # label byte + R, G, B planes
TEMPLATE = "a photo of a {}."
SPLITS = {"train": "train_5000.bin", "test": "test_batch.bin"}


def read_cifar(path):
    """The raw bytes of a CIFAR-10 binary file and the record indices of each class."""
    data = Path(path).read_bytes()
    if len(data) % RECORD:
        raise ValueError(f"{path}: size {len(data)} is not a multiple of the {RECORD}-byte record")
    by_class = [[] for _ in range(10)]
    for index in range(len(data) // RECORD):
        by_class[data[index * RECORD]].append(index)
    return data, by_class


def scene_records(by_class, grid, count, seed):
    """`count` scenes, each the records of its cells in row-major order, all of distinct classes."""
    if not 1 <= grid * grid <= 10:
        raise ValueError(f"a {grid}x{grid} grid needs {grid * grid} distinct classes; CIFAR-10 has 10")
    rng = random.Random(seed)
    scenes = []
    for _ in range(count):
        classes = rng.sample(range(10), grid * grid)
        scenes.append([rng.choice(by_class[c]) for c in classes])
    return scenes


def scene_pixels(data, records, grid):
    """The scene as packed RGB bytes, (grid*32) x (grid*32), rows top to bottom."""
    side = grid * CELL
    pixels = bytearray(side * side * 3)
    for cell, index in enumerate(records):
        planes = data[index * RECORD + 1:(index + 1) * RECORD]
        top, left = CELL * (cell // grid), CELL * (cell % grid)
        for y in range(CELL):
            row = bytearray(CELL * 3)
            for c in range(3):
                row[c::3] = planes[c * CELL * CELL + y * CELL:c * CELL * CELL + (y + 1) * CELL]
            start = ((top + y) * side + left) * 3
            pixels[start:start + CELL * 3] = row
    return bytes(pixels), side


def queries(data, records, grid, names):
    """One query per cell: its text, its box [x, y, width, height] in pixels, label and cell."""
    out = []
    for cell, index in enumerate(records):
        label = data[index * RECORD]
        row, column = divmod(cell, grid)
        out.append({"text": TEMPLATE.format(names[label]), "box": [column * CELL, row * CELL, CELL, CELL],
                    "label": label, "cell": [row, column], "grid": [grid, grid], "record": index})
    return out


def points_into(scores, grid_height, grid_width, visible, box):
    """Whether a map points into `box`: the centre of its highest-scoring cell, placed in the scene's
    pixels through the visible region {x, y, width, height} the map covers, lies inside the box.
    On a 2x2 scene seen as a 2x2 map this is "the argmax is the class's quadrant"."""
    best = max(range(len(scores)), key=scores.__getitem__)
    row, column = divmod(best, grid_width)
    x = visible["x"] + (column + 0.5) * visible["width"] / grid_width
    y = visible["y"] + (row + 0.5) * visible["height"] / grid_height
    left, top, width, height = box
    return left <= x < left + width and top <= y < top + height


def png(width, height, rgb):
    """An 8-bit RGB PNG, filter 0 on every row, zlib level 9 (deterministic)."""
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    rows = b"".join(b"\0" + rgb[y * width * 3:(y + 1) * width * 3] for y in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def class_names(shared):
    return (Path(shared) / "data" / "cifar-10" / "batches.meta.txt").read_text().split()


def write_scenes(shared, split, grid, count, seed, out):
    data, by_class = read_cifar(Path(shared) / "data" / "cifar-10" / SPLITS[split])
    names = class_names(shared)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for number, records in enumerate(scene_records(by_class, grid, count, seed)):
        pixels, side = scene_pixels(data, records, grid)
        image = f"scene-{number:05d}.png"
        (out / image).write_bytes(png(side, side, pixels))
        lines += [json.dumps({"image": image, **query}) for query in queries(data, records, grid, names)]
    (out / "scenes.jsonl").write_text("\n".join(lines) + "\n")
    return len(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=sorted(SPLITS), required=True)
    parser.add_argument("--grid", type=int, choices=[2, 3], required=True)
    parser.add_argument("--count", type=int, required=True, help="number of scenes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="directory for the PNGs and scenes.jsonl")
    parser.add_argument("--shared", default=str(ROOT.parent / "shared"))
    args = parser.parse_args()
    total = write_scenes(args.shared, args.split, args.grid, args.count, args.seed, args.out)
    print(f"wrote {args.count} scenes, {total} queries to {args.out}/scenes.jsonl")


if __name__ == "__main__":
    main()
