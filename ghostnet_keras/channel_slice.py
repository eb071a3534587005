"""`ChannelSlice`: keeps the first channels of a tensor (the Ghost module's trim)."""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="ghostnet_keras")
class ChannelSlice(keras.layers.Layer):
    """Keeps the first `channels` channels of a channels-last tensor.

    Only the Ghost module uses it, and only when `ceil(n / s) * s > n` (never in GhostNet,
    where every width gives `n` divisible by `s`). Registered as serializable, so models that
    contain it load with `keras.models.load_model` once `ghostnet_keras` is imported.

    Args:
        channels: number of leading channels to keep.
    """

    def __init__(self, channels: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if channels < 1:
            raise ValueError(f"ChannelSlice `channels` must be >= 1, got {channels}.")
        self.channels = int(channels)

    def call(self, inputs: Any) -> Any:
        return inputs[..., : self.channels]

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        if input_shape[-1] is not None and input_shape[-1] < self.channels:
            raise ValueError(
                f"ChannelSlice {self.name!r} keeps {self.channels} channels but its input has "
                f"{input_shape[-1]}."
            )
        return (*input_shape[:-1], self.channels)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "channels": self.channels}
