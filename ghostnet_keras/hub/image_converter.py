"""`GhostNetImageConverter`: GhostNet's input contract as a KerasHub image converter."""

from __future__ import annotations

from typing import Any

import keras
from keras_hub.layers import ImageConverter

from ghostnet_keras.hub.backbone import GhostNetBackbone
from ghostnet_keras.models.ghostnet import DEFAULT_SIZE
from ghostnet_keras.preprocessing import normalization_constants

# `x * scale + offset == (x / 255 - mean) / std` with the ImageNet mean and std.
IMAGENET_SCALE, IMAGENET_OFFSET = normalization_constants(3)


@keras.saving.register_keras_serializable(package="ghostnet_keras")
class GhostNetImageConverter(ImageConverter):
    """Resizes RGB images in [0, 255] and normalises them as the GhostNet weights expect.

    The contract of every published GhostNet (timm's `ghostnet*` configs): RGB, values in
    [0, 255], `(x / 255 - mean) / std` with the ImageNet mean `(0.485, 0.456, 0.406)` and std
    `(0.229, 0.224, 0.225)`, bicubic resizing. The defaults say so; pass `scale` and `offset`
    for a model trained with another normalisation.

    This converter resizes the whole image (centre-cropped to the aspect ratio first) to
    `image_size`; the reference ImageNet evaluation resizes the shorter side to
    `image_size / 0.875` and centre-crops (`ghostnet_keras.preprocessing.eval_preprocess`, on
    TensorFlow), which is what the published accuracies were measured with.
    """

    backbone_cls = GhostNetBackbone

    def __init__(
        self,
        image_size: tuple[int, int] | None = (DEFAULT_SIZE, DEFAULT_SIZE),
        scale: Any = IMAGENET_SCALE,
        offset: Any = IMAGENET_OFFSET,
        crop_to_aspect_ratio: bool = True,
        interpolation: str = "bicubic",
        antialias: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            image_size=image_size, scale=scale, offset=offset,
            crop_to_aspect_ratio=crop_to_aspect_ratio, interpolation=interpolation,
            antialias=antialias, **kwargs,
        )
