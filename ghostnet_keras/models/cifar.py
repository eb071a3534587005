"""The CIFAR-10 models of the paper's table 3, and their Ghost versions.

- `vgg16`: the CIFAR VGG-16 (13 3x3 convs with BN and ReLU, five 2x2 max pools, then
  dense 512 -> ReLU -> dense `classes`): 15.0M parameters, 313M multiply-adds at 32 x 32.
- `resnet56`: He et al.'s CIFAR ResNet-56 (3 stages of 9 basic blocks, 16/32/64 channels,
  parameter-free "option A" shortcuts: stride-2 subsampling and zero channels), 0.85M / 125M.
- `ghost_vgg16`, `ghost_resnet56`: the same with every conv but the first made a Ghost module
  (`ghostify`), with `ratio` (s) and `dw_size` (d) for the paper's ablation.

Inputs are images with values in [0, 255]; the models scale them to [0, 1] themselves
(`include_preprocessing=True`). Standard per-channel CIFAR normalisation is left to BN. The data
format is `keras.config.image_data_format()` (`input_shape` defaults to `(32, 32, 3)`, or
`(3, 32, 32)` channels-first).
"""

from __future__ import annotations

from typing import Any

import keras

from ghostnet_keras.data_format import channel_axis, resolve_data_format
from ghostnet_keras.layers.blocks import batch_norm
from ghostnet_keras.models.ghostify import ghostify

VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M")
RESNET56_BLOCKS = 9
RESNET56_CHANNELS = (16, 32, 64)
CIFAR_SIZE = 32


def _channels(x: Any) -> int:
    return x.shape[channel_axis(resolve_data_format(None))]


def _inputs(
    input_shape: tuple[int, int, int] | None, include_preprocessing: bool
) -> tuple[Any, Any]:
    first = resolve_data_format(None) == "channels_first"
    if input_shape is None:
        input_shape = (3, CIFAR_SIZE, CIFAR_SIZE) if first else (CIFAR_SIZE, CIFAR_SIZE, 3)
    if len(input_shape) != 3 or input_shape[0 if first else -1] is None:
        layout = "(channels, height, width)" if first else "(height, width, channels)"
        raise ValueError(f"`input_shape` must be {layout}; got {input_shape}.")
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Rescaling(1.0 / 255, name="preprocessing")(inputs) if include_preprocessing \
        else inputs
    return inputs, x


def _conv_bn_relu(x: Any, filters: int, strides: int, name: str, relu: bool = True) -> Any:
    x = keras.layers.Conv2D(
        filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = batch_norm(x, f"{name}_bn")
    return keras.layers.ReLU(name=f"{name}_relu")(x) if relu else x


def vgg16(
    classes: int = 10,
    input_shape: tuple[int, int, int] | None = None,
    include_preprocessing: bool = True,
    classifier_activation: Any = "softmax",
    name: str = "vgg16_cifar",
) -> keras.Model:
    """The CIFAR VGG-16 of the paper's table 3 (15.0M parameters, 313M MACs at 32 x 32)."""
    inputs, x = _inputs(input_shape, include_preprocessing)
    conv_index, pool_index = 0, 0
    for item in VGG16_CONFIG:
        if item == "M":
            pool_index += 1
            x = keras.layers.MaxPooling2D(2, name=f"pool{pool_index}")(x)
        else:
            conv_index += 1
            x = _conv_bn_relu(x, item, 1, f"block{pool_index + 1}_conv{conv_index}")
    spatial = inputs.shape[2:] if resolve_data_format(None) == "channels_first" else (
        inputs.shape[1:3]
    )
    x = keras.layers.Flatten(name="flatten")(x) if tuple(spatial) == (32, 32) else \
        keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dense(512, activation="relu", name="fc1")(x)
    x = keras.layers.Dense(
        classes, activation=classifier_activation, dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, x, name=name)


def _option_a_shortcut(x: Any, filters: int, strides: int, name: str) -> Any:
    """He et al.'s parameter-free shortcut: subsample, then pad with zero channels."""
    channels = _channels(x)
    if strides == 1 and channels == filters:
        return x
    if filters != 2 * channels:
        raise ValueError("option-A shortcuts double the channels")
    x = keras.layers.MaxPooling2D(1, strides=strides, name=f"{name}_subsample")(x)
    zeros = keras.layers.Subtract(name=f"{name}_zeros")([x, x])
    axis = channel_axis(resolve_data_format(None))
    return keras.layers.Concatenate(axis=axis, name=f"{name}_pad_channels")([x, zeros])


def resnet56(
    classes: int = 10,
    input_shape: tuple[int, int, int] | None = None,
    include_preprocessing: bool = True,
    classifier_activation: Any = "softmax",
    name: str = "resnet56_cifar",
) -> keras.Model:
    """He et al.'s CIFAR ResNet-56 (0.85M parameters, 125M MACs at 32 x 32)."""
    inputs, x = _inputs(input_shape, include_preprocessing)
    x = _conv_bn_relu(x, RESNET56_CHANNELS[0], 1, "stem")
    for stage, filters in enumerate(RESNET56_CHANNELS):
        for block in range(RESNET56_BLOCKS):
            strides = 2 if stage > 0 and block == 0 else 1
            prefix = f"stage{stage + 1}_block{block + 1}"
            shortcut = _option_a_shortcut(x, filters, strides, f"{prefix}_shortcut")
            y = _conv_bn_relu(x, filters, strides, f"{prefix}_1")
            y = _conv_bn_relu(y, filters, 1, f"{prefix}_2", relu=False)
            x = keras.layers.Add(name=f"{prefix}_add")([shortcut, y])
            x = keras.layers.ReLU(name=f"{prefix}_out")(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dense(
        classes, activation=classifier_activation, dtype="float32", name="predictions"
    )(x)
    return keras.Model(inputs, x, name=name)


def ghost_vgg16(ratio: int = 2, dw_size: int = 3, **kwargs: Any) -> keras.Model:
    """Ghost-VGG-16: `vgg16` with every conv but the first a Ghost module (s, d)."""
    return ghostify(vgg16(**kwargs), ratio=ratio, dw_size=dw_size, copy_weights=False,
                    name=f"ghost_vgg16_s{ratio}_d{dw_size}")


def ghost_resnet56(ratio: int = 2, dw_size: int = 3, **kwargs: Any) -> keras.Model:
    """Ghost-ResNet-56: `resnet56` with every conv but the first a Ghost module (s, d)."""
    return ghostify(resnet56(**kwargs), ratio=ratio, dw_size=dw_size, copy_weights=False,
                    name=f"ghost_resnet56_s{ratio}_d{dw_size}")
