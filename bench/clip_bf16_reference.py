"""How much bf16 costs the reference: open_clip/PyTorch's own bf16 image embeddings against its fp32 ones.

    python bench/clip_bf16_reference.py MODEL_DIR [MODEL_DIR...]

For each open_clip model directory (hub layout, as bench/clip.sh and scripts/fixtures build them), encodes 16
Gaussian-pixel images at the model's size in fp32, under `torch.autocast("cpu", dtype=torch.bfloat16)` and with
the whole model cast to bf16, and prints the min / mean cosine of each bf16 embedding to its fp32 one. The figure
to set beside `bench/clip.sh --precision bf16`'s cosine: it says how sensitive the network itself is to bf16
rounding (a random-weight ResNet amplifies it much more than a trained one).
"""
import sys

import open_clip
import torch


def unit_embeddings(model, images):
    e = model.encode_image(images).float()
    return e / e.norm(dim=-1, keepdim=True)


def report(directory: str):
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{directory}")
    model.eval()
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    images = torch.randn(16, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fp32 = unit_embeddings(model, images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = unit_embeddings(model, images)
        whole = unit_embeddings(model.to(torch.bfloat16), images.to(torch.bfloat16))
    name = directory.rstrip("/").split("/")[-1]
    for label, e in (("autocast bf16", autocast), ("whole model bf16", whole)):
        cosine = (fp32 * e).sum(-1)
        print(f"{name}: {label}: cosine to fp32 min {cosine.min():.6f} mean {cosine.mean():.6f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    for directory in sys.argv[1:]:
        report(directory)
