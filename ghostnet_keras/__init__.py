"""GhostNet for Keras 3: building blocks, models, reference weights and a profiler.

The public names are imported on first use, so `import ghostnet_keras` (and so importing one of
its subpackages, such as `ghostnet_keras.training`) imports no backend by itself: the training
programs choose TensorFlow's CPU kernels before TensorFlow is imported. The custom layers a
`.keras` file may hold (`NearestResize` of GhostNetV2/V3, `ChannelSlice` of `ghostify`) are
registered for `keras.saving.load_model` as soon as Keras is there: at `import ghostnet_keras`
when Keras is already imported, else on first use of any public name.
"""

from __future__ import annotations

import importlib
import sys
import types

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "FusedBatchNormalization": "layers.batch_norm",
    "with_fused_batch_norm": "layers.batch_norm",
    "ghost_bottleneck": "layers.blocks",
    "ghost_module": "layers.blocks",
    "hard_sigmoid_gate": "layers.blocks",
    "make_divisible": "layers.blocks",
    "squeeze_excite": "layers.blocks",
    "dfc_attention": "layers.blocks_v2v3",
    "ghost_module_v2": "layers.blocks_v2v3",
    "ghost_module_v3": "layers.blocks_v2v3",
    "ChannelSlice": "layers.channel_slice",
    "to_channels_last": "data_format",
    "to_data_format": "data_format",
    "ghostify": "models.ghostify",
    "GhostNet": "models.ghostnet",
    "GhostNet050": "models.ghostnet",
    "GhostNet100": "models.ghostnet",
    "GhostNet130": "models.ghostnet",
    "feature_extractor": "models.ghostnet",
    "GhostNetV2": "models.ghostnet_v2v3",
    "GhostNetV2_100": "models.ghostnet_v2v3",
    "GhostNetV2_130": "models.ghostnet_v2v3",
    "GhostNetV2_160": "models.ghostnet_v2v3",
    "GhostNetV3": "models.ghostnet_v2v3",
    "GhostNetV3_050": "models.ghostnet_v2v3",
    "GhostNetV3_100": "models.ghostnet_v2v3",
    "GhostNetV3_130": "models.ghostnet_v2v3",
    "GhostNetV3_160": "models.ghostnet_v2v3",
    "decode_predictions": "imagenet",
    "normalize_input": "preprocessing",
    "preprocess_input": "preprocessing",
    "NearestResize": "layers.nearest_resize",
    "ModelProfile": "analysis.profiler",
    "profile": "analysis.profiler",
    "reparameterize": "models.reparameterize",
    "GhostResNet50": "models.ghost_resnet",
}

__all__ = sorted(_EXPORTS)

class _Package(types.ModuleType):
    """Keeps public names from being shadowed by a same-named submodule.

    Importing a direct submodule makes Python set the package's attribute of that name to the
    module; a public name (say `ghostify`, the function) must stay what it is, should a
    top-level module of that name appear again (before issue 23, `ghostnet_keras/ghostify.py`).
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def _register_serializable_layers() -> None:
    importlib.import_module("ghostnet_keras.weights.keras_files")  # registers the custom layers


if "keras" in sys.modules:  # Keras (and its backend) is loaded already: nothing to defer
    _register_serializable_layers()


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ghostnet_keras' has no attribute {name!r}")
    _register_serializable_layers()
    value = getattr(importlib.import_module(f"ghostnet_keras.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
