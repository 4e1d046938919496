"""Round trips through `vlmd --mcp` (the `mcp` package's stdio client) next to the same requests
through the LSP-framed daemon (clients/python), to see what the MCP adapter adds.

    .venv/bin/python bench/mcp_latency.py --model ../shared/models/cifar-clip-rn64 [--vlmd .build/release/vlmd] [--runs 300]

classify runs on a cached image (imageId) with cached prompts, so it measures protocol + adapter
+ cache lookups, not the image tower.
"""

import argparse
import asyncio
import json
import os
import subprocess
import statistics
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "clients", "python"))
from vlmd_client import VlmdClient  # noqa: E402

LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
IMAGE = os.path.abspath(os.path.join(HERE, "..", "..", "shared", "data", "images", "chelsea.png"))


async def timed(call, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


async def over_mcp(args):
    server = StdioServerParameters(command=args.vlmd, args=["--mcp", "--log-level", "off", "--threads", str(args.threads)])
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            await session.call_tool("load_model", {"kind": "clip", "path": args.model, "id": "m"})
            encoded = await session.call_tool("encode_image", {"images": [{"path": IMAGE}]})
            params = {"images": [{"imageId": encoded.structured_content["images"][0]["imageId"]}], "labels": LABELS}
            await session.call_tool("classify", params)
            ping = await timed(session.send_ping, args.runs)
            classify = await timed(lambda: session.call_tool("classify", params), args.runs)
    return ping, classify


async def over_lsp(args):
    vlm = await VlmdClient.start([args.vlmd, "--log-level", "off", "--threads", str(args.threads)])
    await vlm.request("models/load", {"kind": "clip", "path": args.model, "id": "m"})
    encoded = await vlm.request("encode-image", {"images": [{"path": IMAGE}]})
    params = {"images": [{"imageId": encoded["images"][0]["imageId"]}], "labels": LABELS}
    await vlm.request("classify", params)
    ping = await timed(lambda: vlm.request("ping", {}), args.runs)
    classify = await timed(lambda: vlm.request("classify", params), args.runs)
    await vlm.close()
    return ping, classify


async def over_raw_lines(args):
    """MCP lines written and read directly (one at a time): the adapter without a client library."""
    proc = subprocess.Popen([args.vlmd, "--mcp", "--log-level", "off", "--threads", str(args.threads)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    sequence = 0

    async def call(method, params):
        nonlocal sequence
        sequence += 1
        proc.stdin.write((json.dumps({"jsonrpc": "2.0", "id": sequence, "method": method, "params": params}) + "\n").encode())
        proc.stdin.flush()
        while True:
            message = json.loads(proc.stdout.readline())
            if message.get("id") == sequence:
                return message["result"]

    await call("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "bench"}})
    await call("tools/call", {"name": "load_model", "arguments": {"kind": "clip", "path": args.model, "id": "m"}})
    encoded = await call("tools/call", {"name": "encode_image", "arguments": {"images": [{"path": IMAGE}]}})
    image_id = encoded["structuredContent"]["images"][0]["imageId"]
    classify = {"name": "classify", "arguments": {"images": [{"imageId": image_id}], "labels": LABELS}}
    await call("tools/call", classify)
    ping = await timed(lambda: call("ping", {}), args.runs)
    classified = await timed(lambda: call("tools/call", classify), args.runs)
    proc.stdin.close()
    proc.wait()
    return ping, classified


async def main(args):
    for name, run in (("LSP-framed (clients/python)", over_lsp), ("MCP (mcp stdio client)", over_mcp),
                      ("MCP (raw lines, no client library)", over_raw_lines)):
        ping, classify = await run(args)
        print(f"{name}: ping median {ping:.3f} ms, classify (cached) median {classify:.3f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--vlmd", default=os.path.join(HERE, "..", ".build", "release", "vlmd"))
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
