"""Builds the model a config names."""

from __future__ import annotations

from typing import Any

import keras

import ghostnet_keras
from ghostnet_keras.models import cifar
from ghostnet_keras.models.ghostnet import create_ghostnet
from ghostnet_keras.training.configs import TrainConfig

MODELS = ("ghostnet", "ghostnetv2", "ghostnetv3", "ghost_resnet50", "vgg16", "ghost_vgg16",
          "resnet56", "ghost_resnet56")
# The GhostNet family (`width` applies) and its versions; GhostNetV3 trains in its training form.
GHOSTNET_VERSIONS = {"ghostnet": "v1", "ghostnetv2": "v2", "ghostnetv3": "v3"}


def build_training_model(
    config: TrainConfig, num_classes: int, classifier_activation: Any = None
) -> keras.Model:
    """The config's model for `num_classes`, taking RGB in [0, 255] at `image_size`."""
    shape = (config.image_size, config.image_size, 3)
    if config.model in GHOSTNET_VERSIONS:
        return create_ghostnet(
            GHOSTNET_VERSIONS[config.model], width=config.width, input_shape=shape,
            classes=num_classes, classifier_activation=classifier_activation,
            dropout_rate=config.dropout_rate,
        )
    if config.model == "ghost_resnet50":
        return ghostnet_keras.GhostResNet50(
            ratio=config.ratio, dw_size=config.dw_size, input_shape=shape, classes=num_classes,
            classifier_activation=classifier_activation,
        )
    builders = {"vgg16": cifar.vgg16, "resnet56": cifar.resnet56}
    ghost_builders = {"ghost_vgg16": cifar.ghost_vgg16, "ghost_resnet56": cifar.ghost_resnet56}
    common = {"classes": num_classes, "input_shape": shape,
              "classifier_activation": classifier_activation}
    if config.model in builders:
        return builders[config.model](**common)
    if config.model in ghost_builders:
        return ghost_builders[config.model](ratio=config.ratio, dw_size=config.dw_size, **common)
    raise ValueError(f"Unknown model {config.model!r}; choose one of {MODELS}.")
