"""Keras 3 BatchNormalization with TensorFlow's fused training kernel, for faster training.

Models are built, saved and exported with the built-in `keras.layers.BatchNormalization`, so a
`.keras` file loads anywhere without this package. Training code swaps in the fused layer:

    train_model = ghostnet_keras.with_fused_batch_norm(model)   # a copy, same weights
    ...  # train train_model
    model.set_weights(train_model.get_weights())                # back into the portable model
"""

from __future__ import annotations

from typing import Any

import keras


@keras.saving.register_keras_serializable(package="ghostnet_keras")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` that trains with TensorFlow's fused kernel.

    Keras 3 normalizes with separate moment, subtract, multiply and add ops on every backend,
    and differentiates each of them. This subclass computes the training-mode forward pass and
    its gradient with TensorFlow's `FusedBatchNormV3` (as `tf_keras` did): with TensorFlow's
    oneDNN CPU kernels, a GhostNet-1.0 training step ran 1.06x to 1.7x faster on a 2-core VM
    (docs/benchmarks.md). It is the parent layer in every other respect:
    same arguments, config, weights and variable order; the same outputs and moving statistics
    up to float rounding (the moving variance uses the biased batch variance, as the parent
    does); inference, frozen layers (`trainable=False`), masks, `synchronized=True`, `renorm`,
    non-4D inputs, half-precision variables (a plain `float16` policy) and other backends use
    the parent's code path.

    Use `with_fused_batch_norm(model)` to train an existing model with it. Registered as
    serializable: models that contain it load with `keras.saving.load_model` once
    `ghostnet_keras` is imported.

    Args:
        axis: the channel axis. Only the last axis (channels last) uses the fused kernel.
        **kwargs: the arguments of `keras.layers.BatchNormalization`.
    """

    def _uses_fused_kernel(self, inputs: Any, training: Any, mask: Any) -> bool:
        rank = len(inputs.shape)
        return (
            keras.backend.backend() == "tensorflow"
            and bool(training)
            and self.trainable
            and mask is None
            and not self.synchronized
            and not self.renorm
            and rank == 4
            and self.axis in (-1, rank - 1)
            and keras.backend.standardize_dtype(inputs.dtype)
            in ("float32", "float16", "bfloat16")
            and keras.backend.standardize_dtype(self.variable_dtype) == "float32"
        )

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        """Normalizes `inputs`; in training, with the fused kernel where it applies."""
        if not self._uses_fused_kernel(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones([channels], tf.float32)
        beta = self.beta if self.center else tf.zeros([channels], tf.float32)
        empty = tf.constant([], tf.float32)
        outputs, mean, corrected_variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs,
            scale=tf.cast(gamma, tf.float32),
            offset=tf.cast(beta, tf.float32),
            mean=empty,
            variance=empty,
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        # The kernel returns the unbiased (Bessel-corrected) variance; the parent layer, and so
        # this one, averages the biased variance it normalized with into the moving statistic.
        count = tf.cast(tf.size(inputs, out_type=tf.int64) // channels, tf.float32)
        variance = corrected_variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(
            self.moving_mean * self.momentum + mean * (1.0 - self.momentum)
        )
        self.moving_variance.assign(
            self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
        )
        return tf.cast(outputs, self.compute_dtype)


def with_fused_batch_norm(model: keras.Model) -> keras.Model:
    """A copy of `model` with every `BatchNormalization` layer made a `FusedBatchNormalization`.

    The copy has the same layers, names, config and weights (copied, not shared); only the
    class of the batch norms differs (nested models included), so it trains faster on
    TensorFlow and computes the same values up to float rounding. The input layers are
    renamed (as by `keras.models.clone_model`). Copy the trained weights back with
    `model.set_weights(copy.get_weights())`.

    Args:
        model: a functional or Sequential Keras model.

    Returns:
        The new model, built inside the current `tf.distribute` scope if there is one.

    Raises:
        ValueError: `model` is a subclassed model (it has no graph of layers to copy).
    """

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        config = layer.get_config()
        if type(layer) is keras.layers.BatchNormalization:
            return FusedBatchNormalization.from_config(config)
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy
