"""scripts/make_scenes.py: the composite scenes a grounding selector trains and is evaluated on."""

import json
import struct
import subprocess
import sys
import zlib

import pytest

from conftest import ROOT

SHARED = ROOT.parent / "shared"
CIFAR = SHARED / "data" / "cifar-10"
SCRIPT = ROOT / "scripts" / "make_scenes.py"
NAMES = (CIFAR / "batches.meta.txt").read_text().split()


def make(out, split, grid, count, seed):
    subprocess.run([sys.executable, str(SCRIPT), "--split", split, "--grid", str(grid), "--count", str(count),
                    "--seed", str(seed), "--out", str(out), "--shared", str(SHARED)], check=True, capture_output=True)
    return [json.loads(line) for line in (out / "scenes.jsonl").read_text().splitlines()]


def decode_png(data):
    """Width, height and RGB rows of an 8-bit RGB PNG whose rows all use filter 0."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (depth, colour) == (8, 2)
    idat, at = b"", 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        if kind == b"IDAT":
            idat += data[at + 8:at + 8 + length]
        at += 12 + length
    raw = zlib.decompress(idat)
    stride = 1 + 3 * width
    assert all(raw[y * stride] == 0 for y in range(height))
    return width, height, [raw[y * stride + 1:(y + 1) * stride] for y in range(height)]


def cifar_cell(data, record):
    """Record `record` as 32 rows of interleaved RGB."""
    planes = data[record * 3073 + 1:(record + 1) * 3073]
    return [bytes(planes[c * 1024 + y * 32 + x] for x in range(32) for c in range(3)) for y in range(32)]


@pytest.mark.parametrize("split, file, grid", [("test", "test_batch.bin", 2), ("train", "train_5000.bin", 3)])
def test_scenes_hold_the_named_images_in_their_boxes(tmp_path, split, file, grid):
    queries = make(tmp_path, split, grid, 6, 0)
    data = (CIFAR / file).read_bytes()
    assert len(queries) == 6 * grid * grid
    for image in sorted({q["image"] for q in queries}):
        cells = [q for q in queries if q["image"] == image]
        width, height, rows = decode_png((tmp_path / image).read_bytes())
        assert width == height == 32 * grid
        assert len({q["label"] for q in cells}) == grid * grid  # distinct classes
        for q in cells:
            x, y, w, h = q["box"]
            assert [x, y, w, h] == [32 * q["cell"][1], 32 * q["cell"][0], 32, 32]
            assert data[q["record"] * 3073] == q["label"] and q["text"] == f"a photo of a {NAMES[q['label']]}."
            assert [row[3 * x:3 * (x + w)] for row in rows[y:y + h]] == cifar_cell(data, q["record"])


def test_scenes_are_deterministic_by_seed(tmp_path):
    first = make(tmp_path / "a", "test", 3, 4, 7)
    again = make(tmp_path / "b", "test", 3, 4, 7)
    other = make(tmp_path / "c", "test", 3, 4, 8)
    assert first == again and first != other
    for name in {q["image"] for q in first}:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_training_and_evaluation_scenes_come_from_their_own_files(tmp_path):
    train = make(tmp_path / "train", "train", 2, 20, 0)
    assert max(q["record"] for q in train) < 5000  # train_5000.bin has 5,000 records; test_batch.bin 10,000
    test = make(tmp_path / "test", "test", 2, 200, 0)
    assert max(q["record"] for q in test) >= 5000
