"""Writes tests/data/ghostnet_100_nonsquare_expected.npz with the reference PyTorch model.

Not a project dependency: run it in a separate environment with PyTorch and timm
(`pip install torch==2.14.1 timm safetensors numpy`):

    python tools/make_nonsquare_reference.py ../shared/reference tests/data

It loads `ghostnet_100.safetensors` (random weights, see ../shared/reference/README.md) into
timm's `ghostnet_100`, first checks that it reproduces the shared 224 x 224 oracle, then runs
two uint8 RGB images of an odd, non-square size (193 x 257, so every stride-2 layer sees an odd
input) through it with the reference normalisation, and saves images, logits and pre_logits.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import timm
import torch
from safetensors.torch import load_file

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def run(model: torch.nn.Module, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = (images.astype(np.float32) / 255.0 - MEAN) / STD
    with torch.no_grad():
        features = model.forward_features(torch.from_numpy(x.transpose(0, 3, 1, 2)))
        pre_logits = model.forward_head(features, pre_logits=True)
        logits = model.forward_head(features)
    return logits.numpy(), pre_logits.numpy()


def main(reference_dir: str, output_dir: str) -> None:
    reference = Path(reference_dir)
    model = timm.create_model("ghostnet_100", pretrained=False)
    model.load_state_dict(load_file(reference / "ghostnet_100.safetensors"))
    model.eval()
    oracle = np.load(reference / "ghostnet_100_expected.npz")
    logits, _ = run(model, oracle["images"])
    assert np.abs(logits - oracle["logits"]).max() < 1e-5, "timm does not match the oracle"

    rng = np.random.default_rng(20200614)
    images = rng.integers(0, 256, size=(2, 193, 257, 3), dtype=np.uint8)
    logits, pre_logits = run(model, images)
    out = Path(output_dir) / "ghostnet_100_nonsquare_expected.npz"
    np.savez_compressed(out, images=images, logits=logits, pre_logits=pre_logits)
    print(f"wrote {out}: logits {logits.shape}, pre_logits {pre_logits.shape}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
