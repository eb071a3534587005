"""GhostNet building blocks: Ghost module, squeeze-excite and Ghost bottleneck.

Every block is a function that takes a symbolic tensor and returns one, so the blocks compose
into any functional model. They create built-in layers only, taken from the `layers` module they
are given (`keras.layers` by default, `tf_keras.layers` for quantization-aware training), so one
definition of the architecture serves Keras 3, tf_keras/tfmot, TFLite conversion and serving.

Layer names follow keras.applications: every layer of a block is named `{name}_{part}`.

Semantics follow the reference PyTorch implementation (official code and timm), which the
published ImageNet weights were trained with:

- PyTorch pads `k // 2` on every side. Keras `"same"` pads the extra row/column only at the
  bottom/right for stride 2, so stride-2 convolutions use explicit symmetric `ZeroPadding2D`
  followed by a `"valid"` convolution.
- BatchNormalization uses PyTorch's epsilon (1e-5) and momentum 0.1 (0.9 in Keras terms).

Every block takes `data_format` (`"channels_last"` or `"channels_first"`); `None` means the
default of the Keras the `layers` module belongs to (`keras.config.image_data_format()` for
`keras.layers`, tf_keras' own setting for `tf_keras.layers`), as keras.applications does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import keras

from ghostnet_keras.data_format import channel_axis, resolve_data_format

BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9

REFERENCE_PARTS = {
    "ghost1_primary_conv": "ghost1.primary_conv.0",
    "ghost1_primary_bn": "ghost1.primary_conv.1",
    "ghost1_cheap_dwconv": "ghost1.cheap_operation.0",
    "ghost1_cheap_bn": "ghost1.cheap_operation.1",
    "ghost2_primary_conv": "ghost2.primary_conv.0",
    "ghost2_primary_bn": "ghost2.primary_conv.1",
    "ghost2_cheap_dwconv": "ghost2.cheap_operation.0",
    "ghost2_cheap_bn": "ghost2.cheap_operation.1",
    "dw_dwconv": "conv_dw",
    "dw_bn": "bn_dw",
    "se_reduce_conv": "se.conv_reduce",
    "se_expand_conv": "se.conv_expand",
    "shortcut_dw_dwconv": "shortcut.0",
    "shortcut_dw_bn": "shortcut.1",
    "shortcut_conv": "shortcut.2",
    "shortcut_bn": "shortcut.3",
}
"""The weighted layers of a Ghost bottleneck (without its `{name}_` prefix) -> their module path
in the reference (timm / official) `state_dict` (`ghostnet_keras.weights.reference_names`)."""

Tensor = Any  # a symbolic (Keras) tensor


def make_divisible(value: float, divisor: int = 4, min_value: int | None = None) -> int:
    """Rounds a channel count to a multiple of `divisor`, as the reference code does.

    The result is the nearest multiple of `divisor` (rounding half up), at least `min_value`
    (default `divisor`), and never more than 10% below `value`.

    Args:
        value: the unrounded channel count, e.g. `exp * width`.
        divisor: the multiple to round to. GhostNet uses 4.
        min_value: the smallest value returned. Defaults to `divisor`.

    Returns:
        The rounded channel count.
    """
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def batch_norm(
    x: Tensor, name: str, layers: ModuleType = keras.layers, data_format: str | None = None
) -> Tensor:
    """BatchNormalization on the channel axis, with the reference epsilon and momentum."""
    axis = channel_axis(resolve_data_format(data_format, layers))
    return layers.BatchNormalization(
        axis=axis, epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name
    )(x)


def _conv_padding(
    x: Tensor, kernel_size: int, strides: int, name: str, layers: ModuleType, data_format: str
) -> tuple[Tensor, str]:
    """Returns the input and the padding mode that reproduce PyTorch's symmetric `k // 2` pad."""
    if strides == 1:
        return x, "same"
    if kernel_size // 2:
        x = layers.ZeroPadding2D(
            padding=kernel_size // 2, data_format=data_format, name=f"{name}_pad"
        )(x)
    return x, "valid"


def conv_bn(
    x: Tensor,
    filters: int,
    kernel_size: int = 1,
    strides: int = 1,
    activation: bool = True,
    *,
    name: str,
    layers: ModuleType = keras.layers,
    data_format: str | None = None,
) -> Tensor:
    """Conv2D (no bias) + BatchNormalization (+ ReLU), padded like PyTorch.

    Layers: `{name}_pad` (stride 2 only), `{name}_conv`, `{name}_bn`, `{name}_relu`.
    """
    data_format = resolve_data_format(data_format, layers)
    x, padding = _conv_padding(x, kernel_size, strides, name, layers, data_format)
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False,
        data_format=data_format, name=f"{name}_conv",
    )(x)
    x = batch_norm(x, f"{name}_bn", layers, data_format)
    if activation:
        x = layers.ReLU(name=f"{name}_relu")(x)
    return x


def depthwise_bn(
    x: Tensor,
    kernel_size: int,
    strides: int,
    *,
    name: str,
    layers: ModuleType = keras.layers,
    data_format: str | None = None,
) -> Tensor:
    """DepthwiseConv2D (no bias) + BatchNormalization, no activation, padded like PyTorch.

    Layers: `{name}_pad` (stride 2 only), `{name}_dwconv`, `{name}_bn`.
    """
    data_format = resolve_data_format(data_format, layers)
    x, padding = _conv_padding(x, kernel_size, strides, name, layers, data_format)
    x = layers.DepthwiseConv2D(
        kernel_size, strides=strides, padding=padding, use_bias=False,
        data_format=data_format, name=f"{name}_dwconv",
    )(x)
    return batch_norm(x, f"{name}_bn", layers, data_format)


def ghost_module(
    x: Tensor,
    filters: int,
    kernel_size: int = 1,
    ratio: int = 2,
    dw_size: int = 3,
    strides: int = 1,
    activation: bool = True,
    *,
    padding: str | None = None,
    dilation_rate: int | tuple[int, int] = 1,
    name: str,
    layers: ModuleType = keras.layers,
    data_format: str | None = None,
) -> Tensor:
    """Ghost module: `filters` feature maps from a thin conv plus cheap depthwise "ghosts".

    A primary conv makes `m = ceil(filters / ratio)` intrinsic maps (same kernel and stride as
    the conv it replaces, no bias, then BN and the optional ReLU); a `dw_size x dw_size`
    depthwise conv with `depth_multiplier = ratio - 1` (stride 1, no bias, BN, optional ReLU)
    makes the ghost maps; both are concatenated on the channel axis and trimmed to `filters`.
    When `m * ratio == filters` (every GhostNet width) no trimming op is emitted.

    Reference:
        [GhostNet: More Features from Cheap Operations](https://arxiv.org/abs/1911.11907)
        (CVPR 2020), section 3.1.

    Args:
        x: input tensor in `data_format`.
        filters: number of output channels `n`.
        kernel_size: kernel of the primary conv (1 in GhostNet; the replaced conv's kernel in
            Ghost-ResNet/VGG).
        ratio: `s`, the ratio of output maps to intrinsic maps. Must be >= 2.
        dw_size: `d`, kernel of the cheap depthwise conv.
        strides: stride of the primary conv.
        activation: whether both halves end with ReLU.
        padding: padding of the primary conv. `None` reproduces PyTorch's symmetric
            `kernel_size // 2` padding; `"same"`/`"valid"` keep Keras semantics (used by
            `ghostify` to preserve the replaced conv's behaviour).
        dilation_rate: dilation of the primary conv.
        name: prefix of the layer names: `{name}_primary_conv`, `{name}_primary_bn`,
            `{name}_primary_relu`, `{name}_cheap_dwconv`, `{name}_cheap_bn`, `{name}_cheap_relu`,
            `{name}_concat` (and `{name}_trim` when trimming).
        layers: the module providing the layer classes (`keras.layers` or `tf_keras.layers`).
        data_format: `"channels_last"`, `"channels_first"`, or `None` for the `layers`
            module's global setting.

    Returns:
        A tensor with `filters` channels.
    """
    if ratio < 2:
        raise ValueError(f"ghost_module `ratio` must be an integer >= 2, got {ratio}.")
    if filters < 1:
        raise ValueError(f"ghost_module `filters` must be >= 1, got {filters}.")
    data_format = resolve_data_format(data_format, layers)
    intrinsic = math.ceil(filters / ratio)
    if padding is None:
        x, padding = _conv_padding(
            x, kernel_size, strides, f"{name}_primary", layers, data_format
        )
    primary = layers.Conv2D(
        intrinsic, kernel_size, strides=strides, padding=padding, dilation_rate=dilation_rate,
        use_bias=False, data_format=data_format, name=f"{name}_primary_conv",
    )(x)
    primary = batch_norm(primary, f"{name}_primary_bn", layers, data_format)
    if activation:
        primary = layers.ReLU(name=f"{name}_primary_relu")(primary)
    cheap = layers.DepthwiseConv2D(
        dw_size, strides=1, padding="same", depth_multiplier=ratio - 1, use_bias=False,
        data_format=data_format, name=f"{name}_cheap_dwconv",
    )(primary)
    cheap = batch_norm(cheap, f"{name}_cheap_bn", layers, data_format)
    if activation:
        cheap = layers.ReLU(name=f"{name}_cheap_relu")(cheap)
    out = layers.Concatenate(axis=channel_axis(data_format), name=f"{name}_concat")(
        [primary, cheap]
    )
    if intrinsic * ratio != filters:
        if layers is not keras.layers:
            raise ValueError(
                f"ghost_module {name!r}: trimming {intrinsic * ratio} channels to {filters} is "
                "only supported with keras.layers; choose `filters` divisible by `ratio`."
            )
        from ghostnet_keras.layers.channel_slice import ChannelSlice

        out = ChannelSlice(filters, data_format=data_format, name=f"{name}_trim")(out)
    return out


def hard_sigmoid_gate(x: Tensor, *, name: str, layers: ModuleType = keras.layers) -> Tensor:
    """The reference gate `relu6(x + 3) / 6`, as three built-in layers.

    Written as `Rescaling(offset=3)`, `ReLU(max_value=6)`, `Rescaling(1/6)`. This form means the
    same in Keras 3 and tf_keras (tf_keras' `"hard_sigmoid"` is `clip(0.2x + 0.5, 0, 1)`: wrong
    here), has no raw tensor op for tfmot to trip over, and converts to TFLite builtins that
    XNNPACK runs in float and in int8: the offset folds into the conv before it, ReLU6 fuses
    into that conv, and the scale is one MUL. (A clip to [0, 1] would lower to RELU + MINIMUM,
    which XNNPACK does not take in int8: every squeeze-excite block would leave the delegate.)

    Layers: `{name}_shift`, `{name}_relu6`, `{name}` (the scale).
    """
    x = layers.Rescaling(scale=1.0, offset=3.0, name=f"{name}_shift")(x)
    x = layers.ReLU(max_value=6.0, name=f"{name}_relu6")(x)
    return layers.Rescaling(scale=1.0 / 6.0, name=name)(x)


def squeeze_excite(
    x: Tensor,
    se_ratio: float = 0.25,
    divisor: int = 4,
    *,
    name: str,
    layers: ModuleType = keras.layers,
    data_format: str | None = None,
) -> Tensor:
    """Squeeze-and-excite with the hard-sigmoid gate, as in GhostNet (and MobileNetV3).

    Global average pool -> 1x1 conv to `make_divisible(channels * se_ratio, divisor)` with bias
    -> ReLU -> 1x1 conv back to `channels` with bias -> hard sigmoid -> multiply with the input.

    Args:
        x: input tensor in `data_format`, with a known channel count.
        se_ratio: reduction ratio of the hidden layer.
        divisor: the hidden width is rounded to a multiple of it.
        name: prefix of the layer names: `{name}_squeeze`, `{name}_reduce_conv`, `{name}_relu`,
            `{name}_expand_conv`, `{name}_gate_shift`, `{name}_gate_relu6`, `{name}_gate`,
            `{name}_excite`.
        layers: the module providing the layer classes (`keras.layers` or `tf_keras.layers`).
        data_format: `"channels_last"`, `"channels_first"`, or `None` for the `layers`
            module's global setting.

    Returns:
        The re-weighted input, same shape as `x`.
    """
    data_format = resolve_data_format(data_format, layers)
    channels = x.shape[channel_axis(data_format)]
    if channels is None:
        raise ValueError(f"squeeze_excite {name!r} needs a known channel count, got {x.shape}.")
    reduced = make_divisible(channels * se_ratio, divisor)
    s = layers.GlobalAveragePooling2D(
        keepdims=True, data_format=data_format, name=f"{name}_squeeze"
    )(x)
    s = layers.Conv2D(
        reduced, 1, use_bias=True, data_format=data_format, name=f"{name}_reduce_conv"
    )(s)
    s = layers.ReLU(name=f"{name}_relu")(s)
    s = layers.Conv2D(
        channels, 1, use_bias=True, data_format=data_format, name=f"{name}_expand_conv"
    )(s)
    s = hard_sigmoid_gate(s, name=f"{name}_gate", layers=layers)
    return layers.Multiply(name=f"{name}_excite")([x, s])


def ghost_bottleneck(
    x: Tensor,
    mid_channels: int,
    out_channels: int,
    kernel_size: int = 3,
    strides: int = 1,
    se_ratio: float = 0.0,
    *,
    name: str,
    layers: ModuleType = keras.layers,
    data_format: str | None = None,
    expand: Callable[..., Tensor] = ghost_module,
    project: Callable[..., Tensor] = ghost_module,
    downsample: Callable[..., Tensor] = depthwise_bn,
) -> Tensor:
    """Ghost bottleneck (G-bneck), the GhostNet block.

    ghost1 (activated Ghost module to `mid_channels`) -> for stride 2, a `kernel_size`
    depthwise conv + BN without ReLU -> optional squeeze-excite -> ghost2 (Ghost module to
    `out_channels`, BN only) -> add the shortcut. The shortcut is the identity when the input has
    `out_channels` channels and `strides == 1`; otherwise a `kernel_size` depthwise conv with the
    block's stride + BN, then a 1x1 conv + BN, without activations. No activation after the add.

    Args:
        x: input tensor in `data_format`.
        mid_channels: width of the expansion (ghost1 output).
        out_channels: output channels.
        kernel_size: kernel of the stride-2 depthwise conv and of the shortcut depthwise conv.
        strides: 1 or 2.
        se_ratio: squeeze-excite reduction ratio; 0 disables squeeze-excite.
        name: prefix of the layer names (`{name}_ghost1_*`, `{name}_dw_*`, `{name}_se_*`,
            `{name}_ghost2_*`, `{name}_shortcut_*`, `{name}_add`).
        layers: the module providing the layer classes (`keras.layers` or `tf_keras.layers`).
        data_format: `"channels_last"`, `"channels_first"`, or `None` for the `layers`
            module's global setting.
        expand, project, downsample: the block's parts: ghost1 (called like `ghost_module`),
            ghost2 (likewise) and the stride-2 depthwise conv (called like `depthwise_bn`).
            GhostNetV2/V3 swap them (see `ghostnet_keras.layers.blocks_v2v3`).

    Returns:
        Output tensor with `out_channels` channels.
    """
    if strides not in (1, 2):
        raise ValueError(f"ghost_bottleneck `strides` must be 1 or 2, got {strides}.")
    data_format = resolve_data_format(data_format, layers)
    kwargs = {"layers": layers, "data_format": data_format}
    in_channels = x.shape[channel_axis(data_format)]
    shortcut = x
    x = expand(x, mid_channels, activation=True, name=f"{name}_ghost1", **kwargs)
    if strides > 1:
        x = downsample(x, kernel_size, strides, name=f"{name}_dw", **kwargs)
    if se_ratio:
        x = squeeze_excite(x, se_ratio, name=f"{name}_se", **kwargs)
    x = project(x, out_channels, activation=False, name=f"{name}_ghost2", **kwargs)
    if in_channels != out_channels or strides != 1:
        shortcut = depthwise_bn(
            shortcut, kernel_size, strides, name=f"{name}_shortcut_dw", **kwargs
        )
        shortcut = conv_bn(
            shortcut, out_channels, 1, activation=False, name=f"{name}_shortcut", **kwargs
        )
    return layers.Add(name=f"{name}_add")([x, shortcut])
