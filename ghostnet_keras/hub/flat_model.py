"""Between the KerasHub classes and the flat keras.applications-style GhostNet.

`load_reference_weights` fills a `GhostNetImageClassifier` (or a `GhostNetBackbone`) from a
checkpoint through the project's strict loaders; `to_functional_model` returns the plain
functional model that the TFLite, TF Serving and ONNX exports take. Both rely on the layer
names being the same in both forms.
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np

from ghostnet_keras.hub.backbone import GhostNetBackbone
from ghostnet_keras.hub.image_classifier import GhostNetImageClassifier
from ghostnet_keras.hub.image_converter import IMAGENET_OFFSET, IMAGENET_SCALE
from ghostnet_keras.models.ghostnet import build_ghostnet, create_ghostnet
from ghostnet_keras.weights.strict import copy_weights_by_name


def _parts(model: GhostNetImageClassifier | GhostNetBackbone) -> tuple[GhostNetBackbone, Any]:
    """The backbone, and the model's weighted layers by their GhostNet names."""
    if isinstance(model, GhostNetImageClassifier):
        backbone = model.backbone
        head = [layer for layer in model.layers if layer is not backbone]
    elif isinstance(model, GhostNetBackbone):
        backbone, head = model, []
    else:
        raise TypeError(
            f"Expected a GhostNetImageClassifier or GhostNetBackbone; received "
            f"{type(model).__name__}."
        )
    return backbone, SimpleNamespace(name=model.name, layers=[*backbone.layers, *head])


def load_reference_weights(
    model: GhostNetImageClassifier | GhostNetBackbone, weights: str | os.PathLike
) -> keras.Model:
    """Loads a checkpoint into a KerasHub GhostNet, strictly and all-or-nothing.

    `weights` is anything `GhostNet(weights=...)` loads: a reference checkpoint (`.safetensors`,
    `.pth`, ...), a `.keras` file or `.weights.h5`, or `"imagenet"`. It is loaded into the flat
    GhostNet of the same version, width, form and classes by the project's loaders (a
    missing, unexpected or mis-shaped tensor is an error naming it), then copied by layer name.

    Returns:
        The flat GhostNet the checkpoint was loaded into (any size, inputs normalised as the
        backbone's, logits), which computes what `model` now computes.

    Raises:
        WeightsError: the checkpoint does not fit the model; nothing is assigned.
    """
    backbone, target = _parts(model)
    classifier = isinstance(model, GhostNetImageClassifier)
    flat = create_ghostnet(
        backbone.version, width=backbone.width, include_top=classifier, weights=weights,
        input_shape=(None, None, 3), classes=model.num_classes if classifier else 1000,
        classifier_activation=None, include_preprocessing=False,
        reparameterized=backbone.reparameterized,
    )
    copy_weights_by_name(flat, target)
    return flat


def to_functional_model(
    classifier: GhostNetImageClassifier, input_shape: tuple[int | None, ...] | None = None
) -> keras.Model:
    """The classifier as the exports take it: a flat functional GhostNet, preprocessing inside.

    The same weights in the keras.applications-style model: channels-last, RGB in [0, 255]
    normalised by its first layer (what the preprocessor's `GhostNetImageConverter` does),
    the classifier's activation (logits by default). Pass the result to
    `ghostnet_keras.tflite.conversion.convert`, `ghostnet_keras.export.serving.export_serving_model`
    or `ghostnet_keras.export.onnx.export_onnx`. Resizing stays outside, as the exports expect.

    Args:
        classifier: a `GhostNetImageClassifier`.
        input_shape: `(height, width, 3)`; defaults to the image converter's `image_size`
            (`(None, None, 3)` without a preprocessor).

    Raises:
        ValueError: the preprocessor normalises otherwise than the GhostNet contract.
    """
    if not isinstance(classifier, GhostNetImageClassifier):
        raise TypeError(
            f"Expected a GhostNetImageClassifier; received {type(classifier).__name__}."
        )
    backbone, source = _parts(classifier)
    converter = getattr(classifier.preprocessor, "image_converter", None)
    if converter is not None:
        for what, value, expected in (("scale", converter.scale, IMAGENET_SCALE),
                                      ("offset", converter.offset, IMAGENET_OFFSET)):
            if value is None or not np.allclose(np.ravel(value), expected, rtol=1e-6, atol=0):
                raise ValueError(
                    f"The image converter's {what} is {value!r}, not GhostNet's ImageNet "
                    f"normalisation {expected}; the exported model normalises as GhostNet does."
                )
    if input_shape is None:
        size = tuple(converter.image_size) if converter is not None and converter.image_size else (
            None, None)
        input_shape = (*size, 3)
    flat = build_ghostnet(
        width=backbone.width, include_top=True, input_shape=tuple(input_shape),
        classes=classifier.num_classes, classifier_activation=classifier.activation,
        dropout_rate=classifier.dropout, include_preprocessing=True, version=backbone.version,
        reparameterized=backbone.reparameterized, data_format="channels_last",
    )
    copy_weights_by_name(source, flat)
    return flat
