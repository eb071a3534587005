"""GhostNet for Keras 3: building blocks, models, reference weights and a profiler."""

from ghostnet_keras.batch_norm import FusedBatchNormalization, with_fused_batch_norm
from ghostnet_keras.blocks import (
    ghost_bottleneck,
    ghost_module,
    hard_sigmoid_gate,
    make_divisible,
    squeeze_excite,
)
from ghostnet_keras.channel_slice import ChannelSlice
from ghostnet_keras.data_format import to_channels_last, to_data_format
from ghostnet_keras.ghostify import ghostify
from ghostnet_keras.ghostnet import (
    GhostNet,
    GhostNet050,
    GhostNet100,
    GhostNet130,
    feature_extractor,
)
from ghostnet_keras.imagenet import decode_predictions, normalize_input, preprocess_input
from ghostnet_keras.resnet import GhostResNet50

__version__ = "0.1.0"

__all__ = [
    "ChannelSlice",
    "FusedBatchNormalization",
    "GhostNet",
    "GhostNet050",
    "GhostNet100",
    "GhostNet130",
    "GhostResNet50",
    "ModelProfile",
    "decode_predictions",
    "feature_extractor",
    "ghost_bottleneck",
    "ghost_module",
    "ghostify",
    "hard_sigmoid_gate",
    "make_divisible",
    "normalize_input",
    "preprocess_input",
    "profile",
    "squeeze_excite",
    "to_channels_last",
    "to_data_format",
    "with_fused_batch_norm",
]


def __getattr__(name: str) -> object:
    # The profiler is imported lazily so that `python -m ghostnet_keras.profiler` runs cleanly.
    if name in ("profile", "ModelProfile"):
        from ghostnet_keras import profiler

        return getattr(profiler, name)
    raise AttributeError(f"module 'ghostnet_keras' has no attribute {name!r}")
