"""FusedBatchNormalization: the built-in layer's results with TensorFlow's fused training kernel."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import ghostnet_keras
from ghostnet_keras import FusedBatchNormalization, with_fused_batch_norm


def _pair(shape: tuple[int, ...], **kwargs: object) -> tuple[keras.layers.Layer, ...]:
    """A built-in BN and a fused BN with the same random weights and moving statistics."""
    rng = np.random.default_rng(0)
    builtin = keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, **kwargs)
    fused = FusedBatchNormalization(epsilon=1e-5, momentum=0.9, **kwargs)
    builtin.build(shape)
    fused.build(shape)
    weights = [rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in builtin.get_weights()]
    builtin.set_weights(weights)
    fused.set_weights(weights)
    return builtin, fused


def _inputs(shape: tuple[int, ...]) -> tf.Tensor:
    return tf.constant(np.random.default_rng(1).normal(2.0, 3.0, shape).astype("float32"))


def _uses_fused_op(layer: keras.layers.Layer, x: tf.Tensor, training: bool) -> bool:
    graph = tf.function(lambda t: layer(t, training=training)).get_concrete_function(x).graph
    return any(op.type == "FusedBatchNormV3" for op in graph.get_operations())


@pytest.mark.parametrize("shape", [(4, 7, 5, 8), (2, 3, 3, 1), (3, 1, 1, 6)])
def test_training_step_matches_builtin_layer(shape: tuple[int, ...]) -> None:
    builtin, fused = _pair(shape)
    x = _inputs(shape)
    upstream = tf.constant(np.random.default_rng(2).normal(size=shape).astype("float32"))
    results = []
    for layer in (builtin, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * upstream)
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append((y, grads, layer.moving_mean.numpy(), layer.moving_variance.numpy()))
    (y0, g0, mean0, var0), (y1, g1, mean1, var1) = results
    np.testing.assert_allclose(y1, y0, atol=2e-5)
    for a, b in zip(g1, g0, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(mean1, mean0, atol=1e-6)
    np.testing.assert_allclose(var1, var0, rtol=1e-5)
    assert _uses_fused_op(fused, x, training=True)


def test_inference_and_frozen_layers_use_the_builtin_path() -> None:
    shape = (2, 5, 5, 4)
    builtin, fused = _pair(shape)
    x = _inputs(shape)
    np.testing.assert_array_equal(fused(x, training=False), builtin(x, training=False))
    assert not _uses_fused_op(fused, x, training=False)
    builtin.trainable = fused.trainable = False
    np.testing.assert_array_equal(fused(x, training=True), builtin(x, training=True))
    np.testing.assert_array_equal(fused.moving_mean.numpy(), builtin.moving_mean.numpy())


def test_other_ranks_and_axes_fall_back_to_the_builtin_layer() -> None:
    for shape, axis in (((6, 3), -1), ((2, 4, 3, 3), 1)):
        builtin, fused = _pair(shape, axis=axis)
        x = _inputs(shape)
        np.testing.assert_allclose(fused(x, training=True), builtin(x, training=True), atol=1e-5)
        assert not _uses_fused_op(fused, x, training=True)


@pytest.mark.parametrize(("policy", "tolerance"),
                         [("mixed_float16", 2e-2), ("mixed_bfloat16", 1.5e-1)])
def test_mixed_precision(policy: str, tolerance: float) -> None:
    shape = (2, 6, 6, 8)
    builtin, _ = _pair(shape)
    half = FusedBatchNormalization(epsilon=1e-5, momentum=0.9, dtype=policy)
    half.build(shape)
    half.set_weights(builtin.get_weights())
    x = _inputs(shape)
    # the margin: normalising with the moving statistics instead of the batch's (a wrong
    # kernel) is off by more than 20x the tolerance; the outputs are of order 1-5
    wrong = builtin(x, training=False)
    expected = builtin(x, training=True)
    assert np.abs(wrong - expected).max() > 20 * tolerance
    x_half = tf.cast(x, half.compute_dtype)
    assert _uses_fused_op(half, x_half, training=True)
    y_half = half(x_half, training=True)
    assert y_half.dtype == half.compute_dtype and half.moving_mean.dtype == "float32"
    np.testing.assert_allclose(tf.cast(y_half, tf.float32), expected, atol=tolerance)
    np.testing.assert_allclose(half.moving_mean.numpy(), builtin.moving_mean.numpy(),
                               atol=tolerance / 10)
    np.testing.assert_allclose(half.moving_variance.numpy(), builtin.moving_variance.numpy(),
                               rtol=tolerance / 10)


def test_plain_half_precision_policy_falls_back() -> None:
    layer = FusedBatchNormalization(dtype="float16")
    x = tf.cast(_inputs((2, 4, 4, 3)), tf.float16)
    assert not _uses_fused_op(layer, x, training=True)
    assert layer(x, training=True).dtype == tf.float16


def test_without_scale_and_center_and_under_xla() -> None:
    shape = (3, 5, 4, 6)
    builtin, fused = _pair(shape, center=False, scale=False)
    x = _inputs(shape)
    assert _uses_fused_op(fused, x, training=True)
    compiled = tf.function(lambda t: fused(t, training=True), jit_compile=True)
    # outputs of order 1: the moving statistics instead of the batch's would be off by > 1,
    # an epsilon of 1e-3 instead of 1e-5 by > 1e-4 (5x the tolerance)
    expected = builtin(x, training=True)
    assert np.abs(tf.nn.batch_normalization(x, *tf.nn.moments(x, [0, 1, 2]), None, None, 1e-3)
                  - expected).max() > 5 * 2e-5
    np.testing.assert_allclose(compiled(x), expected, atol=2e-5)
    np.testing.assert_allclose(fused.moving_variance.numpy(), builtin.moving_variance.numpy(),
                               rtol=1e-5)


def test_with_fused_batch_norm_copies_a_model(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = ghostnet_keras.GhostNet(width=0.5, input_shape=(64, 64, 3), weights=None, classes=10,
                                    dropout_rate=0.0, classifier_activation=None)
    fused = with_fused_batch_norm(model)
    assert fused is not model and fused.name == model.name
    pairs = list(zip(model.layers, fused.layers, strict=True))
    norms = [(a, b) for a, b in pairs if isinstance(a, keras.layers.BatchNormalization)]
    assert len(norms) > 50
    for original, copy in pairs:
        if isinstance(original, keras.layers.InputLayer):  # clone_model renames the input
            continue
        assert copy.name == original.name and copy.get_config() == original.get_config()
        expected = FusedBatchNormalization if (original, copy) in norms else type(original)
        assert type(copy) is expected
    assert all(type(a) is keras.layers.BatchNormalization for a, _ in norms)  # untouched
    for a, b in zip(model.weights, fused.weights, strict=True):
        assert a is not b
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # batch 4 at 64 x 64: the last stage's batch statistics are still taken over 16 values
    # (over 2, rounding differences of near-zero variances grow through the net).
    x = _inputs((4, 64, 64, 3))
    np.testing.assert_array_equal(fused(x, training=False), model(x, training=False))
    # Fused and unfused batch statistics round differently: up to ~2e-4 on logits of ~0.5 (seen
    # in CI); moving instead of batch statistics would be off by whole units.
    np.testing.assert_allclose(fused(x, training=True), model(x, training=True), atol=5e-4)
    path = f"{tmp_path}/fused.keras"
    fused.save(path)  # loads once ghostnet_keras is imported (registered)
    assert type(keras.saving.load_model(path).get_layer(norms[0][0].name)) is (
        FusedBatchNormalization)


def test_with_fused_batch_norm_reaches_nested_models() -> None:
    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.BatchNormalization()], name="backbone")
    outer = keras.Sequential([keras.Input((8, 8, 3)), inner, keras.layers.GlobalAveragePooling2D(),
                              keras.layers.BatchNormalization()])
    copy = with_fused_batch_norm(outer)
    assert type(copy.layers[0].layers[-1]) is FusedBatchNormalization
    assert type(copy.layers[-1]) is FusedBatchNormalization
    x = _inputs((2, 8, 8, 3))
    np.testing.assert_array_equal(copy(x, training=False), outer(x, training=False))
