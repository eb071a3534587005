"""`layer_macs`: multiply-accumulates of one call of a Keras layer, as the GhostNet paper counts.

The counting convention follows the GhostNet paper (Han et al., CVPR 2020),
which reports "FLOPs" as the number of multiply-adds of convolution and
fully-connected layers for a single image:

- Convolutions (`Conv1D/2D/3D`, grouped via `groups`): `prod(output shape) *
  prod(kernel_size) * C_in / groups`.
- Depthwise convolutions: `prod(output shape) * prod(kernel_size)`, i.e.
  `H_out * W_out * C_in * depth_multiplier * kh * kw`.
- Separable convolutions: depthwise part plus the 1x1 pointwise part.
- Transposed convolutions: `prod(input shape) * prod(kernel_size) * filters`.
- `Dense`: `prod(input shape) * units`, so a `Dense` applied to a `(N, T, D)`
  tensor counts `T * D * units`.
- `EinsumDense`: the product of the sizes of all einsum indices (batch = 1).

Batch normalization, activations, pooling, element-wise additions and
multiplications, and bias additions are not counted.
"""

from __future__ import annotations

import math
from typing import Any

import keras

Shape = tuple[int | None, ...]

_CONV_TYPES = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_DEPTHWISE_TYPES = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_SEPARABLE_TYPES = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
_TRANSPOSE_TYPES = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)


def layer_macs(layer: Any, input_shape: Shape, output_shape: Shape) -> int:
    """MACs of one call of a leaf layer for the given (batch = 1) shapes.

    Args:
        layer: A Keras layer or operation.
        input_shape: Shape of the (first) input tensor with batch size 1.
        output_shape: Shape of the output tensor with batch size 1.

    Returns:
        The number of multiply-accumulates; 0 for layers that are not counted.

    Raises:
        ValueError: If a dimension needed for the count is undefined.
    """
    if isinstance(layer, _SEPARABLE_TYPES):
        c_in = _channels(layer, input_shape)
        mid = c_in * layer.depth_multiplier
        out_positions = _prod(output_shape, layer) // layer.filters
        return out_positions * mid * (math.prod(layer.kernel_size) + layer.filters)
    if isinstance(layer, _DEPTHWISE_TYPES):
        return _prod(output_shape, layer) * math.prod(layer.kernel_size)
    if isinstance(layer, _TRANSPOSE_TYPES):
        return _prod(input_shape, layer) * math.prod(layer.kernel_size) * layer.filters
    if isinstance(layer, _CONV_TYPES):
        c_in = _channels(layer, input_shape)
        groups = getattr(layer, "groups", 1) or 1
        return _prod(output_shape, layer) * math.prod(layer.kernel_size) * (c_in // groups)
    if isinstance(layer, keras.layers.Dense):
        return _prod(input_shape, layer) * layer.units
    if isinstance(layer, keras.layers.EinsumDense):
        return _einsum_macs(layer, input_shape)
    return 0


def _channels(layer: Any, input_shape: Shape) -> int:
    axis = -1 if getattr(layer, "data_format", "channels_last") == "channels_last" else 1
    c_in = input_shape[axis]
    if c_in is None:
        raise ValueError(f"Layer {layer.name!r} has an undefined channel dimension.")
    return c_in


def _prod(shape: Shape, layer: Any) -> int:
    if any(d is None for d in shape):
        raise ValueError(f"Layer {layer.name!r} has undefined dimensions in shape {shape}.")
    return math.prod(shape)


def _einsum_macs(layer: Any, input_shape: Shape) -> int:
    """MACs of an `EinsumDense`: the product of the sizes of all indices."""
    try:
        inputs, rest = layer.equation.replace(" ", "").split(",")
        kernel_spec = rest.split("->")[0]
        kernel_shape = tuple(layer.kernel.shape)
    except (AttributeError, ValueError):
        return 0
    if "..." in inputs:
        free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in layer.equation]
        n = len(input_shape) - (len(inputs) - 3)
        inputs = inputs.replace("...", "".join(free[:n]))
    if len(inputs) != len(input_shape) or len(kernel_spec) != len(kernel_shape):
        return 0
    sizes: dict[str, int] = {}
    for letters, shape in ((inputs, input_shape), (kernel_spec, kernel_shape)):
        for letter, dim in zip(letters, shape, strict=True):
            if dim is None:
                raise ValueError(f"Layer {layer.name!r} has undefined dimensions {shape}.")
            sizes[letter] = dim
    return math.prod(sizes.values())
