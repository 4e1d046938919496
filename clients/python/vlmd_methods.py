"""Typed helpers for vlmd's main methods, on top of VlmdClient.request/stream.

    async with await VlmdClient.start(["vlmd"]) as vlm:
        await vlm.load_model("clip", "rn50/")
        for image in await vlm.encode_image(["a.png", "b.png"]):
            print(image.image_id, image.embedding.shape)        # numpy arrays when numpy is installed
        best = (await vlm.classify(["a.png"], ["cat", "dog"]))[0].top[0]

Each helper streams: pass `on_image` / `on_token` / `on_event` to see results as they arrive.
Field names are the protocol's in snake_case; `raw` keeps the reply as the daemon sent it.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence, Union

try:  # optional: vectors become numpy arrays when numpy is there, plain lists otherwise
    import numpy
except ImportError:  # pragma: no cover - depends on the environment
    numpy = None

ImageLike = Union[str, "os.PathLike[str]", bytes, dict]
"""A path, PNG bytes, an image id from an earlier reply ("img_..."), or a protocol ImageInput dict."""


def vector(values: Sequence[float]):
    return numpy.asarray(values, dtype=numpy.float32) if numpy is not None else list(values)


def image_input(image: ImageLike) -> dict:
    if isinstance(image, dict):
        return image
    if isinstance(image, (bytes, bytearray)):
        return {"png": base64.b64encode(bytes(image)).decode("ascii")}
    text = os.fspath(image)
    if text.startswith("img_") and not os.path.exists(text):
        return {"imageId": text}
    return {"path": os.path.abspath(text)}


def without_none(params: dict) -> dict:
    return {key: value for key, value in params.items() if value is not None}


@dataclass
class DenseFeatures:
    grid_height: int
    grid_width: int
    features: Any  # [grid_height * grid_width][dim]: a 2-D array with numpy, lists otherwise

    @classmethod
    def from_wire(cls, value: dict) -> "DenseFeatures":
        features = value["features"]
        return cls(value["gridHeight"], value["gridWidth"],
                   numpy.asarray(features, dtype=numpy.float32) if numpy is not None else features)


@dataclass
class EncodedImage:
    index: int
    image_id: str
    width: int
    height: int
    cached: bool
    embedding: Any  # L2-normalised
    dense: Optional[DenseFeatures] = None

    @classmethod
    def from_wire(cls, value: dict) -> "EncodedImage":
        dense = DenseFeatures.from_wire(value["dense"]) if value.get("dense") else None
        return cls(value["index"], value["imageId"], value["width"], value["height"], value["cached"],
                   vector(value["embedding"]), dense)


@dataclass
class Classification:
    index: int
    image_id: str
    probs: dict          # label -> probability, in label order
    top: list            # [(label, probability)], best first
    per_template: Optional[dict] = None  # template -> {label: probability}

    @classmethod
    def from_wire(cls, value: dict, labels: Sequence[str], templates: Sequence[str] = ()) -> "Classification":
        per_template = None
        if value.get("perTemplate"):
            per_template = {t["template"]: dict(zip(labels, t["probs"])) for t in value["perTemplate"]}
        return cls(value["index"], value["imageId"], dict(zip(labels, value["probs"])),
                   [(entry["label"], entry["prob"]) for entry in value["top"]], per_template)


@dataclass
class Generation:
    text: str
    token_ids: list
    prompt_token_ids: list
    stop_reason: str
    prompt_tokens: int
    generated_tokens: int
    timings: dict
    raw: dict = field(repr=False, default_factory=dict)
    # With images: how each entered the context (tokens, position, imageId, cached).
    image_tokens: Optional[list] = None
    # With attribution: per sentence of the answer, its attention maps over each image's grid (wire dicts:
    # gridHeight x gridWidth scores, row-major, on cells whose pixel edges are columnEdges / rowEdges).
    attributions: Optional[list] = None

    @classmethod
    def from_wire(cls, value: dict) -> "Generation":
        return cls(value["text"], value["tokenIds"], value["promptTokenIds"], value["stopReason"], value["promptTokens"],
                   value["generatedTokens"], value["timings"], value, value.get("imageTokens"), value.get("attributions"))


@dataclass
class Stage:
    tag: str
    text: str
    complete: bool


@dataclass
class VisualReasoning:
    answer: str
    stages: list        # [Stage]
    steps: list         # the protocol's step objects (text, attribution with its map, look)
    outcome: str
    raw: dict = field(repr=False, default_factory=dict)

    @classmethod
    def from_wire(cls, value: dict) -> "VisualReasoning":
        stages = [Stage(s["tag"], s["text"], s["complete"]) for s in value.get("stages", [])]
        return cls(value.get("answer", ""), stages, value.get("steps", []), value.get("outcome", ""), value)


@dataclass
class EncodedText:
    index: int
    text: str
    embedding: Any  # L2-normalised

    @classmethod
    def from_wire(cls, value: dict) -> "EncodedText":
        return cls(value["index"], value["text"], vector(value["embedding"]))


@dataclass
class Attribution:
    """One text's map over the vision grid, its selection, and its heatmap (PNG bytes when inline)."""
    index: int
    text: str
    grid_height: int
    grid_width: int
    scores: Any          # [grid_height][grid_width], summing to 1: a 2-D array with numpy, nested lists otherwise
    normalization: str
    selection: Optional[dict]   # {method, cells, gridBox, pixelBox, mass} as the protocol has it
    heatmap_path: Optional[str] = None
    heatmap_png: Optional[bytes] = None
    raw: dict = field(repr=False, default_factory=dict)

    @classmethod
    def from_wire(cls, value: dict) -> "Attribution":
        h, w, flat = value["gridHeight"], value["gridWidth"], value["scores"]
        scores = (numpy.asarray(flat, dtype=numpy.float32).reshape(h, w) if numpy is not None
                  else [flat[r * w:(r + 1) * w] for r in range(h)])
        png = base64.b64decode(value["heatmapPNG"]) if value.get("heatmapPNG") else None
        return cls(value["step"], value["text"], h, w, scores, value["normalization"], value.get("selection"),
                   value.get("heatmapPath"), png, value)


@dataclass
class AttributionResult:
    image_id: str
    width: int
    height: int
    visible_box: dict    # the tower's centre crop in original pixels: {x, y, width, height}
    attributions: list   # [Attribution], one per text, in order
    raw: dict = field(repr=False, default_factory=dict)

    @classmethod
    def from_wire(cls, value: dict) -> "AttributionResult":
        return cls(value["imageId"], value["width"], value["height"], value["visibleBox"],
                   [Attribution.from_wire(a) for a in value["attributions"]], value)


class TypedMethods:
    """Mixed into VlmdClient; relies on its `request`."""

    async def load_model(self, kind: str, path: str, *, model_id: Optional[str] = None,
                         context_length: Optional[int] = None, image_min_tokens: Optional[int] = None,
                         image_max_tokens: Optional[int] = None) -> dict:
        """models/load; returns the ModelInfo (its "id" names the model in later requests). `image_min_tokens` /
        `image_max_tokens`: for an mmproj that sizes images dynamically (Qwen2-VL, Qwen2.5-VL), the range of
        image tokens an image becomes."""
        return await self.request("models/load", without_none({
            "kind": kind, "path": os.path.abspath(path), "id": model_id, "contextLength": context_length,
            "imageMinTokens": image_min_tokens, "imageMaxTokens": image_max_tokens}))

    async def encode_image(self, images: Sequence[ImageLike], *, model: Optional[str] = None, dense: bool = False,
                           batch_size: Optional[int] = None, precision: Optional[str] = None,
                           on_image: Optional[Callable[[EncodedImage], None]] = None) -> list:
        """CLIP embeddings, one EncodedImage per image, in order. `precision`: "fp32" (default) or "bf16"
        (where `initialize` lists it in capabilities.experimental.imagePrecisions)."""
        result = await self.request("encode-image", without_none({
            "model": model, "images": [image_input(i) for i in images], "dense": dense or None, "batchSize": batch_size,
            "precision": precision,
        }), on_partial=(lambda value: on_image(EncodedImage.from_wire(value))) if on_image else None)
        return [EncodedImage.from_wire(value) for value in result["images"]]

    async def encode_text(self, texts: Sequence[str], *, model: Optional[str] = None,
                          templates: Union[str, Sequence[str], None] = None, batch_size: Optional[int] = None,
                          on_text: Optional[Callable[[EncodedText], None]] = None) -> list:
        """CLIP text embeddings, one EncodedText per text, in order; with `templates`, each text's
        template ensemble (as classify builds a label)."""
        result = await self.request("encode-text", without_none({
            "model": model, "texts": list(texts),
            "templates": templates if isinstance(templates, (str, type(None))) else list(templates), "batchSize": batch_size,
        }), on_partial=(lambda value: on_text(EncodedText.from_wire(value))) if on_text else None)
        return [EncodedText.from_wire(value) for value in result["texts"]]

    async def attribute(self, image: ImageLike, texts: Sequence[str], *, clip: Optional[str] = None,
                        select: Optional[str] = None, k: Optional[int] = None, mass: Optional[float] = None,
                        heatmaps_inline: bool = False, heatmap_dir: Optional[str] = None,
                        on_attribution: Optional[Callable[[Attribution], None]] = None) -> AttributionResult:
        """Which patches each text relates to, as a visual-reasoning step computes it (no language model)."""
        result = await self.request("attribute", without_none({
            "image": image_input(image), "texts": list(texts), "clip": clip, "select": select, "k": k, "mass": mass,
            "heatmapsInline": heatmaps_inline or None,
            "heatmapDir": os.path.abspath(heatmap_dir) if heatmap_dir else None,
        }), on_partial=(lambda value: on_attribution(Attribution.from_wire(value))) if on_attribution else None)
        return AttributionResult.from_wire(result)

    async def classify(self, images: Sequence[ImageLike], labels: Sequence[str], *, model: Optional[str] = None,
                       templates: Union[str, Sequence[str], None] = None, top_k: Optional[int] = None,
                       per_template: bool = False, learned_prompt: Optional[str] = None,
                       batch_size: Optional[int] = None, precision: Optional[str] = None,
                       on_image: Optional[Callable[[Classification], None]] = None) -> list:
        """Zero-shot classification, one Classification per image, in order (`precision` as encode_image)."""
        labels = list(labels)
        result = await self.request("classify", without_none({
            "model": model, "images": [image_input(i) for i in images], "labels": labels,
            "templates": templates if isinstance(templates, (str, type(None))) else list(templates), "topK": top_k,
            "perTemplate": per_template or None, "learnedPrompt": learned_prompt, "batchSize": batch_size,
            "precision": precision,
        }), on_partial=(lambda value: on_image(Classification.from_wire(value, labels))) if on_image else None)
        return [Classification.from_wire(value, result["labels"], result["templates"]) for value in result["results"]]

    async def generate(self, prompt: Optional[str] = None, *, messages: Optional[list] = None, chat: bool = False,
                       model: Optional[str] = None, max_tokens: Optional[int] = None,
                       temperature: Optional[float] = None, top_k: Optional[int] = None, top_p: Optional[float] = None,
                       min_p: Optional[float] = None, repetition_penalty: Optional[float] = None,
                       seed: Optional[int] = None, stop: Optional[Sequence[str]] = None,
                       images: Optional[Sequence[ImageLike]] = None, mmproj: Optional[str] = None,
                       attribution: bool = False,
                       on_token: Optional[Callable[[str], None]] = None) -> Generation:
        """Text generation; `on_token` receives each token's text as it is decoded. `images` (paths, PNG
        bytes, image ids or ImageInput dicts) go at the prompt's `<__media__>` markers, or after its text,
        through a loaded mmproj (`mmproj`: its id, when several are loaded)."""
        result = await self.request("generate", without_none({
            "model": model, "prompt": prompt, "messages": messages, "chat": chat or None, "maxTokens": max_tokens,
            "temperature": temperature, "topK": top_k, "topP": top_p, "minP": min_p,
            "repetitionPenalty": repetition_penalty, "seed": seed, "stop": list(stop) if stop else None,
            "images": [image_input(image) for image in images] if images else None, "mmproj": mmproj,
            "attribution": attribution or None,
        }), on_partial=(lambda value: on_token(value["text"])) if on_token else None)
        return Generation.from_wire(result)

    async def generate_with_visual_selection(self, image: ImageLike, question: str, *, clip: Optional[str] = None,
                                             lm: Optional[str] = None, mmproj: Optional[str] = None,
                                             beam: Optional[int] = None, max_tokens_per_stage: Optional[int] = None,
                                             on_event: Optional[Callable[[dict], None]] = None,
                                             **options: Any) -> VisualReasoning:
        """Staged visual reasoning; `on_event` receives the protocol's events (stage, token,
        attribution, look, ...) as they happen. Other protocol params go in `options` (camelCase)."""
        result = await self.request("generate-with-visual-selection", without_none({
            "image": image_input(image), "question": question, "clip": clip, "lm": lm, "mmproj": mmproj, "beam": beam,
            "maxTokensPerStage": max_tokens_per_stage, **options,
        }), on_partial=on_event)
        return VisualReasoning.from_wire(result)
