"""ghostify: plug-and-play Ghost modules in existing Keras models."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import ghostnet_keras
from ghostnet_keras import ChannelSlice, ghostify
from ghostnet_keras.models.ghostify import is_replaceable_conv


def _small_cnn(sequential: bool = False) -> keras.Model:
    layers = [
        keras.layers.Conv2D(16, 3, padding="same", name="conv1"),
        keras.layers.BatchNormalization(name="bn1"),
        keras.layers.ReLU(name="relu1"),
        keras.layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="conv2"),
        keras.layers.BatchNormalization(name="bn2"),
        keras.layers.ReLU(name="relu2"),
        keras.layers.Conv2D(24, 1, activation="relu", name="conv3"),
        keras.layers.DepthwiseConv2D(3, padding="same", name="dw"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(5, name="logits"),
    ]
    if sequential:
        return keras.Sequential([keras.Input((32, 32, 3)), *layers], name="seq")
    inputs = keras.Input((32, 32, 3))
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x, name="cnn")


def _output_shapes(model: keras.Model) -> dict[str, tuple]:
    return {layer.name: tuple(layer.output.shape) for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer)}


def _replaced_output_shape(model: keras.Model, conv_name: str) -> tuple:
    for suffix in ("_act", "_trim", "_concat"):
        try:
            return tuple(model.get_layer(conv_name + suffix).output.shape)
        except ValueError:
            continue
    raise AssertionError(f"{conv_name} was not replaced")


def _assert_shapes_preserved(original: keras.Model, ghost: keras.Model) -> list[str]:
    """Every layer keeps its output shape; returns the names of the replaced convs."""
    new_shapes = _output_shapes(ghost)
    replaced = []
    for name, shape in _output_shapes(original).items():
        if name in new_shapes:
            assert new_shapes[name] == shape, name
        else:
            assert _replaced_output_shape(ghost, name) == shape, name
            replaced.append(name)
    return replaced


@pytest.mark.parametrize("sequential", [False, True])
def test_small_cnn_structure_and_channels(sequential: bool) -> None:
    original = _small_cnn(sequential)
    ghost = ghostify(original)
    replaced = _assert_shapes_preserved(original, ghost)
    assert replaced == ["conv2", "conv3"]  # conv1, the first conv, is kept by default
    assert ghost.get_layer("conv2_primary_conv").filters == 16
    assert ghost.get_layer("conv2_primary_conv").strides == (2, 2)
    assert ghost.get_layer("conv2_primary_conv").kernel_size == (3, 3)
    assert ghost.get_layer("conv2_cheap_dwconv").kernel_size == (3, 3)
    assert ghost.get_layer("conv3_act").activation is keras.activations.relu
    assert isinstance(ghost.get_layer("dw"), keras.layers.DepthwiseConv2D)  # kept
    assert ghost.name == f"ghost_{original.name}"


def test_kept_layers_keep_their_weights() -> None:
    original = _small_cnn()
    ghost = ghostify(original)
    for name in ("conv1", "bn2", "dw", "logits"):
        for old, new in zip(original.get_layer(name).get_weights(),
                            ghost.get_layer(name).get_weights(), strict=True):
            np.testing.assert_array_equal(old, new)
    fresh = ghostify(original, copy_weights=False)
    assert not np.array_equal(fresh.get_layer("logits").get_weights()[0],
                              original.get_layer("logits").get_weights()[0])


def test_keep_by_name_predicate_and_none_kept() -> None:
    original = _small_cnn()
    assert _assert_shapes_preserved(original, ghostify(original, keep=())) == [
        "conv1", "conv2", "conv3"]
    assert _assert_shapes_preserved(original, ghostify(original, keep=["conv1", "conv3"])) == [
        "conv2"]
    by_kernel = ghostify(original, keep=lambda layer: layer.kernel_size == (1, 1))
    assert _assert_shapes_preserved(original, by_kernel) == ["conv1", "conv2"]


def test_bad_arguments() -> None:
    original = _small_cnn()
    with pytest.raises(ValueError, match="ratio"):
        ghostify(original, ratio=1)
    with pytest.raises(ValueError, match="dw_size"):
        ghostify(original, dw_size=4)
    with pytest.raises(ValueError, match="does not have"):
        ghostify(original, keep=["conv9"])
    with pytest.raises(TypeError, match="predicate"):
        ghostify(original, keep="conv1")
    with pytest.raises(TypeError, match=r"keras\.Model"):
        ghostify(keras.layers.Conv2D(3, 3))


def test_subclassed_model_is_rejected() -> None:
    class Subclassed(keras.Model):
        def __init__(self) -> None:
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3)

        def call(self, x):
            return self.conv(x)

    with pytest.raises(TypeError, match="subclassed"):
        ghostify(Subclassed())


def test_sequential_without_input_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"keras\.Input"):
        ghostify(keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.Conv2D(4, 3)]))


def test_name_clash_is_reported() -> None:
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="a")(inputs)
    x = keras.layers.Conv2D(4, 3, name="b")(x)
    model = keras.Model(inputs, keras.layers.ReLU(name="b_concat")(x))
    with pytest.raises(ValueError, match="b_concat"):
        ghostify(model)


def test_grouped_conv_is_kept_with_a_warning() -> None:
    inputs = keras.Input((16, 16, 8))
    x = keras.layers.Conv2D(8, 3, name="first")(inputs)
    x = keras.layers.Conv2D(16, 3, groups=4, name="grouped")(x)
    model = keras.Model(inputs, keras.layers.Conv2D(8, 1, name="last")(x))
    assert not is_replaceable_conv(model.get_layer("grouped"))
    with pytest.warns(UserWarning, match="grouped"):
        ghost = ghostify(model)
    assert ghost.get_layer("grouped").groups == 4
    assert _assert_shapes_preserved(model, ghost) == ["last"]


def test_ratio_that_does_not_divide_trims_and_round_trips(tmp_path) -> None:
    original = _small_cnn()
    ghost = ghostify(original, ratio=3)  # 32 -> 11 * 3 = 33 channels, trimmed to 32
    assert isinstance(ghost.get_layer("conv2_trim"), ChannelSlice)
    _assert_shapes_preserved(original, ghost)
    x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype("float32")
    ghost.save(tmp_path / "g.keras")
    loaded = keras.models.load_model(tmp_path / "g.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), ghost.predict(x, verbose=0),
                               atol=1e-6)


def _replaced_conv_cost(original: keras.Model, ghost: keras.Model, replaced: list[str]):
    before = sum(int(np.prod(original.get_layer(n).kernel.shape)) for n in replaced)
    after = sum(
        int(np.prod(ghost.get_layer(f"{n}_primary_conv").kernel.shape))
        + int(np.prod(ghost.get_layer(f"{n}_cheap_dwconv").kernel.shape))
        for n in replaced
    )
    return after / before


@pytest.mark.slow
@pytest.mark.parametrize("ratio", [2, 4])
def test_keras_resnet50_params_drop_about_one_over_s(ratio: int) -> None:
    original = keras.applications.ResNet50(weights=None)
    ghost = ghostify(original, ratio=ratio)
    replaced = _assert_shapes_preserved(original, ghost)
    assert len(replaced) == 52  # all convs but conv1_conv, incl. the 4 projection shortcuts
    assert "conv1_conv" not in replaced
    assert 1 / ratio <= _replaced_conv_cost(original, ghost, replaced) <= 1.04 / ratio


@pytest.mark.slow
def test_keras_vgg16_and_mobilenetv2() -> None:
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    ghost_vgg = ghostify(vgg)
    assert len(_assert_shapes_preserved(vgg, ghost_vgg)) == 12
    assert ghost_vgg.get_layer("block5_conv3_act").activation is keras.activations.relu
    x = np.random.default_rng(1).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    assert (ghost_vgg.predict(x, verbose=0) >= 0).all()

    mobilenet = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3))
    ghost_mobilenet = ghostify(mobilenet)
    replaced = _assert_shapes_preserved(mobilenet, ghost_mobilenet)
    depthwise = [layer for layer in ghost_mobilenet.layers
                 if isinstance(layer, keras.layers.DepthwiseConv2D)]
    # MobileNetV2's own 17 depthwise convs stay; each Ghost module adds one cheap one.
    assert len(depthwise) == 17 + len(replaced)
    assert "Conv1" not in replaced and "Conv_1" in replaced


@pytest.mark.slow
def test_ghostified_model_trains_saves_and_converts_to_tflite(tmp_path) -> None:
    ghost = ghostify(_small_cnn(sequential=True))
    rng = np.random.default_rng(2)
    x = rng.normal(size=(16, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 5, 16)
    ghost.compile(optimizer=keras.optimizers.SGD(0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    first = ghost.train_on_batch(x, y)
    for _ in range(5):
        last = ghost.train_on_batch(x, y)
    assert np.isfinite(last) and last < first

    ghost.save(tmp_path / "ghost.keras")
    loaded = keras.models.load_model(tmp_path / "ghost.keras")
    expected = ghost.predict(x[:2], verbose=0)
    np.testing.assert_allclose(loaded.predict(x[:2], verbose=0), expected, atol=1e-6)

    tflite = tf.lite.TFLiteConverter.from_keras_model(ghost).convert()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=tflite)
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], [2, 32, 32, 3])
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[:2])
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_public_api_exports() -> None:
    assert ghostnet_keras.ghostify is ghostify
