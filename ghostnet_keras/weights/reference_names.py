"""The reference (timm / official) tensor names of a GhostNet, derived from its layer names.

The reference layout is the `state_dict` of the official PyTorch GhostNet and of timm's
`ghostnet_*` models (`conv_stem`, `bn1`, `blocks.{stage}.{index}.ghost1.primary_conv.0`, ...);
GhostNetV2/V3 add timm's `ghostnetv2_*`/`ghostnetv3_*` keys (`ghost1.short_conv.{0-5}`,
`ghost1.primary_rpr_conv.{i}.conv`, ...); the official V2/V3 repositories' keys are renamed as
timm's `checkpoint_filter_fn` does (`timm_state_dict`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from ghostnet_keras.layers import blocks, blocks_v2v3
from ghostnet_keras.weights.strict import WeightsError

# Each family's bottleneck parts (the layer name without its `block{s}{letter}_` prefix) ->
# reference module path, kept next to the blocks that name them: v1's by name, then
# GhostNetV2/V3's by pattern (with the branch index where there is one).
_BLOCK_PARTS = blocks.REFERENCE_PARTS
_BLOCK_PART_PATTERNS = tuple(
    (re.compile(keras_part), reference)
    for keras_part, reference in blocks_v2v3.REFERENCE_PART_PATTERNS
)
_TOP_LEVEL = {
    "stem_conv": "conv_stem",
    "stem_bn": "bn1",
    "top_conv": "blocks.9.0.conv",
    "top_bn": "blocks.9.0.bn1",
    "head_conv": "conv_head",
    "predictions": "classifier",
}
_BLOCK_NAME = re.compile(r"block(\d+)([a-z])_(\w+)")
_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")
FLOPS_COUNTER_TENSORS = ("total_ops", "total_params")
"""Entries a FLOPs counter (thop) adds to the official V2/V3 checkpoints: not weights, dropped."""


def reference_module_path(layer_name: str) -> str | None:
    """Maps a GhostNet layer name to its module path in the reference `state_dict`.

    Example: `"block6d_se_reduce_conv"` -> `"blocks.6.3.se.conv_reduce"`. Returns `None` for a
    name with no reference counterpart.
    """
    if layer_name in _TOP_LEVEL:
        return _TOP_LEVEL[layer_name]
    match = _BLOCK_NAME.fullmatch(layer_name)
    if match is None:
        return None
    stage, letter, part = match.groups()
    if part in _BLOCK_PARTS:
        reference = _BLOCK_PARTS[part]
    else:
        found = [(p, r) for p, r in _BLOCK_PART_PATTERNS if p.fullmatch(part)]
        if not found:
            return None
        pattern, template = found[0]
        reference = pattern.fullmatch(part).expand(template)
    return f"blocks.{stage}.{ord(letter) - ord('a')}.{reference}"


def timm_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Renames an official GhostNetV2/V3 `state_dict` to timm's keys (timm's filter).

    The official V3 code names the BN of its conv-BN branches `bn` (timm: `bn1`), and
    checkpoints saved with a FLOPs counter carry `total_ops`/`total_params` entries, which are
    dropped. timm's own keys pass unchanged.
    """
    renamed = {}
    for key, value in state_dict.items():
        if key.endswith(FLOPS_COUNTER_TENSORS):
            continue
        if "bn." in key and (".ghost" in key or ".dw_rpr_" in key):
            key = key.replace("bn.", "bn1.")
        renamed[key] = value
    return renamed


def _reference_tensors(layer: keras.layers.Layer, path: str) -> list[tuple[str, tuple, Any]]:
    """(reference key, reference shape, converter to the Keras layout) for each layer weight."""
    if isinstance(layer, keras.layers.BatchNormalization):
        shape = tuple(layer.gamma.shape)
        return [(f"{path}.{t}", shape, np.asarray) for t in _BN_TENSORS]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, channels, multiplier = layer.kernel.shape
        entries = [(
            f"{path}.weight",
            (channels * multiplier, 1, kh, kw),
            lambda w: w.reshape(channels, multiplier, kh, kw).transpose(2, 3, 0, 1),
        )]
    elif isinstance(layer, keras.layers.Conv2D):
        kh, kw, cin, cout = layer.kernel.shape
        entries = [(f"{path}.weight", (cout, cin, kh, kw), lambda w: w.transpose(2, 3, 1, 0))]
    elif isinstance(layer, keras.layers.Dense):
        units_in, units_out = layer.kernel.shape
        entries = [(f"{path}.weight", (units_out, units_in), lambda w: w.T)]
    else:
        raise WeightsError(f"Layer {layer.name!r} ({type(layer).__name__}) has no reference form.")
    if getattr(layer, "use_bias", False):
        entries.append((f"{path}.bias", tuple(layer.bias.shape), np.asarray))
    return entries


def reference_layout(model: keras.Model) -> dict[str, tuple[keras.layers.Layer, list]]:
    """Maps each weighted layer of a GhostNet to its reference tensors.

    Raises:
        WeightsError: when a weighted layer has no reference counterpart (not a GhostNet).
    """
    layout = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        path = reference_module_path(layer.name)
        if path is None:
            raise WeightsError(
                f"Layer {layer.name!r} of model {model.name!r} has no counterpart in the "
                "reference GhostNet layout; only GhostNet models built by ghostnet_keras load "
                "reference checkpoints."
            )
        layout[layer.name] = (layer, _reference_tensors(layer, path))
    return layout
