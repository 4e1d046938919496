"""Round-trip latency and pipelined throughput of `ping`, measured with the Python client.

    python bench/ping.py [--vlmd .build/release/vlmd] [--runs 5]

Latency: 2,000 sequential pings (each waits for its reply), median per run.
Throughput: 10,000 pings written back to back, replies/s until the last reply. Reports the median of runs.
"""

import argparse
import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "clients", "python"))
from vlmd_client import VlmdClient  # noqa: E402


async def one_run(vlmd: str, sequential: int, pipelined: int):
    vlm = await VlmdClient.start([vlmd, "--log-level", "off"])
    for _ in range(100):  # warm-up
        await vlm.request("ping")
    latencies = []
    for _ in range(sequential):
        start = time.perf_counter()
        await vlm.request("ping")
        latencies.append(time.perf_counter() - start)
    start = time.perf_counter()
    await asyncio.gather(*(vlm.request("ping") for _ in range(pipelined)))
    throughput = pipelined / (time.perf_counter() - start)
    await vlm.close()
    return statistics.median(latencies) * 1e3, throughput


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--vlmd", default=os.path.join(os.path.dirname(__file__), "..", ".build", "release", "vlmd"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sequential", type=int, default=2000)
    parser.add_argument("--pipelined", type=int, default=10000)
    args = parser.parse_args()
    results = [asyncio.run(one_run(args.vlmd, args.sequential, args.pipelined)) for _ in range(args.runs)]
    latency = statistics.median(r[0] for r in results)
    throughput = statistics.median(r[1] for r in results)
    print(f"ping round trip (median of {args.runs} runs of {args.sequential}): {latency:.3f} ms")
    print(f"pipelined throughput (median of {args.runs} runs of {args.pipelined}): {throughput:,.0f} requests/s")


if __name__ == "__main__":
    main()
