"""keras.applications-style argument validation and input/head plumbing shared by the models."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import keras

from ghostnet_keras.data_format import channel_axis, resolve_data_format

MIN_SIZE = 32


def validate_input_shape(
    input_shape: tuple[int | None, ...] | None,
    input_tensor: Any,
    default_size: int,
    needs_rgb: bool,
    min_size: int = MIN_SIZE,
    data_format: str | None = None,
) -> tuple[int | None, ...] | None:
    """Checks `input_shape` and returns it, defaulting to a square RGB image.

    The shape is `(height, width, channels)` in `"channels_last"` and `(channels, height,
    width)` in `"channels_first"` (`data_format=None`: `keras.config.image_data_format()`).
    Any channel count is accepted unless `needs_rgb` (pretrained weights): then exactly 3.
    """
    data_format = resolve_data_format(data_format)
    layout = "(channels, height, width)" if data_format == "channels_first" else (
        "(height, width, channels)"
    )
    if input_shape is None:
        if input_tensor is not None:
            if keras.backend.is_keras_tensor(input_tensor):
                shape = tuple(input_tensor.shape)
                channels = shape[channel_axis(data_format)] if len(shape) == 4 else None
                if channels is None:
                    raise ValueError(
                        f"`input_tensor` must be a 4D image tensor with a known channel count in "
                        f"{data_format} {layout}; received shape {shape}."
                    )
                if needs_rgb:
                    _check_rgb(channels, "input_tensor", shape, data_format)
            return None
        if data_format == "channels_first":
            return (3, default_size, default_size)
        return (default_size, default_size, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must be a tuple {layout} ({data_format}); received {input_shape}."
        )
    if data_format == "channels_first":
        channels, height, width = input_shape
    else:
        height, width, channels = input_shape
    for dim, label in ((height, "height"), (width, "width")):
        if dim is not None and dim < min_size:
            raise ValueError(
                f"Input size must be at least {min_size}x{min_size}; received input_shape="
                f"{input_shape} ({label} {dim}; the layout is {layout}, {data_format})."
            )
    if channels is None or channels < 1:
        raise ValueError(
            f"`input_shape` needs a known channel count; received {input_shape} (the layout is "
            f"{layout}, {data_format})."
        )
    if needs_rgb:
        _check_rgb(channels, "input_shape", input_shape, data_format)
    return input_shape


def any_size_input_shape(channels: int = 3, data_format: str | None = None) -> tuple:
    """`(None, None, channels)`, or `(channels, None, None)` in channels-first."""
    if resolve_data_format(data_format) == "channels_first":
        return (channels, None, None)
    return (None, None, channels)


def _check_rgb(channels: int | None, what: str, shape: tuple, data_format: str) -> None:
    if channels != 3:
        raise ValueError(
            f"Pretrained weights need 3 (RGB) input channels; received {what} with shape "
            f"{shape} ({data_format}: {channels} channels). Use weights=None for other channel "
            "counts."
        )


def validate_weights_path(weights: str | os.PathLike | None, allowed: tuple[str, ...]) -> None:
    """`weights` must be `None`, one of `allowed` names, or an existing file."""
    if weights is None or weights in allowed or os.path.exists(weights):
        return
    names = "".join(f", `{name}`" for name in allowed)
    raise ValueError(
        f"The `weights` argument should be either `None` (random initialization){names}, or "
        "the path to the weights file to be loaded; received "
        f"weights={weights!r}, which is not an existing file."
    )


def validate_head(
    include_top: bool,
    weights: str | os.PathLike | None,
    pooling: str | None,
    classes: int,
    classifier_activation: Any,
) -> None:
    """Validates `classes`, `pooling` and `classifier_activation` as keras.applications does."""
    if include_top and (isinstance(classes, bool) or not isinstance(classes, int) or classes < 1):
        raise ValueError(f"`classes` must be a positive integer; received {classes!r}.")
    if pooling not in (None, "avg", "max"):
        raise ValueError(
            f"`pooling` must be one of None, 'avg' or 'max'; received pooling={pooling!r}."
        )
    if weights is not None and include_top:
        allowed = (keras.activations.get("softmax"), keras.activations.get(None))
        if keras.activations.get(classifier_activation) not in allowed:
            raise ValueError(
                "Only `None` and `softmax` activations are allowed for the "
                "`classifier_activation` argument when using pretrained weights; received "
                f"classifier_activation={classifier_activation!r}."
            )


def image_input(
    input_tensor: Any, input_shape: tuple[int | None, ...] | None,
    keras_module: ModuleType = keras,
) -> Any:
    """The model's image input: a new `Input`, or `input_tensor` (wrapped if not symbolic)."""
    if input_tensor is None:
        return keras_module.layers.Input(shape=input_shape)
    if not keras_module.backend.is_keras_tensor(input_tensor):
        return keras_module.layers.Input(tensor=input_tensor, shape=input_shape)
    return input_tensor


def model_inputs(input_tensor: Any, img_input: Any, keras_module: ModuleType = keras) -> Any:
    """The inputs to build the model from (the sources of `input_tensor` when one is given)."""
    if input_tensor is not None:
        return keras_module.utils.get_source_inputs(input_tensor)
    return img_input


def pooled_classifier(
    x: Any, include_top: bool, pooling: str | None, classes: int, classifier_activation: Any,
    layers: ModuleType = keras.layers, data_format: str | None = None,
) -> Any:
    """Global average pool + dense classifier (float32), or the optional feature pooling."""
    data_format = resolve_data_format(data_format, layers)
    if include_top:
        x = layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
        return layers.Dense(
            classes, activation=classifier_activation, dtype="float32", name="predictions"
        )(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(data_format=data_format, name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(data_format=data_format, name="max_pool")(x)
    return x
