"""Using vlmd from a notebook or script: copy this cell and change the paths.

    python clients/python/example.py [PATH/TO/vlmd]

It starts the daemon, checks it answers, streams a counting job with live progress, and prints the
daemon's status. Each model method (encode-image, classify, generate, ...) is called the same way:
`await vlm.request(method, params)` for a single answer, `vlm.stream(...)` for incremental results.
"""

import asyncio
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vlmd_client import VlmdClient, VlmdError  # noqa: E402


async def main(daemon: str) -> None:
    async with await VlmdClient.start([daemon], initialization_options={"logLevel": "warning"}) as vlm:
        info = vlm.server_info["serverInfo"]
        print(f"connected to {info['name']} {info['version']}")

        print("ping:", await vlm.request("ping", {"echo": "hello"}))

        # A streamed request: partial results arrive while it runs; Ctrl-C (or stream.cancel()) stops it.
        stream = vlm.stream("debug/stream", {"count": 5, "intervalMs": 100},
                            on_progress=lambda p: print(f"  progress {p.get('percentage', '')}% {p.get('message') or ''}"))
        async for partial in stream:
            print("  partial result:", partial)
        print("result:", await stream.result)

        try:
            await vlm.request("classify", {"model": "clip", "images": []})
        except VlmdError as error:
            print(f"an error reply: {error.message} (code {error.code})")

        status = await vlm.request("daemon/status")
        print(f"daemon up {status['uptimeSeconds']:.2f}s, models loaded: {len(status['models'])}")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    default = os.path.join(here, "..", "..", ".build", "release", "vlmd")
    if not os.path.exists(default):
        default = os.path.join(here, "..", "..", ".build", "debug", "vlmd")
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else default))
