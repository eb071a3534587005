"""`GhostNetImageClassifier`: a `GhostNetBackbone` with GhostNet's own classification head."""

from __future__ import annotations

from typing import Any

import keras
from keras_hub.models import ImageClassifier, Task

from ghostnet_keras.hub.backbone import GhostNetBackbone, dtype_policy_scope
from ghostnet_keras.hub.preprocessor import GhostNetImageClassifierPreprocessor
from ghostnet_keras.models.ghostnet import classification_head


@keras.saving.register_keras_serializable(package="ghostnet_keras")
class GhostNetImageClassifier(ImageClassifier):
    """GhostNet image classifier for KerasHub (`compile`/`fit`/`predict`, presets).

    The head is GhostNet's (`ghostnet_keras.models.ghostnet.classification_head`): global average
    pool, 1x1 conv to 1280 with bias and ReLU, dropout, dense; its layers are named as in the
    keras.applications-style model, so reference checkpoints load one to one
    (`ghostnet_keras.hub.load_reference_weights`, `ghostnet-hub-preset`). The dense layer
    computes in float32 under a mixed precision policy, like the keras.applications-style
    model.

    Args:
        backbone: a `GhostNetBackbone`.
        num_classes: number of classes.
        preprocessor: a `GhostNetImageClassifierPreprocessor`, or `None` (inputs already
            normalised).
        activation: `None` (logits, the default) or `"softmax"`.
        dropout: dropout rate before the dense layer (GhostNet's 0.2).
    """

    backbone_cls = GhostNetBackbone
    preprocessor_cls = GhostNetImageClassifierPreprocessor

    def __init__(
        self,
        backbone: GhostNetBackbone,
        num_classes: int,
        preprocessor: GhostNetImageClassifierPreprocessor | None = None,
        activation: str | None = None,
        dropout: float = 0.2,
        **kwargs: Any,
    ) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"`num_classes` must be a positive integer; received {num_classes!r}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1); received {dropout!r}.")
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor
        # === Functional Model ===
        inputs = backbone.input
        with dtype_policy_scope(backbone.dtype_policy):
            outputs = classification_head(
                backbone(inputs), num_classes, activation, dropout,
                data_format=backbone.data_format,
            )
        Task.__init__(self, inputs=inputs, outputs=outputs, **kwargs)
        # === Config ===
        self.num_classes = num_classes
        self.activation = activation
        self.dropout = dropout
        self.pooling = "avg"

    def get_config(self) -> dict[str, Any]:
        config = Task.get_config(self)  # the backbone and preprocessor; the head's below
        config.update(num_classes=self.num_classes, activation=self.activation,
                      dropout=self.dropout)
        return config
