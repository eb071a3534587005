"""keras.applications-style argument validation and input/head plumbing shared by the models."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import keras

MIN_SIZE = 32


def validate_input_shape(
    input_shape: tuple[int | None, ...] | None,
    input_tensor: Any,
    default_size: int,
    needs_rgb: bool,
    min_size: int = MIN_SIZE,
) -> tuple[int | None, ...] | None:
    """Checks `input_shape` (channels last) and returns it, defaulting to a square RGB image."""
    if keras.config.image_data_format() != "channels_last":
        raise ValueError(
            "ghostnet_keras models support only the 'channels_last' data format; "
            f"keras.config.image_data_format() is {keras.config.image_data_format()!r}."
        )
    if input_shape is None:
        if input_tensor is not None:
            return None
        return (default_size, default_size, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"`input_shape` must be a tuple (height, width, channels); received {input_shape}."
        )
    height, width, channels = input_shape
    for dim, label in ((height, "height"), (width, "width")):
        if dim is not None and dim < min_size:
            raise ValueError(
                f"Input size must be at least {min_size}x{min_size}; received input_shape="
                f"{input_shape} ({label} {dim})."
            )
    if channels is None or channels < 1:
        raise ValueError(f"`input_shape` needs a known channel count; received {input_shape}.")
    if needs_rgb and channels != 3:
        raise ValueError(
            "With `include_preprocessing=True` or pretrained weights the input must have 3 "
            f"(RGB) channels; received input_shape={input_shape}."
        )
    return input_shape


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
    layers: ModuleType = keras.layers,
) -> Any:
    """Global average pool + dense classifier (float32), or the optional feature pooling."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        return layers.Dense(
            classes, activation=classifier_activation, dtype="float32", name="predictions"
        )(x)
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="avg_pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="max_pool")(x)
    return x


def normalization_layer(layers: ModuleType = keras.layers) -> Any:
    """The reference ImageNet normalisation as one `Rescaling` layer (RGB in [0, 255])."""
    from ghostnet_keras import imagenet

    scale, offset = imagenet.normalization_constants()
    return layers.Rescaling(scale=scale, offset=offset, name="preprocessing")
