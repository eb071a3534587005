"""GhostNet for Keras 3, with the keras.applications interface.

Reference:
    [GhostNet: More Features from Cheap Operations](https://arxiv.org/abs/1911.11907)
    (CVPR 2020)
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any, NamedTuple

import keras

from ghostnet_keras import imagenet
from ghostnet_keras.data_format import channel_axis, resolve_data_format
from ghostnet_keras.layers.blocks import conv_bn, ghost_bottleneck, make_divisible
from ghostnet_keras.layers.blocks_v2v3 import (
    ATTENTION_MIN_SIZE,
    ATTENTION_VERSIONS,
    bottleneck_parts,
)
from ghostnet_keras.models.arguments import (
    MIN_SIZE,
    image_input,
    model_inputs,
    validate_head,
    validate_input_shape,
    validate_weights_path,
)
from ghostnet_keras.preprocessing import normalization_layer
from ghostnet_keras.weights.imagenet_cache import IMAGENET_VARIANTS, imagenet_variant
from ghostnet_keras.weights.loading import is_training_form, load_ghostnet_weights


class BlockSpec(NamedTuple):
    """One Ghost bottleneck of the GhostNet table (paper table 1)."""

    kernel_size: int
    expansion: int
    out_channels: int
    se_ratio: float
    strides: int


# Stages as in the reference code: the weights are keyed `blocks.{stage}.{index}`, and layer
# names here are `block{stage}{letter}` with the same stage number (`blocks.6.3` is `block6d`).
STAGES: tuple[tuple[BlockSpec, ...], ...] = (
    (BlockSpec(3, 16, 16, 0.0, 1),),
    (BlockSpec(3, 48, 24, 0.0, 2),),
    (BlockSpec(3, 72, 24, 0.0, 1),),
    (BlockSpec(5, 72, 40, 0.25, 2),),
    (BlockSpec(5, 120, 40, 0.25, 1),),
    (BlockSpec(3, 240, 80, 0.0, 2),),
    (
        BlockSpec(3, 200, 80, 0.0, 1),
        BlockSpec(3, 184, 80, 0.0, 1),
        BlockSpec(3, 184, 80, 0.0, 1),
        BlockSpec(3, 480, 112, 0.25, 1),
        BlockSpec(3, 672, 112, 0.25, 1),
    ),
    (BlockSpec(5, 672, 160, 0.25, 2),),
    (
        BlockSpec(5, 960, 160, 0.0, 1),
        BlockSpec(5, 960, 160, 0.25, 1),
        BlockSpec(5, 960, 160, 0.0, 1),
        BlockSpec(5, 960, 160, 0.25, 1),
    ),
)
STEM_CHANNELS = 16
TOP_CHANNELS = 960
HEAD_CHANNELS = 1280
DEFAULT_SIZE = 224

# Output of each stride, as in timm's `features_only` GhostNet (stride 32 is the 960-channel
# `top` conv, timm's `blocks.9`).
FEATURE_LAYERS = {
    2: "block0a_add",
    4: "block2a_add",
    8: "block4a_add",
    16: "block6e_add",
    32: "top_relu",
}

IMAGENET_WIDTH = 1.0
VERSIONS = ("v1", "v2", "v3")


def variant_name(version: str, width: float) -> str:
    """timm's name of a GhostNet, e.g. `("v2", 1.3)` -> `"ghostnetv2_130"`."""
    return f"ghostnet{'' if version == 'v1' else version}_{_width_tag(width)}"


BASE_DOCSTRING = """Instantiates the GhostNet{width_text} architecture.

Reference:
- [GhostNet: More Features from Cheap Operations](https://arxiv.org/abs/1911.11907)
  (CVPR 2020)

The architecture, weight layout and numerics are those of the reference PyTorch code (official
and timm), so the published ImageNet weights reproduce their logits. With width 1.0 the model
has 5.18M parameters (5.20M counting BatchNorm moving statistics) and 141.15M multiply-adds at
224 x 224.

The data format is `keras.config.image_data_format()` at construction, as in keras.applications:
`"channels_last"` (NHWC, the default) or `"channels_first"` (NCHW, often faster on GPUs with the
JAX and PyTorch backends; TensorFlow runs NCHW convolutions on GPU only). Every layer records its
format in the config, so a saved `.keras` file restores it. Weights are the same in both
formats: every weights file loads into either. `ghostnet_keras.to_channels_last(model)` makes a
channels-last copy (for TFLite, TF Serving and quantization-aware training).

Note: each Keras Application expects a specific kind of input preprocessing. For GhostNet,
preprocessing is included in the model by default (`include_preprocessing=True`): the model
takes RGB inputs with values in [0, 255]. `ghostnet_keras.preprocess_input` is a pass-through.
The reference evaluation resizes the shorter side to 256 (bicubic) and centre-crops 224.

Args:{width_arg}
    include_top: whether to include the classification head (global pool, 1x1 conv to 1280 with
        bias, ReLU, dropout and the dense classifier). Defaults to `True`. Without it the model
        ends with the 960-channel feature map (stride 32).
    weights: one of `None` (random initialization), `"imagenet"` (the published ImageNet
        weights, width 1.0 only; downloaded once from the Hugging Face hub with
        `keras.utils.get_file` and converted and cached in the Keras cache directory), or the
        path to a weights file: `.weights.h5` or `.keras` (Keras), `.safetensors` or `.pth`
        (the reference PyTorch layout; PyTorch is not needed to read them). Loading is
        all-or-nothing: a file that does not fit raises `WeightsError` naming the missing,
        unused or mis-shaped tensors (docs/loading.md). Defaults to `None`.
    input_tensor: optional Keras tensor (i.e. output of `keras.Input()`) to use as image input
        for the model.
    input_shape: optional shape tuple `(height, width, channels)` (`(channels, height, width)`
        in channels-first). Height and width may be `None` (any size; the weights do not
        depend on it) or at least 32. Any number of channels with `weights=None` (grey,
        RGBA, multispectral); pretrained weights need 3. Defaults to `(224, 224, 3)`.
    pooling: optional pooling mode for feature extraction when `include_top` is `False`:
        `None` (the 4D output of the last conv), `"avg"` or `"max"` (global pooling, 2D
        output).
    classes: optional number of classes to classify images into, only to be specified if
        `include_top` is `True` and if no `weights` argument is specified. Defaults to `1000`.
    classifier_activation: a `str` or callable. The activation function to use on the "top"
        layer. Ignored unless `include_top=True`. Set `classifier_activation=None` to return
        the logits of the "top" layer. Defaults to `"softmax"`. When loading pretrained
        weights, `classifier_activation` can only be `None` or `"softmax"`.
    dropout_rate: dropout rate before the classifier. Defaults to `0.2`.
    include_preprocessing: whether the model normalises its inputs itself: values in
        [0, 255] -> `(x / 255 - mean) / std` per channel (`ghostnet_keras.normalize_input`).
        RGB (3 channels) uses the ImageNet mean `(0.485, 0.456, 0.406)` and std
        `(0.229, 0.224, 0.225)`; any other channel count (1 for grey, 4 for RGBA, ...) uses
        their averages, mean 0.449 and std 0.226, on every channel. Defaults to `True`.
    name: the name of the model (string). Defaults to `"ghostnet_{{width}}"`.

Returns:
    A model instance (a flat functional `keras.Model` of built-in layers).
"""


def _width_tag(width: float) -> str:
    return f"{round(width * 100):03d}" if abs(width * 100 - round(width * 100)) < 1e-9 else (
        str(width).replace(".", "_")
    )


def _validate_arguments(
    width: float,
    include_top: bool,
    weights: str | os.PathLike | None,
    pooling: str | None,
    classes: int,
    classifier_activation: Any,
    dropout_rate: float,
    version: str = "v1",
) -> None:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"`width` must be a number > 0 (e.g. 0.5, 1.0, 1.3); received {width!r}.")
    if version not in VERSIONS:
        raise ValueError(f"`version` must be one of {VERSIONS}; received {version!r}.")
    validate_weights_path(weights, allowed=("imagenet",))
    if weights == "imagenet" and imagenet_variant(version, width) is None:
        widths = [w for v, w in IMAGENET_VARIANTS if v == version]
        raise ValueError(
            f"ImageNet weights exist only for width {' or '.join(map(str, widths))}; received "
            f"width={width}. Use weights=None or a path to your own weights."
        )
    if weights == "imagenet" and include_top and classes != imagenet.NUM_CLASSES:
        raise ValueError(
            'If using `weights="imagenet"` with `include_top=True`, `classes` should be '
            f"{imagenet.NUM_CLASSES}. Received classes={classes}"
        )
    if not 0.0 <= dropout_rate < 1.0:
        raise ValueError(f"`dropout_rate` must be in [0, 1); received {dropout_rate!r}.")
    validate_head(include_top, weights, pooling, classes, classifier_activation)


def classification_head(
    x: Any,
    classes: int,
    classifier_activation: Any = "softmax",
    dropout_rate: float = 0.2,
    layers: ModuleType = keras.layers,
    data_format: str = "channels_last",
) -> Any:
    """GhostNet's head on the stride-32 features: global average pool, 1x1 conv to 1280 with
    bias, ReLU, dropout and the dense classifier (float32, so that the outputs stay float32
    under a mixed precision policy). Layer names are the reference weights' (`head_conv`,
    `predictions`)."""
    x = layers.GlobalAveragePooling2D(keepdims=True, data_format=data_format, name="avg_pool")(x)
    x = layers.Conv2D(
        HEAD_CHANNELS, 1, use_bias=True, data_format=data_format, name="head_conv"
    )(x)
    x = layers.ReLU(name="head_relu")(x)
    x = layers.Flatten(data_format=data_format, name="flatten")(x)
    if dropout_rate > 0:
        x = layers.Dropout(dropout_rate, name="dropout")(x)
    return layers.Dense(
        classes, activation=classifier_activation, dtype="float32", name="predictions"
    )(x)


def build_ghostnet(
    width: float = 1.0,
    include_top: bool = True,
    input_tensor: Any = None,
    input_shape: tuple[int | None, ...] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    dropout_rate: float = 0.2,
    include_preprocessing: bool = True,
    name: str | None = None,
    keras_module: ModuleType = keras,
    version: str = "v1",
    reparameterized: bool = False,
    data_format: str | None = None,
) -> Any:
    """Builds the GhostNet graph (no weights, no validation) with a given Keras module.

    The one definition of the architecture: `GhostNet`, `GhostNetV2` and `GhostNetV3` call it
    with Keras 3, the QAT path with `tf_keras`. Both produce the same layer names, so weights
    copy by name. `version` (`"v1"`, `"v2"`, `"v3"`) picks the bottleneck parts of each block
    (`ghostnet_keras.layers.blocks_v2v3.bottleneck_parts`); `reparameterized` builds GhostNetV3's
    deploy form. `data_format` `None` is the Keras module's global `image_data_format()`.
    """
    layers = keras_module.layers
    data_format = resolve_data_format(data_format, layers)
    if version in ATTENTION_VERSIONS and data_format != "channels_last":
        raise ValueError(
            f"GhostNet{version.upper()} is built channels_last only (its DFC attention and "
            "re-parameterised branches are not written for channels_first yet); set "
            "keras.config.set_image_data_format('channels_last')."
        )
    img_input = image_input(input_tensor, input_shape, keras_module)
    x = img_input
    if include_preprocessing:
        channels = x.shape[channel_axis(data_format)]
        x = normalization_layer(layers, channels, data_format)(x)
    kwargs = {"layers": layers, "data_format": data_format}
    x = conv_bn(x, make_divisible(STEM_CHANNELS * width), 3, strides=2, name="stem", **kwargs)
    block_number = 0
    for stage_index, stage in enumerate(STAGES):
        for block_index, spec in enumerate(stage):
            parts = bottleneck_parts(version, block_number, reparameterized)
            block_number += 1
            x = ghost_bottleneck(
                x,
                mid_channels=make_divisible(spec.expansion * width),
                out_channels=make_divisible(spec.out_channels * width),
                kernel_size=spec.kernel_size,
                strides=spec.strides,
                se_ratio=spec.se_ratio,
                name=f"block{stage_index}{chr(ord('a') + block_index)}",
                **kwargs,
                **parts,
            )
    x = conv_bn(x, make_divisible(TOP_CHANNELS * width), 1, name="top", **kwargs)

    if include_top:
        x = classification_head(
            x, classes, classifier_activation, dropout_rate, layers=layers,
            data_format=data_format,
        )
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(data_format=data_format, name="max_pool")(x)

    inputs = model_inputs(input_tensor, img_input, keras_module)
    return keras_module.Model(inputs, x, name=name or variant_name(version, width))


def create_ghostnet(
    version: str = "v1",
    width: float = 1.0,
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int | None, ...] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    dropout_rate: float = 0.2,
    include_preprocessing: bool = True,
    name: str | None = None,
    reparameterized: bool = False,
) -> keras.Model:
    """Validates the arguments, builds a GhostNet of any version and loads its weights."""
    _validate_arguments(
        width, include_top, weights, pooling, classes, classifier_activation, dropout_rate,
        version,
    )
    data_format = resolve_data_format(None)
    input_shape = validate_input_shape(
        input_shape, input_tensor, DEFAULT_SIZE, needs_rgb=weights is not None,
        min_size=ATTENTION_MIN_SIZE if version in ATTENTION_VERSIONS else MIN_SIZE,
        data_format=data_format,
    )
    arguments = dict(
        width=float(width),
        include_top=include_top,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        dropout_rate=dropout_rate,
        include_preprocessing=include_preprocessing,
        name=name,
        version=version,
        data_format=data_format,
    )
    model = build_ghostnet(**arguments, reparameterized=reparameterized)
    if weights is None:
        return model
    def build(**overrides: Any) -> keras.Model:  # this architecture, for the weight loaders
        return build_ghostnet(**{**arguments, "input_tensor": None, "name": None, **overrides})

    if reparameterized and is_training_form(weights):
        # Training-form weights (e.g. the published ones): load them into the training form,
        # then fuse its branches into this deploy-form model.
        from ghostnet_keras.models.reparameterize import reparameterize

        trained = build()
        load_ghostnet_weights(trained, weights, version=version, width=float(width), build=build)
        reparameterize(trained, into=model)
    else:
        load_ghostnet_weights(model, weights, version=version, width=float(width), build=build)
    return model


def GhostNet(
    width: float = 1.0,
    include_top: bool = True,
    weights: str | os.PathLike | None = None,
    input_tensor: Any = None,
    input_shape: tuple[int | None, ...] | None = None,
    pooling: str | None = None,
    classes: int = 1000,
    classifier_activation: Any = "softmax",
    dropout_rate: float = 0.2,
    include_preprocessing: bool = True,
    name: str | None = None,
) -> keras.Model:
    return create_ghostnet(
        "v1",
        width=width,
        include_top=include_top,
        weights=weights,
        input_tensor=input_tensor,
        input_shape=input_shape,
        pooling=pooling,
        classes=classes,
        classifier_activation=classifier_activation,
        dropout_rate=dropout_rate,
        include_preprocessing=include_preprocessing,
        name=name,
    )


def fixed_width_constructor(
    factory: Any, width: float, public_name: str, docstring: str
) -> Any:
    """A keras.applications-style constructor of `factory` (`GhostNet`...) at one width."""

    def constructor(
        include_top: bool = True,
        weights: str | os.PathLike | None = None,
        input_tensor: Any = None,
        input_shape: tuple[int | None, ...] | None = None,
        pooling: str | None = None,
        classes: int = 1000,
        classifier_activation: Any = "softmax",
        dropout_rate: float = 0.2,
        include_preprocessing: bool = True,
        name: str | None = None,
        **kwargs: Any,
    ) -> keras.Model:
        return factory(
            width=width,
            include_top=include_top,
            weights=weights,
            input_tensor=input_tensor,
            input_shape=input_shape,
            pooling=pooling,
            classes=classes,
            classifier_activation=classifier_activation,
            dropout_rate=dropout_rate,
            include_preprocessing=include_preprocessing,
            name=name,
            **kwargs,
        )

    constructor.__name__ = constructor.__qualname__ = public_name
    constructor.__doc__ = docstring
    return constructor


def _fixed_width_constructor(width: float, public_name: str) -> Any:
    return fixed_width_constructor(
        GhostNet, width, public_name,
        BASE_DOCSTRING.format(width_text=f" {width}x", width_arg=""),
    )


GhostNet.__doc__ = BASE_DOCSTRING.format(
    width_text="",
    width_arg=(
        "\n    width: width multiplier, any number > 0 (0.5, 1.0 and 1.3 are the paper's). Every"
        "\n        channel count but the 1280 head is scaled and rounded to a multiple of 4."
        "\n        Defaults to `1.0`."
    ),
)
GhostNet050 = _fixed_width_constructor(0.5, "GhostNet050")
GhostNet100 = _fixed_width_constructor(1.0, "GhostNet100")
GhostNet130 = _fixed_width_constructor(1.3, "GhostNet130")


def feature_extractor(
    model: keras.Model, strides: tuple[int, ...] = (4, 8, 16, 32), name: str | None = None
) -> keras.Model:
    """Returns a model that outputs the multi-scale features of a GhostNet, for detection.

    The outputs are a dict `{"stride_4": ..., "stride_8": ..., ...}`: for each stride, the
    output of the last block at that resolution (the same points as timm's `features_only`).
    The feature model shares layers (and weights) with `model`.

    Example:

    ```python
    backbone = ghostnet_keras.GhostNet(include_top=False, input_shape=(None, None, 3))
    features = ghostnet_keras.feature_extractor(backbone)
    maps = features(images)  # maps["stride_8"]: (N, H/8, W/8, 40); (N, 40, H/8, W/8) NCHW
    ```

    Args:
        model: a GhostNet model (any width, with or without top).
        strides: which of 2, 4, 8, 16, 32 to return. Defaults to `(4, 8, 16, 32)`.
        name: name of the feature model. Defaults to `"{model.name}_features"`.

    Returns:
        A functional `keras.Model` with a dict output.
    """
    unknown = [s for s in strides if s not in FEATURE_LAYERS]
    if unknown or not strides:
        raise ValueError(
            f"`strides` must be a non-empty subset of {tuple(FEATURE_LAYERS)}; received {strides}."
        )
    outputs = {}
    for stride in strides:
        try:
            outputs[f"stride_{stride}"] = model.get_layer(FEATURE_LAYERS[stride]).output
        except ValueError as error:
            raise ValueError(
                f"{model.name!r} is not a GhostNet: it has no layer {FEATURE_LAYERS[stride]!r}."
            ) from error
    return keras.Model(model.inputs, outputs, name=name or f"{model.name}_features")
