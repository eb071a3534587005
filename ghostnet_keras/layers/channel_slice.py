"""`ChannelSlice`: keeps the first channels of a tensor (the Ghost module's trim)."""

from __future__ import annotations

from typing import Any

import keras

from ghostnet_keras.data_format import resolve_data_format


@keras.saving.register_keras_serializable(package="ghostnet_keras")
class ChannelSlice(keras.layers.Layer):
    """Keeps the first `channels` channels of a tensor.

    Only the Ghost module uses it, and only when `ceil(n / s) * s > n` (never in GhostNet,
    where every width gives `n` divisible by `s`). Registered as serializable, so models that
    contain it load with `keras.models.load_model` once `ghostnet_keras` is imported.

    Args:
        channels: number of leading channels to keep.
        data_format: `"channels_last"` (channels on the last axis) or `"channels_first"`
            (axis 1). `None` (default) uses `keras.config.image_data_format()`; the resolved
            value is recorded in the config.
    """

    def __init__(self, channels: int, data_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if channels < 1:
            raise ValueError(f"ChannelSlice `channels` must be >= 1, got {channels}.")
        self.channels = int(channels)
        self.data_format = resolve_data_format(data_format)

    def _axis(self, rank: int) -> int:
        return 1 if self.data_format == "channels_first" else rank - 1

    def call(self, inputs: Any) -> Any:
        if self.data_format == "channels_first":
            return inputs[:, : self.channels]
        return inputs[..., : self.channels]

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        axis = self._axis(len(input_shape))
        if input_shape[axis] is not None and input_shape[axis] < self.channels:
            raise ValueError(
                f"ChannelSlice {self.name!r} keeps {self.channels} channels but its input has "
                f"{input_shape[axis]}."
            )
        shape = list(input_shape)
        shape[axis] = self.channels
        return tuple(shape)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(), "channels": self.channels, "data_format": self.data_format
        }
