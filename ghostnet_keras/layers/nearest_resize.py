"""`NearestResize`: PyTorch's legacy nearest resize to the size of another tensor.

GhostNetV2/V3's DFC gate is computed on a 2x2-average-pooled map and brought back to the
module's size with `F.interpolate(size=out.shape[-2:], mode="nearest")`, whose rule is the
legacy one: output row `d` reads input row `floor(d * in / out)`. Keras' `Resizing` and
`keras.ops.image.resize` use half-pixel centres and pick other pixels whenever `out` is not an
integer multiple of `in` (at 224 x 224 the stride-32 gate is 3x3 resized to 7x7). For
`out = 2 * in` the rule is a plain 2x repetition; for `out = 2 * in + 1` (odd maps, where the
average pool floors) it is a 2x repetition with the first row/column repeated once more.

No built-in layer resizes to the (dynamic) size of another tensor, hence this one small layer:

- TensorFlow backend, static sizes with `out = 2 * in` or `2 * in + 1` (every DFC gate): four
  copies of the input as channels -> `depth_to_space(2)`, then the first row/column once more
  when odd. TFLite: CONCATENATION, DEPTH_TO_SPACE, SLICE, all taken by XNNPACK (CPU) and the GPU
  delegate, so the network stays one XNNPACK partition (RESIZE_NEAREST_NEIGHBOR is not an
  XNNPACK op: each gate would cut the graph in two).
- TensorFlow backend, other sizes (dynamic ones included):
  `ResizeNearestNeighbor(align_corners=False, half_pixel_centers=False)`, TF's legacy kernel
  with exactly this rule (TFLite RESIZE_NEAREST_NEIGHBOR).
- Other backends (JAX, torch, NumPy): the same indices computed in integers and gathered with
  `keras.ops.take`.
"""

from __future__ import annotations

import functools
from typing import Any

import keras


def gather_resize(x: Any, reference: Any) -> Any:
    """The legacy nearest rule with `keras.ops` only (any backend): integer indices + take."""
    ops = keras.ops
    for axis in (1, 2):
        size_in, size_out = ops.shape(x)[axis], ops.shape(reference)[axis]
        index = ops.floor_divide(ops.arange(size_out, dtype="int32") * size_in, size_out)
        x = ops.take(x, index, axis=axis)
    return x


def tf_resize(x: Any, reference: Any) -> Any:
    """The legacy nearest rule with TensorFlow ops (TensorFlow backend and the tf_keras twin)."""
    import tensorflow as tf

    size_in, size_out = tuple(x.shape[1:3]), tuple(reference.shape[1:3])
    odd = [o - 2 * i if None not in (i, o) else None
           for i, o in zip(size_in, size_out, strict=True)]
    if all(extra in (0, 1) for extra in odd):
        y = tf.nn.depth_to_space(tf.concat([x] * 4, axis=-1), 2)
        if odd[0]:
            y = tf.concat([y[:, :1], y], axis=1)
        if odd[1]:
            y = tf.concat([y[:, :, :1], y], axis=2)
        return y
    return tf.raw_ops.ResizeNearestNeighbor(
        images=x, size=tf.shape(reference)[1:3], align_corners=False, half_pixel_centers=False,
    )


@keras.saving.register_keras_serializable(package="ghostnet_keras")
class NearestResize(keras.layers.Layer):
    """Resizes `inputs[0]` to the height and width of `inputs[1]` (legacy nearest rule).

    Output pixel `(i, j)` is input pixel `(floor(i * h_in / h_out), floor(j * w_in / w_out))`,
    as in PyTorch's `F.interpolate(mode="nearest")` and TF's legacy resize. Channels last.
    Registered as serializable, so models that contain it load with `keras.models.load_model`
    once `ghostnet_keras` is imported.

    Call arguments:
        inputs: `[x, reference]`: `x` of shape `(N, h_in, w_in, C)` is resized to the spatial
            size of `reference` `(N, h_out, w_out, ...)`.
    """

    def call(self, inputs: Any) -> Any:
        x, reference = inputs
        if keras.backend.backend() == "tensorflow":
            return tf_resize(x, reference)
        return gather_resize(x, reference)

    def compute_output_shape(self, input_shapes: Any) -> tuple:
        x_shape, reference_shape = input_shapes
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])


@functools.cache
def tf_keras_nearest_resize() -> type:
    """The tf_keras twin of `NearestResize`, for the QAT graph built with `tf_keras.layers`.

    Same name, same computation (`tf_resize`); defined on first use so that only the QAT path
    imports tf_keras.
    """
    import tensorflow as tf
    import tf_keras

    @tf_keras.utils.register_keras_serializable(package="ghostnet_keras")
    class NearestResize(tf_keras.layers.Layer):
        """tf_keras twin of `ghostnet_keras.NearestResize` (PyTorch's legacy nearest rule)."""

        def call(self, inputs: Any) -> Any:
            return tf_resize(*inputs)

        def compute_output_shape(self, input_shapes: Any) -> Any:
            x_shape, reference_shape = (tf.TensorShape(s).as_list() for s in input_shapes)
            return tf.TensorShape(
                [x_shape[0], reference_shape[1], reference_shape[2], x_shape[3]]
            )

    return NearestResize


def nearest_resize_layer(layers: Any) -> type:
    """`NearestResize` for a layers module: `keras.layers` or `tf_keras.layers`."""
    if layers is keras.layers:
        return NearestResize
    if getattr(layers, "__name__", "").startswith("tf_keras"):
        return tf_keras_nearest_resize()
    raise ValueError(f"NearestResize exists for keras.layers and tf_keras.layers, not {layers}.")
