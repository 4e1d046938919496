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


def in_notebook() -> bool:
    """True inside a running Jupyter kernel. IPython being importable is not enough: outside a
    kernel, display() prints '<IPython.core.display.Image object>' instead of a picture."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def show_heatmap(png: bytes, step: int, out_dir: str) -> None:
    """Inline in a notebook; elsewhere saved as a file whose path is printed."""
    if in_notebook():
        from IPython.display import Image, display
        display(Image(data=png))
        return
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"step-{step}.png")
    with open(path, "wb") as f:
        f.write(png)
    print(f"\n  [heatmap for step {step}: {path}]")


async def reason(vlmd, clip, lm, image, question, beam=1, out_dir="heatmaps", context_length=None, max_tokens=None):
    async with await VlmdClient.start([vlmd]) as vlm:
        await vlm.request("models/load", {"kind": "clip", "path": os.path.abspath(clip)})
        load = {"kind": "gguf", "path": os.path.abspath(lm)}
        if context_length:
            load["contextLength"] = context_length
        await vlm.request("models/load", load)
        stream = vlm.stream("generate-with-visual-selection", {
            "image": {"path": os.path.abspath(image)}, "question": question, "beam": beam, "heatmapsInline": True,
            **({"maxTokensPerStage": max_tokens} if max_tokens else {})})
        async for event in stream:
            kind = event["event"]
            if kind == "stage" and event["phase"] == "begin":
                print(f"\n== {event['stage']} ==")
            elif kind == "stage" and beam > 1:
                print(event["text"])  # with a beam, only the chosen candidate's text is shown
            elif kind == "token" and beam == 1:
                print(event["text"], end="", flush=True)
            elif kind == "attribution":
                attribution = event["attribution"]
                show_heatmap(base64.b64decode(attribution["heatmapPNG"]), attribution["step"], out_dir)
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
    parser.add_argument("--heatmaps", default="heatmaps", help="where heatmaps go outside a notebook")
    parser.add_argument("--context-length", type=int, help="KV-cache length for the language model")
    parser.add_argument("--max-tokens", type=int, help="most tokens per stage")
    args = parser.parse_args()
    asyncio.run(reason(args.vlmd, args.clip, args.lm, args.image, args.question, args.beam, args.heatmaps,
                       args.context_length, args.max_tokens))
