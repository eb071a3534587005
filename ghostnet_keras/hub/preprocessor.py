"""`GhostNetImageClassifierPreprocessor`: the classifier's preprocessing (its image converter)."""

from __future__ import annotations

import keras
from keras_hub.models import ImageClassifierPreprocessor

from ghostnet_keras.hub.backbone import GhostNetBackbone
from ghostnet_keras.hub.image_converter import GhostNetImageConverter


@keras.saving.register_keras_serializable(package="ghostnet_keras")
class GhostNetImageClassifierPreprocessor(ImageClassifierPreprocessor):
    """Maps `(images, labels)` to GhostNet's input with a `GhostNetImageConverter`.

    Images are RGB in [0, 255], any size; labels pass through.
    """

    backbone_cls = GhostNetBackbone
    image_converter_cls = GhostNetImageConverter
