"""Writes the parity oracles under tests/data with the reference PyTorch model (timm).

Not a project dependency: run it once, by hand, in a separate environment with PyTorch and timm
(`pip install torch==2.14.1 timm safetensors numpy`):

    python tools/make_test_oracles.py ../shared/reference tests/data [all|compact|nonsquare]

It writes two things:

- `ghostnet_020_c10.safetensors` + `ghostnet_020_c10_expected.npz`: the compact oracle that a
  fresh clone tests against. timm's GhostNet v1 at width 0.2 with 10 classes (385k parameters,
  1.5 MB), random well-conditioned weights drawn as ../shared/reference/README.md describes
  (He-normal convs, unit-scale BatchNorm statistics), and its outputs on uint8 RGB images at
  64 x 64 and at 80 x 112 (odd maps at /16 and /32): `logits`, `pre_logits` and the ten
  `blocks.i` outputs (NHWC) per size, keys suffixed `_64x64` / `_80x112`.
- `ghostnet_100_nonsquare_expected.npz`: timm's `ghostnet_100` with the shared random weights
  (checked first against the shared 224 x 224 oracle) on two 193 x 257 images (every stride-2
  layer sees an odd input): `images`, `logits`, `pre_logits`. Needs `reference_dir`.

Expected values follow the shared oracle's recipe: `x = (images / 255 - mean) / std` with the
ImageNet mean and std, NCHW, the model in eval mode.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import timm
import torch
from safetensors.torch import load_file, save_file
from timm.models.ghostnet import _create_ghostnet

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
COMPACT_WIDTH, COMPACT_CLASSES, COMPACT_TAG = 0.2, 10, "ghostnet_020_c10"
COMPACT_SIZES = ((64, 64), (80, 112))
MAX_FILE_BYTES = 2 * 1024 * 1024


def _normalised(images: np.ndarray) -> torch.Tensor:
    x = (images.astype(np.float32) / 255.0 - MEAN) / STD
    return torch.from_numpy(x.transpose(0, 3, 1, 2))


def run(model: torch.nn.Module, images: np.ndarray) -> dict[str, np.ndarray]:
    """Logits, pre_logits and the output of every `blocks[i]` (NHWC) for uint8 NHWC images."""
    outputs = {}
    hooks = [
        block.register_forward_hook(
            lambda _m, _i, out, i=i: outputs.__setitem__(
                f"blocks.{i}", out.numpy().transpose(0, 2, 3, 1)
            )
        )
        for i, block in enumerate(model.blocks)
    ]
    with torch.no_grad():
        features = model.forward_features(_normalised(images))
        outputs["pre_logits"] = model.forward_head(features, pre_logits=True).numpy()
        outputs["logits"] = model.forward_head(features).numpy()
    for hook in hooks:
        hook.remove()
    return outputs


def randomise(model: torch.nn.Module, seed: int) -> None:
    """Random weights that keep activations of order 1 (the shared oracle's recipe).

    He-normal conv kernels (fan-in), unit-scale BatchNorm statistics, and small BatchNorm gammas
    and betas on the layers that feed a residual add (`ghost2`, `shortcut`), as a trained
    network has them, so activations do not grow block after block.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape, low, high):
        return low + (high - low) * torch.rand(shape, generator=generator)

    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            fan_in = module.weight[0].numel()
            gain = 2.0 if isinstance(module, torch.nn.Conv2d) else 1.0
            module.weight.data = torch.randn(module.weight.shape, generator=generator) * math.sqrt(
                gain / fan_in
            )
            if module.bias is not None:
                module.bias.data = uniform(module.bias.shape, -0.1, 0.1)
        elif isinstance(module, torch.nn.BatchNorm2d):
            channels = module.num_features
            residual = ".ghost2." in name or ".shortcut." in name
            module.weight.data = uniform(channels, 0.05, 0.25) if residual else uniform(
                channels, 0.5, 1.5
            )
            module.bias.data = uniform(channels, -0.08, 0.08) if residual else uniform(
                channels, -0.3, 0.3
            )
            module.running_mean.data = uniform(channels, -0.3, 0.3)
            module.running_var.data = uniform(channels, 0.5, 1.5)


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    np.savez_compressed(path, **arrays)
    assert path.stat().st_size <= MAX_FILE_BYTES, f"{path} is over 2 MB"
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")


def make_compact_oracle(output: Path) -> None:
    model = _create_ghostnet("ghostnet_100", width=COMPACT_WIDTH, num_classes=COMPACT_CLASSES)
    randomise(model, seed=20200614)
    model.eval()
    weights = output / f"{COMPACT_TAG}.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    assert weights.stat().st_size <= MAX_FILE_BYTES, f"{weights} is over 2 MB"
    print(f"wrote {weights} ({weights.stat().st_size / 1e6:.2f} MB)")

    rng = np.random.default_rng(20260105)
    arrays = {}
    for height, width in COMPACT_SIZES:
        images = rng.integers(0, 256, size=(2, height, width, 3), dtype=np.uint8)
        suffix = f"_{height}x{width}"
        arrays["images" + suffix] = images
        for key, value in run(model, images).items():
            arrays[key + suffix] = value
            if key.startswith("blocks") or key == "logits":
                print(f"  {key + suffix}: {value.shape} std {value.std():.3f}")
    _save_npz(output / f"{COMPACT_TAG}_expected.npz", **arrays)


def make_nonsquare_oracle(reference: Path, output: Path) -> None:
    model = timm.create_model("ghostnet_100", pretrained=False)
    model.load_state_dict(load_file(reference / "ghostnet_100.safetensors"))
    model.eval()
    oracle = np.load(reference / "ghostnet_100_expected.npz")
    logits = run(model, oracle["images"])["logits"]
    assert np.abs(logits - oracle["logits"]).max() < 1e-5, "timm does not match the oracle"

    rng = np.random.default_rng(20200614)
    images = rng.integers(0, 256, size=(2, 193, 257, 3), dtype=np.uint8)
    outputs = run(model, images)
    _save_npz(output / "ghostnet_100_nonsquare_expected.npz", images=images,
              logits=outputs["logits"], pre_logits=outputs["pre_logits"])


def main(reference_dir: str, output_dir: str, which: str = "all") -> None:
    output = Path(output_dir)
    if which in ("all", "compact"):
        make_compact_oracle(output)
    if which in ("all", "nonsquare"):
        make_nonsquare_oracle(Path(reference_dir), output)


if __name__ == "__main__":
    main(*sys.argv[1:4])
