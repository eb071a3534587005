"""GhostNet in KerasHub's model API: `GhostNetBackbone`, `GhostNetImageClassifier`, presets.

Importing this package registers the classes with Keras, so KerasHub's base classes load
GhostNet preset folders (`keras_hub.models.ImageClassifier.from_preset(folder)`). It needs the
`hub` extra (`pip install "ghostnet-keras[hub]"`); `import ghostnet_keras` alone never imports
KerasHub. See docs/hub.md.
"""

from __future__ import annotations

try:
    import keras_hub  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "ghostnet_keras.hub needs KerasHub: pip install \"ghostnet-keras[hub]\" "
        f"(keras-hub==0.32.0); importing it failed: {error}"
    ) from error

from ghostnet_keras.hub.backbone import GhostNetBackbone
from ghostnet_keras.hub.flat_model import load_reference_weights, to_functional_model
from ghostnet_keras.hub.image_classifier import GhostNetImageClassifier
from ghostnet_keras.hub.image_converter import GhostNetImageConverter
from ghostnet_keras.hub.preprocessor import GhostNetImageClassifierPreprocessor

__all__ = [
    "GhostNetBackbone",
    "GhostNetImageClassifier",
    "GhostNetImageClassifierPreprocessor",
    "GhostNetImageConverter",
    "load_reference_weights",
    "to_functional_model",
]
