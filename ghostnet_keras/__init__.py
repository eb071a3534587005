"""GhostNet for Keras 3: building blocks, models, reference weights and a profiler."""

from ghostnet_keras.batch_norm import FusedBatchNormalization, with_fused_batch_norm
from ghostnet_keras.blocks import (
    ghost_bottleneck,
    ghost_module,
    hard_sigmoid_gate,
    make_divisible,
    squeeze_excite,
)
from ghostnet_keras.blocks_v2v3 import dfc_attention, ghost_module_v2, ghost_module_v3
from ghostnet_keras.channel_slice import ChannelSlice
from ghostnet_keras.ghostify import ghostify
from ghostnet_keras.ghostnet import (
    GhostNet,
    GhostNet050,
    GhostNet100,
    GhostNet130,
    feature_extractor,
)
from ghostnet_keras.ghostnet_v2v3 import (
    GhostNetV2,
    GhostNetV2_100,
    GhostNetV2_130,
    GhostNetV2_160,
    GhostNetV3,
    GhostNetV3_050,
    GhostNetV3_100,
    GhostNetV3_130,
    GhostNetV3_160,
)
from ghostnet_keras.imagenet import decode_predictions, normalize_input, preprocess_input
from ghostnet_keras.nearest_resize import NearestResize
from ghostnet_keras.reparameterize import reparameterize
from ghostnet_keras.resnet import GhostResNet50

__version__ = "0.1.0"

__all__ = [
    "ChannelSlice",
    "FusedBatchNormalization",
    "GhostNet",
    "GhostNet050",
    "GhostNet100",
    "GhostNet130",
    "GhostNetV2",
    "GhostNetV2_100",
    "GhostNetV2_130",
    "GhostNetV2_160",
    "GhostNetV3",
    "GhostNetV3_050",
    "GhostNetV3_100",
    "GhostNetV3_130",
    "GhostNetV3_160",
    "GhostResNet50",
    "ModelProfile",
    "NearestResize",
    "decode_predictions",
    "dfc_attention",
    "feature_extractor",
    "ghost_bottleneck",
    "ghost_module",
    "ghost_module_v2",
    "ghost_module_v3",
    "ghostify",
    "hard_sigmoid_gate",
    "make_divisible",
    "normalize_input",
    "preprocess_input",
    "profile",
    "reparameterize",
    "squeeze_excite",
    "with_fused_batch_norm",
]


def __getattr__(name: str) -> object:
    # The profiler is imported lazily so that `python -m ghostnet_keras.profiler` runs cleanly.
    if name in ("profile", "ModelProfile"):
        from ghostnet_keras import profiler

        return getattr(profiler, name)
    raise AttributeError(f"module 'ghostnet_keras' has no attribute {name!r}")
