"""`GhostNetBackbone`: GhostNet v1, V2 and V3 as a KerasHub `FeaturePyramidBackbone`.

The graph is the project's one definition (`ghostnet_keras.models.ghostnet.build_ghostnet`, without
its head and its input normalisation, which KerasHub keeps in the image converter); the layers
keep their names, so reference checkpoints map onto them one to one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import keras
from keras_hub.models import FeaturePyramidBackbone

from ghostnet_keras.data_format import resolve_data_format
from ghostnet_keras.models.ghostnet import FEATURE_LAYERS, VERSIONS, build_ghostnet

# KerasHub's pyramid level `Pn` is the feature map of stride 2**n.
PYRAMID_LEVELS = {f"P{n}": FEATURE_LAYERS[2**n] for n in range(1, 6)}


@contextlib.contextmanager
def dtype_policy_scope(dtype: Any) -> Iterator[None]:
    """Builds layers under `dtype` (a policy or its name; `None`: unchanged).

    `build_ghostnet` creates its layers without a `dtype`, so they take the global policy;
    Keras keeps that policy per thread. A `DTypePolicyMap` (quantization) builds with its
    default policy; the backbone applies the map itself.
    """
    if dtype is None:
        yield
        return
    policy = keras.dtype_policies.get(dtype)
    if isinstance(policy, keras.dtype_policies.DTypePolicyMap):
        policy = policy.default_policy
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@keras.saving.register_keras_serializable(package="ghostnet_keras")
class GhostNetBackbone(FeaturePyramidBackbone):
    """GhostNet (v1), GhostNetV2 or GhostNetV3 feature extractor for KerasHub.

    Takes images normalised as `GhostNetImageConverter` does (ImageNet mean and std) and
    returns the stride-32 feature map (`make_divisible(960 * width)` channels);
    `pyramid_outputs` holds `P1`..`P5`, the output of the last block at strides 2 to 32.

    Args:
        version: `"v1"`, `"v2"` or `"v3"`.
        width: width multiplier (> 0); the published weights are 1.0 (all), 0.5 and 1.3 (v1),
            1.3 and 1.6 (V2/V3).
        image_shape: input shape `(height, width, channels)` (channels first: `(channels,
            height, width)`); sides may be `None`.
        reparameterized: GhostNetV3's deploy form (parallel branches fused).
        data_format: `"channels_last"` or `"channels_first"` (v1 only); `None` is
            `keras.config.image_data_format()`.
        dtype: the dtype policy of every layer.
    """

    def __init__(
        self,
        version: str = "v1",
        width: float = 1.0,
        image_shape: tuple[int | None, ...] = (None, None, 3),
        reparameterized: bool = False,
        data_format: str | None = None,
        dtype: Any = None,
        **kwargs: Any,
    ) -> None:
        if version not in VERSIONS:
            raise ValueError(f"`version` must be one of {VERSIONS}; received {version!r}.")
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
            raise ValueError(f"`width` must be a number > 0; received {width!r}.")
        if reparameterized and version != "v3":
            raise ValueError(
                "`reparameterized=True` is GhostNetV3's deploy form; use version='v3'."
            )
        data_format = resolve_data_format(data_format)
        with dtype_policy_scope(dtype):
            features = build_ghostnet(
                width=float(width), include_top=False, input_shape=tuple(image_shape),
                include_preprocessing=False, version=version, reparameterized=reparameterized,
                data_format=data_format,
            )
        super().__init__(inputs=features.input, outputs=features.output, dtype=dtype, **kwargs)
        self.pyramid_outputs = {
            level: features.get_layer(layer).output for level, layer in PYRAMID_LEVELS.items()
        }
        self.version = version
        self.width = float(width)
        self.image_shape = tuple(image_shape)
        self.reparameterized = reparameterized
        self.data_format = data_format

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            version=self.version,
            width=self.width,
            image_shape=self.image_shape,
            reparameterized=self.reparameterized,
            data_format=self.data_format,
        )
        return config
