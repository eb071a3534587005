"""ResNet-50 in the layout of the official Ghost-ResNet-50 code, and `GhostResNet50`.

The ResNet-50 here is the "v1.5" variant of torchvision and of the official Ghost-ResNet-50
code: the stride of a downsampling bottleneck sits on its 3x3 conv (keras.applications' ResNet50
is v1, with the stride on the first 1x1 conv, hence 5.7% fewer multiply-adds). Convs have no
bias; each is followed by BatchNormalization (epsilon 1e-5).
"""

from __future__ import annotations

import os
from typing import Any

import keras

from ghostnet_keras.data_format import channel_axis, resolve_data_format
from ghostnet_keras.layers.blocks import batch_norm
from ghostnet_keras.models.arguments import (
    image_input,
    model_inputs,
    pooled_classifier,
    validate_head,
    validate_input_shape,
    validate_weights_path,
)
from ghostnet_keras.models.ghostify import ghostify
from ghostnet_keras.preprocessing import normalization_layer

# (blocks, bottleneck width) per stage; output channels are 4x the width.
RESNET50_STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))
STEM_CONV = "conv1_conv"


def _conv_bn(
    x: Any, filters: int, kernel_size: int, strides: int, name: str, activation: bool = True
) -> Any:
    if strides > 1 and kernel_size > 1:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    else:
        padding = "same"
    x = keras.layers.Conv2D(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False,
        name=f"{name}_conv",
    )(x)
    x = batch_norm(x, f"{name}_bn")
    if activation:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def _bottleneck(x: Any, width: int, strides: int, name: str) -> Any:
    out_channels = 4 * width
    shortcut = x
    if strides != 1 or x.shape[channel_axis(resolve_data_format(None))] != out_channels:
        shortcut = _conv_bn(x, out_channels, 1, strides, f"{name}_0", activation=False)
    x = _conv_bn(x, width, 1, 1, f"{name}_1")
    x = _conv_bn(x, width, 3, strides, f"{name}_2")
    x = _conv_bn(x, out_channels, 1, 1, f"{name}_3", activation=False)
    x = keras.layers.Add(name=f"{name}_add")([shortcut, x])
    return keras.layers.ReLU(name=f"{name}_out")(x)


def resnet50_v15(
    include_top: bool = True,
    input_tensor: Any = None,
    input_shape: tuple[int | None, ...] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    include_preprocessing: bool = True,
    name: str = "resnet50_v15",
) -> keras.Model:
    """ResNet-50 v1.5 (stride on the 3x3 conv), the base of the official Ghost-ResNet-50.

    Layer names follow keras.applications ResNet50 (`conv1_conv`, `conv2_block1_1_conv`, ...).
    Arguments as in `GhostResNet50` (no weights); the data format is
    `keras.config.image_data_format()`.
    """
    validate_head(include_top, None, pooling, classes, classifier_activation)
    input_shape = validate_input_shape(input_shape, input_tensor, 224, needs_rgb=False)
    img_input = image_input(input_tensor, input_shape)
    x = img_input
    if include_preprocessing:
        channels = x.shape[channel_axis(resolve_data_format(None))]
        x = normalization_layer(channels=channels)(x)
    x = _conv_bn(x, 64, 7, 2, "conv1")
    x = keras.layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = keras.layers.MaxPooling2D(3, strides=2, name="pool1_pool")(x)
    for stage_index, (blocks, width) in enumerate(RESNET50_STAGES):
        for block_index in range(blocks):
            strides = 2 if block_index == 0 and stage_index > 0 else 1
            x = _bottleneck(x, width, strides, f"conv{stage_index + 2}_block{block_index + 1}")
    x = pooled_classifier(x, include_top, pooling, classes, classifier_activation)
    return keras.Model(model_inputs(input_tensor, img_input), x, name=name)


def GhostResNet50(
    ratio: int = 2,
    dw_size: int = 3,
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int | None, ...] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    include_preprocessing: bool = True,
    name: str | None = None,
) -> keras.Model:
    """Instantiates Ghost-ResNet-50.

    Reference:
    - [GhostNet: More Features from Cheap Operations](https://arxiv.org/abs/1911.11907)
      (CVPR 2020), section 4.1.2 and table 5.

    ResNet-50 (v1.5, the official code's layout) with the 7x7 stem conv and the classifier
    kept and every other conv, the 1x1 projection shortcuts included, replaced by a Ghost
    module (`ghostify`). At 224 x 224: s=2 has 14.01M parameters and 2.15G multiply-adds,
    s=4 8.20M and 1.18G (paper: 13.0M / 2.2B and 6.5M / 1.2B; see docs/plug_and_play.md).

    No ImageNet weights are published for it; `weights` takes `None` or a Keras weights file.
    The model takes RGB in [0, 255] and normalises it itself (`include_preprocessing=True`; other
    channel counts as in `GhostNet`). The data format is `keras.config.image_data_format()`.

    Args:
        ratio: `s`, the Ghost modules' intrinsic-to-output ratio. Defaults to `2`.
        dw_size: `d`, kernel of the cheap depthwise convs. Defaults to `3`.
        include_top: whether to include the global pool and the dense classifier.
        weights: `None` or the path to a `.weights.h5` / `.keras` file.
        input_tensor: optional Keras tensor to use as image input for the model.
        input_shape: optional shape tuple `(height, width, channels)` (`(channels, height,
            width)` channels-first); defaults to `(224, 224, 3)`.
        pooling: `None`, `"avg"` or `"max"`: feature pooling when `include_top=False`.
        classes: number of classes with `include_top=True`. Defaults to `1000`.
        classifier_activation: activation of the classifier; `None` returns logits.
        include_preprocessing: whether the model normalises its RGB [0, 255] inputs.
        name: model name. Defaults to `"ghost_resnet50_s{ratio}_d{dw_size}"`.

    Returns:
        A flat functional `keras.Model`.
    """
    validate_weights_path(weights, allowed=())
    validate_head(include_top, weights, pooling, classes, classifier_activation)
    if input_tensor is not None and keras.backend.is_keras_tensor(input_tensor):
        input_shape = tuple(input_tensor.shape[1:])
    base = resnet50_v15(
        include_top=include_top, input_tensor=None, input_shape=input_shape,
        pooling=pooling, classes=classes, classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing,
    )
    model = ghostify(
        base, ratio=ratio, dw_size=dw_size, keep=(STEM_CONV,), copy_weights=False,
        name=name or f"ghost_resnet50_s{ratio}_d{dw_size}",
        input_tensors=None if input_tensor is None else image_input(input_tensor, input_shape),
    )
    if weights is not None:
        from ghostnet_keras.weights.loading import load_keras_weights

        load_keras_weights(model, weights)
    return model
