"""GhostNet for Keras 3: building blocks, models, reference weights and a profiler.

The public names are imported on first use, so `import ghostnet_keras` (and so importing one of
its subpackages, such as `ghostnet_keras.training`) imports neither Keras nor a backend: the
training programs choose TensorFlow's CPU kernels before TensorFlow is imported.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "FusedBatchNormalization": "batch_norm",
    "with_fused_batch_norm": "batch_norm",
    "ghost_bottleneck": "blocks",
    "ghost_module": "blocks",
    "hard_sigmoid_gate": "blocks",
    "make_divisible": "blocks",
    "squeeze_excite": "blocks",
    "dfc_attention": "blocks_v2v3",
    "ghost_module_v2": "blocks_v2v3",
    "ghost_module_v3": "blocks_v2v3",
    "ChannelSlice": "channel_slice",
    "ghostify": "ghostify",
    "GhostNet": "ghostnet",
    "GhostNet050": "ghostnet",
    "GhostNet100": "ghostnet",
    "GhostNet130": "ghostnet",
    "feature_extractor": "ghostnet",
    "GhostNetV2": "ghostnet_v2v3",
    "GhostNetV2_100": "ghostnet_v2v3",
    "GhostNetV2_130": "ghostnet_v2v3",
    "GhostNetV2_160": "ghostnet_v2v3",
    "GhostNetV3": "ghostnet_v2v3",
    "GhostNetV3_050": "ghostnet_v2v3",
    "GhostNetV3_100": "ghostnet_v2v3",
    "GhostNetV3_130": "ghostnet_v2v3",
    "GhostNetV3_160": "ghostnet_v2v3",
    "decode_predictions": "imagenet",
    "normalize_input": "imagenet",
    "preprocess_input": "imagenet",
    "NearestResize": "nearest_resize",
    "ModelProfile": "profiler",
    "profile": "profiler",
    "reparameterize": "reparameterize",
    "GhostResNet50": "resnet",
}

__all__ = sorted(_EXPORTS)

def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ghostnet_keras' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"ghostnet_keras.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
