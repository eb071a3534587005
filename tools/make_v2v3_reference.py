"""Writes the compact GhostNetV2/V3 parity oracle in tests/data with timm (PyTorch).

Not a project dependency: run it once in a separate environment with PyTorch and timm
(`pip install torch==2.14.1 timm==1.0.31 safetensors numpy`):

    python tools/make_v2v3_reference.py tests/data

It builds timm's GhostNetV2 and GhostNetV3 at width 0.1 with 10 classes (so each file stays
near 1 MB), draws random but well-conditioned weights from a fixed seed (every conv weight
scaled by its fan-in, BatchNorm statistics measured on random images), and writes:

- `ghostnetv2_010.safetensors`: the V2 `state_dict` in timm's layout;
- `ghostnetv3_010.pth`: the V3 training-form `state_dict` in the official repository's layout,
  as `torch.save({"state_dict": ...})` (its conv-BN branches name their BN `bn`, and FLOPs
  counter entries `total_ops`/`total_params` are present, which timm's
  `checkpoint_filter_fn` renames and drops);
- `ghostnetv2_010_expected.npz`, `ghostnetv3_010_expected.npz`: for `224/` (1 x 224 x 224) and
  `nonsquare/` (1 x 200 x 264: odd 13 x 17 and 7 x 9 maps at strides 16 and 32) the uint8 RGB
  `images` (NHWC), `logits`, `pre_logits` and `blocks.0` .. `blocks.9` (NHWC), the model in eval
  mode on `(images / 255 - mean) / std`; V3 adds `deploy/224/logits` and
  `deploy/nonsquare/logits` from timm's `convert_to_deploy()`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from timm.models.ghostnet import _create_ghostnet

WIDTH = 0.1
CLASSES = 10
SIZES = {"224": (224, 224), "nonsquare": (200, 264)}
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def randomize(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(
                    torch.randn(module.weight.shape, generator=generator) / fan_in**0.5
                )
                if module.bias is not None:
                    module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=generator))
            elif isinstance(module, torch.nn.BatchNorm2d):
                shape = module.weight.shape
                module.weight.copy_(0.25 + 0.25 * torch.rand(shape, generator=generator))
                module.bias.copy_(0.1 * torch.randn(shape, generator=generator))
    # BatchNorm statistics measured on random images (cumulative average over one batch), so
    # every BN normalises and the activations stay of order 1 through the network.
    calibration = torch.randn((4, 3, 224, 224), generator=generator)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None
    model.train()
    with torch.no_grad():
        model(calibration)
    model.eval()


def outputs(model: torch.nn.Module, images: np.ndarray) -> dict[str, np.ndarray]:
    blocks = {}
    hooks = [
        block.register_forward_hook(
            lambda _m, _i, out, i=i: blocks.__setitem__(
                f"blocks.{i}", out.detach().numpy().transpose(0, 2, 3, 1)
            )
        )
        for i, block in enumerate(model.blocks)
    ]
    x = torch.from_numpy(((images / 255.0 - MEAN) / STD).astype(np.float32).transpose(0, 3, 1, 2))
    with torch.no_grad():
        features = model.forward_features(x)
        result = {
            "logits": model.forward_head(features).numpy(),
            "pre_logits": model.forward_head(features, pre_logits=True).numpy(),
            **blocks,
        }
    for hook in hooks:
        hook.remove()
    return result


def official_layout(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm's keys -> the official GhostNetV3 repository's (the inverse of timm's filter)."""
    renamed = {}
    for key, value in state_dict.items():
        if ".bn1." in key and (".ghost" in key or ".dw_rpr_" in key):
            key = key.replace(".bn1.", ".bn.")
        renamed[key] = value
    renamed["total_ops"] = torch.zeros(1, dtype=torch.float64)
    renamed["total_params"] = torch.zeros(1, dtype=torch.float64)
    return renamed


def main(output_dir: str) -> None:
    out = Path(output_dir)
    rng = np.random.default_rng(2022)
    images = {
        key: rng.integers(0, 256, size=(1, h, w, 3), dtype=np.uint8)
        for key, (h, w) in SIZES.items()
    }
    for version, seed in (("v2", 2211), ("v3", 2404)):
        name = f"ghostnet{version}_010"
        model = _create_ghostnet(
            f"ghostnet{version}_100", width=WIDTH, version=version, num_classes=CLASSES
        )
        randomize(model, seed)
        model.eval()
        expected = {}
        for key, batch in images.items():
            expected[f"{key}/images"] = batch
            expected.update({f"{key}/{k}": v for k, v in outputs(model, batch).items()})
        state_dict = {k: v.contiguous() for k, v in model.state_dict().items()}
        if version == "v2":
            save_file(state_dict, out / f"{name}.safetensors")
        else:
            torch.save({"state_dict": official_layout(state_dict)}, out / f"{name}.pth")
            model.convert_to_deploy()
            for key, batch in images.items():
                logits = outputs(model, batch)["logits"]
                scale = np.abs(expected[f"{key}/logits"]).max()
                assert np.abs(logits - expected[f"{key}/logits"]).max() < 1e-5 * scale
                expected[f"deploy/{key}/logits"] = logits
        np.savez_compressed(out / f"{name}_expected.npz", **expected)
        params = sum(p.numel() for p in model.parameters())
        spread = {k: float(v.std()) for k, v in expected.items() if "blocks" in k or "logits" in k}
        print(f"{name}: {params} params (after deploy for v3), output std {spread}")


if __name__ == "__main__":
    main(sys.argv[1])
