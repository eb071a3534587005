"""The classifier contract shared by every export: probabilities or logits, and the labels."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import keras
import numpy as np

_PROBABILITY_ACTIVATIONS = ("softmax",)
_LOGIT_ACTIVATIONS = ("linear", "log_softmax")


def default_labels(num_classes: int) -> tuple[str, ...]:
    """ImageNet class names for 1000 classes, else `class_0`, `class_1`, ..."""
    if num_classes == 1000:
        from ghostnet_keras import imagenet

        return tuple(name for _, name in imagenet.class_index())
    return tuple(f"class_{i}" for i in range(num_classes))


def read_labels(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Reads a `labels.txt`: one class name per line, in model output order (UTF-8)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    return tuple(line.strip() for line in lines)


def _output_layer(model: keras.Model) -> Any:
    try:
        return model.outputs[0]._keras_history.operation
    except (AttributeError, IndexError, TypeError):
        return model.layers[-1] if getattr(model, "layers", None) else None


def activation_name(layer: Any) -> str | None:
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    if isinstance(activation, str):
        return activation
    return getattr(activation, "__name__", None)


def detect_outputs_are_logits(model: keras.Model, image_size: int = 64) -> bool:
    """Tells whether a classifier outputs logits (`True`) or probabilities (`False`).

    Reads the activation of the layer that produces the output: `softmax` means
    probabilities; `linear` (`classifier_activation=None`) or `log_softmax` mean logits (a
    softmax of either gives the probabilities). When the output layer has no readable
    activation (a wrapped or custom layer), runs the model on two random images and calls the
    outputs probabilities when they are in [0, 1] and sum to 1.

    Raises:
        ValueError: for another activation (e.g. `sigmoid`, multi-label): pass
            `outputs_are_logits` explicitly to export such a model anyway.
    """
    name = activation_name(_output_layer(model))
    if name in _PROBABILITY_ACTIVATIONS:
        return False
    if name in _LOGIT_ACTIVATIONS:
        return True
    if name is not None:
        raise ValueError(
            f"The model's output activation is {name!r}, neither softmax (probabilities) nor "
            "linear (logits); pass outputs_are_logits (--outputs_are_logits or "
            "--nooutputs_are_logits) explicitly."
        )
    height, width = spatial_dims(model)
    probe = np.random.default_rng(0).uniform(
        0.0, 255.0, (2, height or image_size, width or image_size, 3)
    ).astype(np.float32)
    outputs = np.asarray(keras.ops.convert_to_numpy(model(probe, training=False)), np.float64)
    is_distribution = bool(
        np.all(outputs >= -1e-6)
        and np.all(outputs <= 1.0 + 1e-6)
        and np.allclose(outputs.sum(axis=-1), 1.0, atol=1e-3)
    )
    return not is_distribution


def spatial_dims(model: keras.Model) -> tuple[int | None, int | None]:
    """(height, width) of a one-image-input channels-last model (`None` for dynamic sides)."""
    if len(model.inputs) != 1:
        raise ValueError(f"Expected a model with one image input; it has {len(model.inputs)}.")
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4 or shape[-1] not in (3, None):
        raise ValueError(
            f"Expected a model input of shape (batch, height, width, 3); got {shape}."
        )
    return shape[1], shape[2]
