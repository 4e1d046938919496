"""Staged visual reasoning from a notebook: stages stream as they are written, and each reasoning
step's patch-attribution heatmap is shown (in Jupyter) or saved (in a terminal).

    python clients/python/reasoning_example.py --clip rn50/ --lm SmolLM2-135M-Instruct.Q4_1.gguf \\
        --image photo.png --question "What is on the table?" [--vlmd .build/release/vlmd]

In a notebook, `await reason(...)` with the same arguments.
"""

import argparse
import asyncio
import base64
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vlmd_client import VlmdClient  # noqa: E402

try:  # Jupyter shows the heatmaps inline; elsewhere they are written next to the image.
    from IPython.display import Image, display
except ImportError:
    display = None


async def reason(vlmd, clip, lm, image, question, beam=1, out_dir="heatmaps"):
    async with await VlmdClient.start([vlmd]) as vlm:
        await vlm.request("models/load", {"kind": "clip", "path": os.path.abspath(clip)})
        await vlm.request("models/load", {"kind": "gguf", "path": os.path.abspath(lm)})
        stream = vlm.stream("generate-with-visual-selection", {
            "image": {"path": os.path.abspath(image)}, "question": question, "beam": beam, "heatmapsInline": True})
        async for event in stream:
            kind = event["event"]
            if kind == "stage" and event["phase"] == "begin":
                print(f"\n== {event['stage']} ==")
            elif kind == "token" and event["candidate"] == 0:
                print(event["text"], end="", flush=True)
            elif kind == "attribution":
                attribution = event["attribution"]
                png = base64.b64decode(attribution["heatmapPNG"])
                if display:
                    display(Image(data=png))
                else:
                    os.makedirs(out_dir, exist_ok=True)
                    path = os.path.join(out_dir, f"step-{attribution['step']}.png")
                    with open(path, "wb") as f:
                        f.write(png)
                    print(f"\n  [heatmap for step {attribution['step']}: {path}]")
        result = await stream.result
        print(f"\n\nanswer: {result['answer']}")
        return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--vlmd", default=os.path.join(here, "..", "..", ".build", "release", "vlmd"))
    parser.add_argument("--clip", required=True)
    parser.add_argument("--lm", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--question", required=True)
    parser.add_argument("--beam", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(reason(args.vlmd, args.clip, args.lm, args.image, args.question, args.beam))
