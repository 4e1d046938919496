"""Soak: 10,000 mixed requests (pings, status, encodes new and cached, classify, bad params, unknown
methods, junk frames, cancellations); every request gets exactly one reply and RSS stays bounded.
Opt-in, it takes minutes: VLMD_SOAK=1 (VLMD_SOAK_REQUESTS to change the count). The driver is
bench/stress.py's `soak`, which also reports the figures in BENCHMARKS.md."""

import os
import sys

import pytest

from conftest import ROOT, vlmd_path

sys.path.insert(0, str(ROOT / "bench"))
from stress import soak  # noqa: E402

RN = ROOT / "Tests" / "VLMCLIPTests" / "Fixtures" / "rn-tiny"


@pytest.mark.skipif(os.environ.get("VLMD_SOAK") != "1", reason="soak test is opt-in: VLMD_SOAK=1")
def test_soak_mixed_requests_lose_no_reply_and_rss_stays_bounded():
    report = soak(vlmd_path(), str(RN), int(os.environ.get("VLMD_SOAK_REQUESTS", "10000")))
    print(report)
    assert report["lost"] == 0 and report["stray_replies"] == 0
    # The image-embedding cache is bounded (512 MiB default) but 32x32 embeddings of a tiny model are
    # small: growth beyond 256 MiB past the first wave would be a leak.
    assert report["rss_peak_mb"] < report["rss_after_first_wave_mb"] + 256
