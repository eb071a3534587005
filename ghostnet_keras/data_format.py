"""Data formats: the channel axis of an image tensor, and the same model in another layout.

`resolve_data_format` / `channel_axis` answer which axis holds the channels, for Keras 3 and
tf_keras (each keeps its own `image_data_format()` setting).

`to_channels_last` / `to_data_format` give the same model, weights included, in another layout.

GhostNet (and the other models here) follow `keras.config.image_data_format()` when built.
Some consumers need channels-last: TFLite, TF Serving signatures, tfmot quantization-aware
training, and TensorFlow on CPU, which runs no NCHW convolution. `to_channels_last(model)`
rebuilds a channels-first model from its config with every layer switched to channels-last and
copies the weights (kernels do not depend on the layout; only activations are transposed).

The rewrite is exact for the layers these models are made of: layers with a `data_format`
(convolutions, padding, pooling, `Flatten`, `ChannelSlice`) switch it; layers with a channel
`axis` (`BatchNormalization`, `Concatenate`) move it; per-channel `Rescaling` constants are
reshaped; elementwise layers need nothing. Any other layer whose meaning depends on the layout
(`Reshape`, `Permute`, `Lambda`, `Dense` on a 4D tensor, ...) is refused with an error naming it.
"""

from __future__ import annotations

import copy
import importlib
from types import ModuleType
from typing import Any

import keras
import numpy as np

DATA_FORMATS = ("channels_last", "channels_first")

# Layers whose computation does not depend on the layout of a 4D tensor (elementwise, or
# equal on a permuted tensor).
_LAYOUT_FREE = frozenset({
    "InputLayer", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "ReLU",
    "Activation", "ELU", "LeakyReLU", "PReLU", "Softmax2D", "Identity", "Dropout",
})
# Layers with an `axis` argument that names the channel axis (or another axis).
_AXIS_LAYERS = frozenset({"BatchNormalization", "Concatenate"})
# A 4D axis in one layout -> the same axis in the other one.
_AXIS_MAP = {
    ("channels_first", "channels_last"): {0: 0, 1: 3, 2: 1, 3: 2},
    ("channels_last", "channels_first"): {0: 0, 3: 1, 1: 2, 2: 3},
}


def resolve_data_format(data_format: str | None, layers: ModuleType = keras.layers) -> str:
    """`data_format`, checked; `None` gives the default of the Keras that `layers` belongs to.

    `keras.layers` -> `keras.config.image_data_format()`, `tf_keras.layers` ->
    `tf_keras.backend.image_data_format()`: each Keras keeps its own setting.
    """
    if data_format is None:
        package = importlib.import_module(layers.__name__.partition(".")[0])
        data_format = package.backend.image_data_format()
    if data_format not in DATA_FORMATS:
        raise ValueError(
            f"`data_format` must be one of {DATA_FORMATS} (or None for the global setting); "
            f"received {data_format!r}."
        )
    return data_format


def channel_axis(data_format: str) -> int:
    """The channel axis of a 4D tensor in `data_format`: 1 (channels first) or -1."""
    return 1 if data_format == "channels_first" else -1


def to_channels_last(model: keras.Model) -> keras.Model:
    """Returns `model` as a channels-last model with the same weights.

    A channels-last model is returned unchanged (the same object). Otherwise the model is
    rebuilt from its config with every layer in channels-last and its weights copied: inputs
    `(N, C, H, W)` become `(N, H, W, C)`, and the outputs are those of the original model
    (transposed in the same way where they are 4D). Use it before exporting to TFLite, TF
    Serving or quantization-aware training, and to run a channels-first model with TensorFlow
    on CPU.

    Example:

    ```python
    keras.config.set_image_data_format("channels_first")
    model = ghostnet_keras.GhostNet(weights="imagenet")      # NCHW, e.g. for GPUs under JAX
    nhwc = ghostnet_keras.to_channels_last(model)           # same weights, NHWC
    ```

    Args:
        model: a functional Keras model (every GhostNet, Ghost-ResNet, `ghostify` result).

    Returns:
        A functional `keras.Model`.

    Raises:
        TypeError: `model` is not a functional model.
        ValueError: a layer's meaning depends on the layout in a way this function cannot
            rewrite (the error names it).
    """
    return to_data_format(model, "channels_last")


def to_data_format(model: keras.Model, data_format: str) -> keras.Model:
    """Returns `model` rebuilt in `data_format` (`"channels_last"`/`"channels_first"`).

    Same weights, same layer names and outputs up to the transposition of 4D tensors. A model
    already in `data_format` is returned unchanged. See `to_channels_last`.
    """
    if data_format not in DATA_FORMATS:
        raise ValueError(f"`data_format` must be one of {DATA_FORMATS}; received {data_format!r}.")
    reject_keras_hub_task(model, "to_data_format")
    if not isinstance(model, keras.Model) or type(model).__name__ != "Functional":
        raise TypeError(
            f"to_data_format needs a functional keras.Model; received {type(model).__name__}. "
            "Build the model with the functional API (every ghostnet_keras model is)."
        )
    source = model_data_format(model)
    if source in (None, data_format):
        return model
    config = model.get_config()
    layers_by_name = {layer.name: layer for layer in model.layers}
    for entry in config["layers"]:
        layer = layers_by_name[entry["config"]["name"]]
        entry.pop("build_config", None)  # input shapes in the old layout
        entry["config"] = _convert_layer_config(layer, entry["config"], source, data_format)
    new_model = model.__class__.from_config(config)
    for layer in new_model.layers:
        weights = layers_by_name[layer.name].get_weights()
        if weights:
            layer.set_weights(weights)
    return new_model


def reject_keras_hub_task(model: Any, what: str) -> None:
    """Raises a `TypeError` saying what to pass instead when `model` is a KerasHub task.

    The exports (TFLite, TF Serving, ONNX) take a plain functional model that normalises its
    own inputs; a KerasHub task (`GhostNetImageClassifier`) keeps its preprocessing outside.
    """
    if any(cls.__module__.startswith("keras_hub.") for cls in type(model).__mro__):
        raise TypeError(
            f"{what} takes a functional keras.Model with its preprocessing inside; received the "
            f"KerasHub {type(model).__name__}. Pass ghostnet_keras.hub.to_functional_model(model)"
            " instead (the same weights, RGB in [0, 255] normalised by the model)."
        )


def model_data_format(model: keras.Model) -> str | None:
    """The data format of `model`'s layers, `None` if none has one.

    Raises:
        ValueError: the model mixes layouts.
    """
    formats = {
        layer.data_format for layer in model.layers
        if getattr(layer, "data_format", None) in DATA_FORMATS
    }
    if len(formats) > 1:
        raise ValueError(f"Model {model.name!r} mixes data formats {sorted(formats)}.")
    return formats.pop() if formats else None


def _input_ranks(layer: keras.layers.Layer) -> set[int]:
    ranks = set()
    for node in layer._inbound_nodes:
        for tensor in node.input_tensors:
            ranks.add(len(tensor.shape))
    return ranks


def _refuse(layer: keras.layers.Layer, why: str) -> ValueError:
    return ValueError(
        f"Cannot change the data format of layer {layer.name!r} ({type(layer).__name__}): "
        f"{why}. Build the model in the wanted format instead "
        "(keras.config.set_image_data_format(...) before building) and load the weights into it "
        "(model.save_weights / load_weights: kernels do not depend on the format)."
    )


def _convert_layer_config(
    layer: keras.layers.Layer, config: dict[str, Any], source: str, target: str
) -> dict[str, Any]:
    config = copy.deepcopy(config)
    class_name = type(layer).__name__
    if isinstance(layer, keras.Model):
        raise _refuse(layer, "nested models are not rewritten")
    if class_name == "InputLayer":
        shape = config.get("batch_shape")
        if shape is not None and len(shape) == 4:
            order = (0, 2, 3, 1) if target == "channels_last" else (0, 3, 1, 2)
            config["batch_shape"] = [shape[i] for i in order]
        elif shape is None or len(shape) > 2:
            raise _refuse(layer, f"only 4D image inputs are rewritten, not shape {shape}")
        return config
    ranks = _input_ranks(layer)
    if ranks and max(ranks) < 3:
        return config  # on 2D tensors (after global pooling / Flatten) the layout is gone
    if ranks - {4}:
        raise _refuse(layer, f"it takes tensors of rank {sorted(ranks)}, only 4D is rewritten")
    if "data_format" in config:
        config["data_format"] = target
        return config
    if class_name in _LAYOUT_FREE:
        if class_name == "Dropout" and config.get("noise_shape") is not None:
            raise _refuse(layer, "its `noise_shape` is given in the old layout")
        return config
    if class_name in _AXIS_LAYERS:
        config["axis"] = _convert_axis(layer, config["axis"], source, target)
        return config
    if class_name == "Rescaling":
        for key in ("scale", "offset"):
            config[key] = _convert_constant(layer, config[key], source)
        return config
    raise _refuse(layer, "its meaning depends on the layout and it has no `data_format`")


def _convert_axis(layer: keras.layers.Layer, axis: Any, source: str, target: str) -> Any:
    mapping = _AXIS_MAP[(source, target)]
    if isinstance(axis, (list, tuple)):
        return [_convert_axis(layer, a, source, target) for a in axis]
    if not isinstance(axis, int) or not -4 <= axis < 4:
        raise _refuse(layer, f"unexpected axis {axis!r}")
    return mapping[axis % 4]


def _convert_constant(layer: keras.layers.Layer, value: Any, source: str) -> Any:
    """A `Rescaling` constant: scalars stay; per-channel ones are reshaped to the new layout."""
    if isinstance(value, dict):  # a serialized array
        raise _refuse(layer, "its constants are serialized tensors")
    array = np.asarray(value, dtype=np.float64)
    if array.ndim <= 1 and array.size == 1:
        return value
    if source == "channels_first" and array.ndim == 3 and array.shape[1:] == (1, 1):
        return array.reshape(-1).tolist()
    if source == "channels_last" and array.ndim == 1:
        return array.reshape(-1, 1, 1).tolist()
    raise _refuse(layer, f"its constants have shape {array.shape}, not per channel")
