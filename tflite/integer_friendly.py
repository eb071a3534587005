"""Average pools as depthwise convs, so that int8 GhostNetV2/V3 stay inside XNNPACK.

XNNPACK (LiteRT's CPU delegate, on Android as on x86) has no int8 AVERAGE_POOL_2D: in an int8
model each pool of a DFC gate would run on LiteRT's reference kernels between two XNNPACK
partitions. A `valid` k x l average pool is a depthwise conv without bias whose kernel entries
are all 1 / (k * l), which XNNPACK runs in int8; the entries are exact in int8 (each is the
per-channel maximum of a symmetric quantizer). Float exports keep the pool: it is fast there.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def average_pool_as_depthwise(
    pool_config: dict[str, Any], channels: int
) -> tuple[dict[str, Any], np.ndarray] | None:
    """The frozen DepthwiseConv2D arguments and kernel equal to an `AveragePooling2D`.

    Args:
        pool_config: the pool's `get_config()` (Keras 3 or tf_keras).
        channels: the number of channels it pools.

    Returns:
        `(DepthwiseConv2D keyword arguments, kernel)` with the pool's name, or `None` for a
        pool that is not equal to a depthwise conv (`padding="same"` averages fewer values at
        the border; channels-first pools are not what TFLite runs).
    """
    pool = tuple(pool_config["pool_size"])
    strides = tuple(pool_config.get("strides") or pool)
    if pool_config.get("padding", "valid") != "valid":
        return None
    if pool_config.get("data_format") not in (None, "channels_last"):
        return None
    arguments = {
        "kernel_size": pool, "strides": strides, "padding": "valid", "use_bias": False,
        "name": pool_config["name"], "trainable": False,
    }
    kernel = np.full((*pool, channels, 1), 1.0 / (pool[0] * pool[1]), np.float32)
    return arguments, kernel


def pools_as_depthwise(model: Any) -> Any:
    """`model` (functional Keras 3, channels-last) with its average pools as depthwise convs.

    Every `AveragePooling2D` that `average_pool_as_depthwise` can replace becomes a frozen
    `DepthwiseConv2D` with the same name; the other layers and all weights are kept. A model
    without such pools is returned unchanged (the same object).
    """
    import keras

    config = model.get_config()
    kernels: dict[str, np.ndarray] = {}
    for entry in config["layers"]:
        if entry["class_name"] != "AveragePooling2D":
            continue
        pool = model.get_layer(entry["config"]["name"])
        found = average_pool_as_depthwise(entry["config"], int(pool.output.shape[-1]))
        if found is None:
            continue
        arguments, kernel = found
        depthwise = keras.layers.DepthwiseConv2D(**arguments, dtype=pool.dtype_policy)
        entry.update(class_name="DepthwiseConv2D", module="keras.layers",
                     config=depthwise.get_config())
        kernels[arguments["name"]] = kernel
    if not kernels:
        return model
    new_model = model.__class__.from_config(config)
    for layer in new_model.layers:
        if layer.name in kernels:
            layer.set_weights([kernels[layer.name]])
        elif weights := model.get_layer(layer.name).get_weights():
            layer.set_weights(weights)
    return new_model
