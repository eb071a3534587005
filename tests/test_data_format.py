"""channels_first models, any input channel count, and `to_channels_last`, on every backend.

Building, configs, `.keras` round trips and weights run everywhere. Running NCHW convolutions
needs JAX or PyTorch (or a GPU): TensorFlow on CPU has no NCHW kernels, so those checks skip
there, as in keras' own tests, and the TensorFlow suite checks the same numbers through
`to_channels_last`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest

import ghostnet_keras
from ghostnet_keras import GhostNet, to_channels_last, to_data_format
from ghostnet_keras.data_format import model_data_format
from ghostnet_keras.models.ghostify import ghostify

pytestmark = pytest.mark.portable

FORMAT_LAYERS = (
    keras.layers.Conv2D, keras.layers.ZeroPadding2D, keras.layers.GlobalAveragePooling2D,
    keras.layers.GlobalMaxPooling2D, keras.layers.Flatten,
)


def runs_nchw() -> bool:
    """Whether this backend can run channels_first convolutions here."""
    if keras.backend.backend() != "tensorflow":
        return True
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


needs_nchw = pytest.mark.skipif(
    not runs_nchw(), reason="TensorFlow runs channels_first convolutions only on GPU"
)


@pytest.fixture
def channels_first() -> Iterator[None]:
    keras.config.set_image_data_format("channels_first")
    try:
        yield
    finally:
        keras.config.set_image_data_format("channels_last")


@pytest.fixture(scope="module")
def pair() -> tuple[keras.Model, keras.Model]:
    """GhostNet 0.5x at 64 x 64 in both formats, the same weights."""
    last = GhostNet(width=0.5, input_shape=(64, 64, 3), classifier_activation=None)
    keras.config.set_image_data_format("channels_first")
    try:
        first = GhostNet(width=0.5, input_shape=(3, 64, 64), classifier_activation=None)
    finally:
        keras.config.set_image_data_format("channels_last")
    first.set_weights(last.get_weights())
    return first, last


def _names(model: keras.Model) -> list[str]:
    return [layer.name for layer in model.layers[1:]]  # inputs are auto-named


def _images(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


def test_channels_first_graph(pair: tuple[keras.Model, keras.Model]) -> None:
    first, last = pair
    assert first.input_shape == (None, 3, 64, 64)
    assert model_data_format(first) == "channels_first"
    assert model_data_format(last) == "channels_last"
    for layer in first.layers:
        if isinstance(layer, FORMAT_LAYERS):
            assert layer.data_format == "channels_first", layer.name
        if isinstance(layer, (keras.layers.BatchNormalization, keras.layers.Concatenate)):
            assert layer.axis == 1, layer.name
    # The same layers and weight shapes: every weights file fits both formats.
    assert _names(first) == _names(last)
    assert [w.shape for w in first.weights] == [w.shape for w in last.weights]
    assert first.count_params() == last.count_params() == 2_598_276  # as at 224 x 224
    assert ghostnet_keras.profile(first).macs == ghostnet_keras.profile(last).macs


def test_channels_first_shapes_and_features(channels_first: None) -> None:
    model = GhostNet(width=0.5, include_top=False, input_shape=(3, None, None))
    assert model.output_shape == (None, 480, None, None)
    features = ghostnet_keras.feature_extractor(model)
    shapes = {name: tuple(t.shape) for name, t in features.output.items()}
    assert shapes == {
        "stride_4": (None, 12, None, None), "stride_8": (None, 20, None, None),
        "stride_16": (None, 56, None, None), "stride_32": (None, 480, None, None),
    }
    pooled = GhostNet(width=0.5, include_top=False, pooling="avg", input_shape=(3, 64, 64))
    assert pooled.output_shape == (None, 480)
    with pytest.raises(ValueError, match=r"\(channels, height, width\)"):
        GhostNet(width=0.5, input_shape=(64, 64, 3))  # channels last shape in channels_first
    with pytest.raises(ValueError, match="known channel count"):
        GhostNet(width=0.5, input_tensor=keras.Input((None, 64, 64)))


def test_keras_file_records_and_restores_the_format(
    pair: tuple[keras.Model, keras.Model], tmp_path: Path
) -> None:
    first, _ = pair
    first.save(tmp_path / "first.keras")
    loaded = keras.saving.load_model(tmp_path / "first.keras")  # global format: channels_last
    assert keras.config.image_data_format() == "channels_last"
    assert loaded.input_shape == (None, 3, 64, 64)
    assert model_data_format(loaded) == "channels_first"
    assert loaded.get_layer("block3a_ghost1_concat").axis == 1
    for a, b in zip(loaded.weights, first.weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_weights_files_load_into_both_formats(
    pair: tuple[keras.Model, keras.Model], tmp_path: Path, channels_first: None
) -> None:
    _, last = pair
    last.save_weights(tmp_path / "last.weights.h5")
    last.save(tmp_path / "last.keras")
    for path in ("last.weights.h5", "last.keras"):
        model = GhostNet(width=0.5, input_shape=(3, 64, 64), classifier_activation=None,
                         weights=tmp_path / path)
        assert model_data_format(model) == "channels_first"
        for a, b in zip(model.weights, last.weights, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_to_channels_last_matches_the_channels_last_model(
    pair: tuple[keras.Model, keras.Model]
) -> None:
    first, last = pair
    converted = to_channels_last(first)
    assert to_channels_last(last) is last
    assert converted.input_shape == (None, 64, 64, 3)
    assert model_data_format(converted) == "channels_last"
    assert _names(converted) == _names(last)
    x = _images((2, 64, 64, 3))
    np.testing.assert_allclose(
        converted.predict(x, verbose=0), last.predict(x, verbose=0), rtol=0, atol=1e-5
    )
    # and back: the channels_first config is restored exactly
    back = to_data_format(converted, "channels_first")
    assert back.get_config()["layers"] == first.get_config()["layers"]


@needs_nchw
def test_channels_first_computes_what_channels_last_computes(
    pair: tuple[keras.Model, keras.Model]
) -> None:
    first, last = pair
    x = _images((2, 64, 64, 3), seed=1)
    np.testing.assert_allclose(
        first.predict(x.transpose(0, 3, 1, 2), verbose=0), last.predict(x, verbose=0),
        rtol=0, atol=1e-4,
    )


@pytest.mark.slow
def test_channels_first_parity_with_reference(reference_dir: Path) -> None:
    """Reference weights in a channels_first GhostNet reproduce the reference outputs."""
    expected = np.load(reference_dir / "ghostnet_050_expected.npz")
    keras.config.set_image_data_format("channels_first")
    try:
        model = GhostNet(width=0.5, weights=reference_dir / "ghostnet_050.safetensors",
                         classifier_activation=None)
    finally:
        keras.config.set_image_data_format("channels_last")
    images = expected["images"]
    if runs_nchw():
        logits = model.predict(images.transpose(0, 3, 1, 2), verbose=0)
        stage = keras.Model(model.inputs, model.get_layer("block4a_add").output)
        blocks4 = stage.predict(images.transpose(0, 3, 1, 2), verbose=0).transpose(0, 2, 3, 1)
    else:  # TensorFlow on CPU: the same model, rebuilt channels_last
        converted = to_channels_last(model)
        logits = converted.predict(images, verbose=0)
        stage = keras.Model(converted.inputs, converted.get_layer("block4a_add").output)
        blocks4 = stage.predict(images, verbose=0)
    np.testing.assert_allclose(logits, expected["logits"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(blocks4, expected["blocks.4"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("channels", [1, 4])
def test_any_channel_count_with_preprocessing(channels: int) -> None:
    model = GhostNet(width=0.5, input_shape=(64, 64, channels), classes=3)
    assert model.get_layer("stem_conv").kernel.shape == (3, 3, channels, 8)
    pre = keras.Model(model.inputs, model.get_layer("preprocessing").output)
    x = _images((2, 64, 64, channels), seed=2)
    expected = (x / 255 - 0.449) / 0.226  # the averaged ImageNet mean and std, every channel
    np.testing.assert_allclose(ghostnet_keras.normalize_input(x), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pre.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    assert model.predict(x, verbose=0).shape == (2, 3)
    with pytest.raises(ValueError, match="3 \\(RGB\\) input channels"):
        GhostNet(width=1.0, weights="imagenet", input_shape=(64, 64, channels))


@needs_nchw
def test_channels_first_preprocessing_per_channel(channels_first: None) -> None:
    model = GhostNet(width=0.5, input_shape=(3, 64, 64), include_top=False)
    pre = keras.Model(model.inputs, model.get_layer("preprocessing").output)
    x = _images((2, 3, 64, 64), seed=3)
    np.testing.assert_allclose(
        pre.predict(x, verbose=0), ghostnet_keras.normalize_input(x), rtol=1e-5, atol=1e-5
    )


def _small_cnn() -> keras.Model:
    """A CNN in the global data format."""
    first = keras.config.image_data_format() == "channels_first"
    inputs = keras.Input((3, 32, 32) if first else (32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = keras.layers.BatchNormalization(axis=1 if first else -1, name="bn1")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.Conv2D(12, 1, name="c3")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="out")(x))


def test_ghostify_a_channels_first_model(channels_first: None) -> None:
    ghost = ghostify(_small_cnn(), ratio=3)  # 16 -> 18 channels, trimmed
    assert model_data_format(ghost) == "channels_first"
    assert ghost.get_layer("c2_concat").axis == 1
    assert ghost.get_layer("c2_trim").output.shape == (None, 16, 16, 16)
    keras.config.set_image_data_format("channels_last")
    reference = ghostify(_small_cnn(), ratio=3)
    reference.set_weights(ghost.get_weights())
    x = _images((2, 32, 32, 3), seed=4)
    expected = reference.predict(x, verbose=0)
    np.testing.assert_allclose(to_channels_last(ghost).predict(x, verbose=0), expected,
                               rtol=1e-5, atol=1e-5)
    if runs_nchw():
        np.testing.assert_allclose(
            ghost.predict(x.transpose(0, 3, 1, 2), verbose=0), expected, rtol=1e-5, atol=1e-5
        )


@pytest.mark.slow
def test_resnet_and_cifar_models_in_channels_first(channels_first: None) -> None:
    from ghostnet_keras.models import cifar

    model = cifar.ghost_resnet56()
    assert model.input_shape == (None, 3, 32, 32)
    assert model.output_shape == (None, 10)
    assert model.get_layer("stage2_block1_shortcut_pad_channels").axis == 1
    assert model_data_format(model) == "channels_first"
    resnet = ghostnet_keras.GhostResNet50(include_top=False, input_shape=(1, 64, 64))
    assert resnet.output_shape == (None, 2048, 2, 2)
    assert model_data_format(resnet) == "channels_first"


def test_to_channels_last_refuses_what_it_cannot_rewrite(channels_first: None) -> None:
    inputs = keras.Input((3, 32, 32))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    x = keras.layers.Reshape((4, -1), name="reshape")(x)
    with pytest.raises(ValueError, match=r"'reshape' \(Reshape\).*set_image_data_format"):
        to_channels_last(keras.Model(inputs, x))
    dense = keras.layers.Dense(3, name="dense_4d")(keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match="'dense_4d'"):
        to_channels_last(keras.Model(inputs, dense))
    sequence = keras.Input((3, 16))
    with pytest.raises(ValueError, match="only 4D image inputs"):
        to_channels_last(keras.Model(sequence, keras.layers.Conv1D(2, 1)(sequence)))
    with pytest.raises(TypeError, match="functional"):
        to_channels_last(keras.Sequential([keras.Input((3, 8, 8)), keras.layers.Conv2D(2, 1)]))
    with pytest.raises(ValueError, match="data_format"):
        to_data_format(keras.Model(inputs, x), "NHWC")
