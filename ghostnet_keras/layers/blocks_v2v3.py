"""GhostNetV2 and GhostNetV3 building blocks: DFC attention and re-parameterisable modules.

Same conventions as `ghostnet_keras.layers.blocks` (functions on symbolic tensors, built-in
layers from the `layers` module they are given, layer names `{name}_{part}`, PyTorch padding and BN
constants); semantics are those of timm's `timm/models/ghostnet.py` (1.0.31), whose
`state_dict` keys the layer names map to
(`ghostnet_keras.weights.reference_names.reference_module_path`).

- GhostNetV2 (NeurIPS 2022): the first Ghost module of every block but the first two is
  multiplied by a DFC attention gate (`dfc_attention`).
- GhostNetV3 (arXiv 2404.11202): in training form the primary conv is three parallel conv-BN
  branches, the cheap depthwise conv three parallel depthwise conv-BN branches plus a 1x1
  "scale" branch and an identity BN branch, and the stride-2 depthwise conv three branches
  plus a 1x1 scale branch; the deploy form (`reparameterized=True`, see
  `ghostnet_keras.reparameterize`) fuses each group into one conv with bias.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from types import ModuleType

import keras

from ghostnet_keras.data_format import resolve_data_format
from ghostnet_keras.layers.blocks import (
    Tensor,
    _conv_padding,
    batch_norm,
    conv_bn,
    depthwise_bn,
    ghost_module,
)

# Parallel conv-BN branches of each GhostNetV3 re-parameterisable conv (timm's num_conv_branches).
V3_BRANCHES = 3
# Blocks with a global index above this use the V2/V3 attention ("attn"/"shortcut" mode).
FIRST_ATTENTION_BLOCK = 2
ATTENTION_VERSIONS = ("v2", "v3")
"""The versions with DFC attention (built channels_last only, at least `ATTENTION_MIN_SIZE`)."""
# The DFC gate average-pools the stride-32 map 2x2, so that map needs 2 pixels.
ATTENTION_MIN_SIZE = 33
DFC_KERNEL_SIZE = 5
CHEAP_KERNEL_SIZE = 3

REFERENCE_PART_PATTERNS = (
    (r"(ghost[12])_primary(\d+)_conv", r"\1.primary_rpr_conv.\2.conv"),
    (r"(ghost[12])_primary(\d+)_bn", r"\1.primary_rpr_conv.\2.bn1"),
    (r"(ghost[12])_cheap(\d+)_dwconv", r"\1.cheap_rpr_conv.\2.conv"),
    (r"(ghost[12])_cheap(\d+)_bn", r"\1.cheap_rpr_conv.\2.bn1"),
    (r"(ghost[12])_cheap_scale_dwconv", r"\1.cheap_rpr_scale.conv"),
    (r"(ghost[12])_cheap_scale_bn", r"\1.cheap_rpr_scale.bn1"),
    (r"(ghost[12])_cheap_skip_bn", r"\1.cheap_rpr_skip"),
    (r"(ghost1)_short_conv", r"\1.short_conv.0"),
    (r"(ghost1)_short_bn", r"\1.short_conv.1"),
    (r"(ghost1)_short_hdwconv", r"\1.short_conv.2"),
    (r"(ghost1)_short_hbn", r"\1.short_conv.3"),
    (r"(ghost1)_short_vdwconv", r"\1.short_conv.4"),
    (r"(ghost1)_short_vbn", r"\1.short_conv.5"),
    (r"dw(\d+)_dwconv", r"dw_rpr_conv.\1.conv"),
    (r"dw(\d+)_bn", r"dw_rpr_conv.\1.bn1"),
    (r"dw_scale_dwconv", r"dw_rpr_scale.conv"),
    (r"dw_scale_bn", r"dw_rpr_scale.bn1"),
)
"""The V2/V3 parts of a bottleneck (a pattern over the layer name without its `{name}_` prefix)
-> their module path in timm's `state_dict` (a `re` template; `weights.reference_names`)."""
TRAINING_FORM_LAYER = r"\w+_primary\d+_conv"
"""GhostNetV3's training form in Keras: the first primary branch of a Ghost module."""
TRAINING_FORM_KEY = "_rpr_"
"""GhostNetV3's training form in a reference `state_dict` (`primary_rpr_conv`, ...)."""
DEPLOY_FORM_VERSIONS = ("v3",)
"""The versions built as parallel conv-BN branches that `reparameterized=True` fuses."""


def dfc_attention(
    inputs: Tensor, outputs: Tensor, *, name: str, layers: ModuleType = keras.layers
) -> Tensor:
    """Multiplies a Ghost module's `outputs` by the DFC attention gate computed from `inputs`.

    Gate: 2x2 average pool (stride 2, floored) -> 1x1 conv + BN -> depthwise (1, 5) conv + BN
    -> depthwise (5, 1) conv + BN -> sigmoid -> nearest resize to the size of `outputs` with
    PyTorch's legacy rule (`NearestResize`).

    Layers: `{name}_short_pool`, `{name}_short_conv`, `{name}_short_bn`,
    `{name}_short_hdwconv`, `{name}_short_hbn`, `{name}_short_vdwconv`, `{name}_short_vbn`,
    `{name}_short_gate`, `{name}_short_resize`, `{name}_attention`.
    """
    from ghostnet_keras.layers.nearest_resize import nearest_resize_layer

    channels = outputs.shape[-1]
    gate = layers.AveragePooling2D(2, strides=2, name=f"{name}_short_pool")(inputs)
    gate = conv_bn(gate, channels, 1, activation=False, name=f"{name}_short", layers=layers)
    for axis, kernel in (("h", (1, DFC_KERNEL_SIZE)), ("v", (DFC_KERNEL_SIZE, 1))):
        gate = layers.DepthwiseConv2D(
            kernel, padding="same", use_bias=False, name=f"{name}_short_{axis}dwconv"
        )(gate)
        gate = batch_norm(gate, f"{name}_short_{axis}bn", layers)
    gate = layers.Activation("sigmoid", name=f"{name}_short_gate")(gate)
    gate = nearest_resize_layer(layers)(name=f"{name}_short_resize")([gate, outputs])
    return layers.Multiply(name=f"{name}_attention")([outputs, gate])


def _channels_last_only(data_format: str | None, layers: ModuleType, name: str) -> None:
    if resolve_data_format(data_format, layers) != "channels_last":
        raise ValueError(f"{name!r}: the GhostNetV2/V3 blocks are built channels_last only.")


def ghost_module_v2(
    x: Tensor, filters: int, activation: bool = True, *, name: str,
    layers: ModuleType = keras.layers, data_format: str | None = None,
) -> Tensor:
    """GhostNetV2's `GhostModuleV2` ("attn" mode): a Ghost module times the DFC gate."""
    _channels_last_only(data_format, layers, name)
    out = ghost_module(x, filters, activation=activation, name=name, layers=layers)
    return dfc_attention(x, out, name=name, layers=layers)


def _branch_sum(branches: list[Tensor], name: str, layers: ModuleType) -> Tensor:
    return layers.Add(name=name)(branches) if len(branches) > 1 else branches[0]


def v3_primary(
    x: Tensor, filters: int, reparameterized: bool, *, name: str,
    layers: ModuleType = keras.layers,
) -> Tensor:
    """GhostNetV3's primary conv (before its ReLU): 1x1 conv-BN branches, or their fusion."""
    if reparameterized:
        return layers.Conv2D(filters, 1, use_bias=True, name=f"{name}_primary_conv")(x)
    return _branch_sum([
        conv_bn(x, filters, 1, activation=False, name=f"{name}_primary{i}", layers=layers)
        for i in range(V3_BRANCHES)
    ], f"{name}_primary_add", layers)


def v3_cheap(
    x: Tensor, reparameterized: bool, *, name: str, layers: ModuleType = keras.layers
) -> Tensor:
    """GhostNetV3's cheap depthwise conv (before its ReLU): scale, identity-BN and 3x3
    depthwise conv-BN branches, or their fusion."""
    if reparameterized:
        return layers.DepthwiseConv2D(
            CHEAP_KERNEL_SIZE, padding="same", use_bias=True, name=f"{name}_cheap_dwconv"
        )(x)
    return _branch_sum([
        depthwise_bn(x, 1, 1, name=f"{name}_cheap_scale", layers=layers),
        batch_norm(x, f"{name}_cheap_skip_bn", layers),
        *(depthwise_bn(x, CHEAP_KERNEL_SIZE, 1, name=f"{name}_cheap{i}", layers=layers)
          for i in range(V3_BRANCHES)),
    ], f"{name}_cheap_add", layers)


def ghost_module_v3(
    x: Tensor,
    filters: int,
    activation: bool = True,
    attention: bool = False,
    reparameterized: bool = False,
    *,
    name: str,
    layers: ModuleType = keras.layers,
    data_format: str | None = None,
) -> Tensor:
    """GhostNetV3's `GhostModuleV3` (ratio 2, 1x1 primary conv, 3x3 cheap depthwise conv).

    Training form: primary = sum of `V3_BRANCHES` 1x1 conv-BN branches (`{name}_primary{i}_*`,
    `{name}_primary_add`); cheap = sum of a 1x1 depthwise conv-BN "scale" branch
    (`{name}_cheap_scale_*`), an identity BN branch (`{name}_cheap_skip_bn`) and
    `V3_BRANCHES` 3x3 depthwise conv-BN branches (`{name}_cheap{i}_*`, `{name}_cheap_add`).
    Deploy form: `{name}_primary_conv` and `{name}_cheap_dwconv`, both with bias. Each half
    ends with ReLU when `activation`; the halves are concatenated (`{name}_concat`) and, with
    `attention` (timm's "shortcut" mode), multiplied by the DFC gate.
    """
    _channels_last_only(data_format, layers, name)
    if filters < 2 or filters % 2:
        raise ValueError(f"ghost_module_v3 {name!r}: `filters` must be even, got {filters}.")
    intrinsic = math.ceil(filters / 2)
    primary = v3_primary(x, intrinsic, reparameterized, name=name, layers=layers)
    if activation:
        primary = layers.ReLU(name=f"{name}_primary_relu")(primary)
    cheap = v3_cheap(primary, reparameterized, name=name, layers=layers)
    if activation:
        cheap = layers.ReLU(name=f"{name}_cheap_relu")(cheap)
    out = layers.Concatenate(axis=-1, name=f"{name}_concat")([primary, cheap])
    if attention:
        out = dfc_attention(x, out, name=name, layers=layers)
    return out


def depthwise_v3(
    x: Tensor,
    kernel_size: int,
    strides: int,
    reparameterized: bool = False,
    *,
    name: str,
    layers: ModuleType = keras.layers,
    data_format: str | None = None,
) -> Tensor:
    """GhostNetV3's stride-2 depthwise conv of a bottleneck, no activation.

    Training form: sum of a 1x1 depthwise conv-BN "scale" branch with the same stride
    (`{name}_scale_*`) and `V3_BRANCHES` `kernel_size` depthwise conv-BN branches
    (`{name}{i}_*`), `{name}_add`. Deploy form: `{name}_pad`, `{name}_dwconv` with bias.
    """
    _channels_last_only(data_format, layers, name)
    if reparameterized:
        x, padding = _conv_padding(x, kernel_size, strides, name, layers, "channels_last")
        return layers.DepthwiseConv2D(
            kernel_size, strides=strides, padding=padding, use_bias=True, name=f"{name}_dwconv"
        )(x)
    return _branch_sum([
        depthwise_bn(x, 1, strides, name=f"{name}_scale", layers=layers),
        *(depthwise_bn(x, kernel_size, strides, name=f"{name}{i}", layers=layers)
          for i in range(V3_BRANCHES)),
    ], f"{name}_add", layers)


def bottleneck_parts(
    version: str, block_index: int, reparameterized: bool = False
) -> dict[str, Callable[..., Tensor]]:
    """The `expand`/`project`/`downsample` parts of `ghost_bottleneck` for a GhostNet version.

    Args:
        version: `"v1"`, `"v2"` or `"v3"`.
        block_index: the block's index over the whole network (timm's `layer_idx`).
        reparameterized: GhostNetV3 deploy form.
    """
    attention = block_index >= FIRST_ATTENTION_BLOCK
    if version == "v1":
        return {}
    if version == "v2":
        return {"expand": ghost_module_v2} if attention else {}
    if version == "v3":
        return {
            "expand": partial(
                ghost_module_v3, attention=attention, reparameterized=reparameterized
            ),
            "project": partial(ghost_module_v3, reparameterized=reparameterized),
            "downsample": partial(depthwise_v3, reparameterized=reparameterized),
        }
    raise ValueError(f"`version` must be 'v1', 'v2' or 'v3'; received {version!r}.")
