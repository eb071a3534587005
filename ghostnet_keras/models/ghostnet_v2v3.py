"""GhostNetV2 and GhostNetV3 for Keras 3, with the keras.applications interface.

References:
    [GhostNetV2: Enhance Cheap Operation with Long-Range Attention](
    https://arxiv.org/abs/2211.12905) (NeurIPS 2022)
    [GhostNetV3: Exploring the Training Strategies for Compact Models](
    https://arxiv.org/abs/2404.11202) (arXiv 2024)

Both are GhostNet's stage table and constructor
(`ghostnet_keras.models.ghostnet.build_ghostnet`) with
other bottleneck parts (`ghostnet_keras.layers.blocks_v2v3`), exact to timm's `ghostnetv2_*` and
`ghostnetv3_*`.
"""

from __future__ import annotations

import os
from typing import Any

import keras

from ghostnet_keras.models.ghostnet import (
    IMAGENET_VARIANTS,
    create_ghostnet,
    fixed_width_constructor,
)

BASE_DOCSTRING = """Instantiates the GhostNet{version}{width_text} architecture.

Reference:
- {reference}

{summary}
The architecture, weight layout and numerics are those of timm's `ghostnet{version_tag}_*`
models (and the official PyTorch code), so their checkpoints reproduce timm's outputs. The DFC
attention gate is brought back to full size with PyTorch's legacy nearest rule
(`ghostnet_keras.NearestResize`), exact at any input size.

Preprocessing is included in the model by default (`include_preprocessing=True`): the model
takes RGB inputs with values in [0, 255]. The reference evaluation resizes the shorter side to
256 (bicubic) and centre-crops 224.

Args:{width_arg}
    include_top: whether to include the classification head (global pool, 1x1 conv to 1280 with
        bias, ReLU, dropout and the dense classifier). Defaults to `True`.
    weights: one of `None` (random initialization), `"imagenet"` (timm's ImageNet-1k weights,
        {imagenet_widths}; downloaded once from the Hugging Face hub with
        `keras.utils.get_file`, converted and cached in the Keras cache directory), or the path
        to a weights file: `.weights.h5` or `.keras` (Keras), `.safetensors` or `.pth` (timm's
        or the official repository's layout; PyTorch is not needed to read them). Loading is
        all-or-nothing (docs/loading.md). Defaults to `None`.
    input_tensor: optional Keras tensor (i.e. output of `keras.Input()`) to use as image input.
    input_shape: optional shape tuple `(height, width, 3)`; height and width may be `None`.
        Defaults to `(224, 224, 3)`.
    pooling: `None`, `"avg"` or `"max"`: pooling when `include_top` is `False`.
    classes: number of classes, only with `include_top=True` and no `weights`. Defaults to 1000.
    classifier_activation: activation of the "predictions" layer (`None` for logits). Defaults
        to `"softmax"`; with pretrained weights only `None` or `"softmax"`.
    dropout_rate: dropout rate before the classifier. Defaults to `0.2`.
    include_preprocessing: whether the model normalises its inputs itself. Defaults to `True`.
    name: the name of the model. Defaults to timm's (`"ghostnet{version_tag}_100"`...).{extra_args}

Returns:
    A model instance (a flat functional `keras.Model` of built-in layers and `NearestResize`).
"""

_WIDTH_ARG = (
    "\n    width: width multiplier, any number > 0. Every channel count but the 1280 head is"
    "\n        scaled and rounded to a multiple of 4. Defaults to `1.0`."
)
_REPARAMETERIZED_ARG = (
    "\n    reparameterized: build the deploy form, in which each group of parallel conv-BN"
    "\n        branches is one conv with bias (timm's `convert_to_deploy()`). Training-form"
    "\n        weights (e.g. `\"imagenet\"`) are fused on loading; deploy-form checkpoints load"
    "\n        directly. `ghostnet_keras.reparameterize(model)` converts a trained model."
    "\n        Defaults to `False`."
)
_FAMILY = {
    "V2": dict(
        reference="[GhostNetV2: Enhance Cheap Operation with Long-Range Attention]"
        "(https://arxiv.org/abs/2211.12905) (NeurIPS 2022)",
        summary="The first Ghost module of every block but the first two is multiplied by a\n"
        "DFC attention gate (average pool, 1x1, 1x5 and 5x1 convs, sigmoid, nearest upsample).\n",
        extra_args="",
    ),
    "V3": dict(
        reference="[GhostNetV3: Exploring the Training Strategies for Compact Models]"
        "(https://arxiv.org/abs/2404.11202) (arXiv 2024)",
        summary="GhostNetV2's DFC gate plus re-parameterisable convolutions: in training form\n"
        "each conv of the Ghost modules and the stride-2 depthwise conv is a sum of parallel\n"
        "conv-BN branches; the deploy form fuses them.\n",
        extra_args=_REPARAMETERIZED_ARG,
    ),
}


def _docstring(version: str, width: float | None = None) -> str:
    family = _FAMILY[version]
    widths = sorted(w for v, w in IMAGENET_VARIANTS if v == f"v{version[1]}")
    return BASE_DOCSTRING.format(
        version=version,
        version_tag=version.lower(),
        width_text="" if width is None else f" {width}x",
        width_arg=_WIDTH_ARG if width is None else "",
        imagenet_widths="width " + " or ".join(map(str, widths)) + " only",
        **family,
    )


def GhostNetV2(
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
        "v2",
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


def GhostNetV3(
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
    return create_ghostnet(
        "v3",
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
        reparameterized=reparameterized,
    )


GhostNetV2.__doc__ = _docstring("V2")
GhostNetV3.__doc__ = _docstring("V3")
# timm's registered widths.
GhostNetV2_100 = fixed_width_constructor(GhostNetV2, 1.0, "GhostNetV2_100", _docstring("V2", 1.0))
GhostNetV2_130 = fixed_width_constructor(GhostNetV2, 1.3, "GhostNetV2_130", _docstring("V2", 1.3))
GhostNetV2_160 = fixed_width_constructor(GhostNetV2, 1.6, "GhostNetV2_160", _docstring("V2", 1.6))
GhostNetV3_050 = fixed_width_constructor(GhostNetV3, 0.5, "GhostNetV3_050", _docstring("V3", 0.5))
GhostNetV3_100 = fixed_width_constructor(GhostNetV3, 1.0, "GhostNetV3_100", _docstring("V3", 1.0))
GhostNetV3_130 = fixed_width_constructor(GhostNetV3, 1.3, "GhostNetV3_130", _docstring("V3", 1.3))
GhostNetV3_160 = fixed_width_constructor(GhostNetV3, 1.6, "GhostNetV3_160", _docstring("V3", 1.6))
