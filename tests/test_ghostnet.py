"""GhostNet constructor: keras.applications interface, graph rules, sizes, save/load, precision."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest

import ghostnet_keras
from ghostnet_keras import GhostNet, make_divisible
from ghostnet_keras.models.ghostnet import STAGES
from ghostnet_keras.synthetic_images import synthetic_images
from tests.peaked_models import peaked_ghostnet

# Reference doc section 5: (trainable + BN gamma/beta, Keras count_params).
REFERENCE_PARAMS = {0.5: (2_587_292, 2_598_276), 1.0: (5_182_508, 5_204_476),
                    1.3: (7_358_820, 7_387_356)}


def _bn_moving_stats(model: keras.Model) -> int:
    return sum(
        int(np.prod(layer.moving_mean.shape)) * 2
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    )


@pytest.mark.parametrize("width", [0.5, 1.0, 1.3])
def test_parameter_counts_match_reference(width: float) -> None:
    model = GhostNet(width=width)
    without_stats, with_stats = REFERENCE_PARAMS[width]
    assert model.count_params() == with_stats
    assert model.count_params() - _bn_moving_stats(model) == without_stats


@pytest.mark.parametrize("width", [0.75, 1.1, 1.6])
def test_any_width_follows_the_rounding_rule(width: float) -> None:
    model = GhostNet(width=width, include_top=False)
    assert model.get_layer("stem_conv").filters == make_divisible(16 * width)
    for stage_index, stage in enumerate(STAGES):
        for block_index, spec in enumerate(stage):
            prefix = f"block{stage_index}{chr(ord('a') + block_index)}"
            mid = model.get_layer(f"{prefix}_ghost1_concat").output.shape[-1]
            out = model.get_layer(f"{prefix}_add").output.shape[-1]
            assert (mid, out) == (
                make_divisible(spec.expansion * width), make_divisible(spec.out_channels * width)
            ), prefix
    assert model.output.shape == (None, 7, 7, make_divisible(960 * width))


def test_flat_graph_of_builtin_layers() -> None:
    model = GhostNet(width=1.0)
    for layer in model.layers:
        assert type(layer).__module__.startswith("keras.src.layers"), layer.name
        assert not isinstance(layer, (keras.Model, keras.layers.Lambda)), layer.name
        if isinstance(layer, keras.layers.Concatenate):
            assert layer.axis == -1
    names = [layer.name for layer in model.layers]
    assert len(names) == len(set(names))
    assert not any(name.endswith("_trim") for name in names)


def test_layer_names_by_block() -> None:
    names = {layer.name for layer in GhostNet(width=1.0).layers}
    expected = {"preprocessing", "stem_conv", "block0a_ghost1_primary_conv",
                "block6d_se_reduce_conv", "block7a_dw_dwconv", "block8d_add", "top_conv",
                "avg_pool", "head_conv", "dropout", "predictions"}
    assert expected <= names


def test_top_and_pooling_variants() -> None:
    assert GhostNet(width=0.5).output.shape == (None, 1000)
    assert GhostNet(width=0.5, classes=7, dropout_rate=0.0).output.shape == (None, 7)
    assert GhostNet(width=0.5, include_top=False).output.shape == (None, 7, 7, 480)
    assert GhostNet(width=0.5, include_top=False, pooling="avg").output.shape == (None, 480)
    assert GhostNet(width=0.5, include_top=False, pooling="max").output.shape == (None, 480)
    flexible = GhostNet(width=0.5, input_shape=(None, None, 3))
    assert flexible.predict(np.zeros((1, 96, 160, 3)), verbose=0).shape == (1, 1000)


def test_input_tensor_and_name() -> None:
    tensor = keras.Input((128, 128, 3))
    model = GhostNet(width=0.5, input_tensor=tensor, name="my_ghostnet")
    assert model.name == "my_ghostnet"
    assert model.inputs[0] is tensor
    assert model.output.shape == (None, 1000)
    assert GhostNet(width=1.0).name == "ghostnet_100"
    assert ghostnet_keras.GhostNet130().name == "ghostnet_130"


def test_fixed_width_constructors() -> None:
    for constructor, width in ((ghostnet_keras.GhostNet050, 0.5),
                               (ghostnet_keras.GhostNet100, 1.0),
                               (ghostnet_keras.GhostNet130, 1.3)):
        model = constructor(include_top=False)
        assert model.get_layer("top_conv").filters == make_divisible(960 * width)
        assert "Instantiates the GhostNet" in constructor.__doc__


def test_softmax_output_sums_to_one() -> None:
    x = np.random.default_rng(0).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    probs = GhostNet(width=0.5).predict(x, verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"width": 0}, "width"),
        ({"width": -1.0}, "width"),
        ({"width": "wide"}, "width"),
        ({"weights": "no/such/file.h5"}, "not an existing file"),
        ({"weights": "imagenet", "width": 0.5}, "only for width 1.0"),
        ({"weights": "imagenet", "classes": 10}, "classes"),
        ({"pooling": "mean", "include_top": False}, "pooling"),
        ({"classes": 0}, "classes"),
        ({"dropout_rate": 1.5}, "dropout_rate"),
        ({"input_shape": (224, 224)}, "input_shape"),
        ({"input_shape": (16, 224, 3)}, "at least 32"),
        ({"weights": "imagenet", "input_shape": (224, 224, 1)}, "3 \\(RGB\\) input channels"),
        ({"weights": "imagenet", "input_tensor": keras.Input((64, 64, 4))}, "4 channels"),
        ({"weights": "imagenet", "classifier_activation": "relu"}, "classifier_activation"),
    ],
)
def test_argument_validation(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GhostNet(**kwargs)


def test_grayscale_without_preprocessing_is_allowed() -> None:
    model = GhostNet(width=0.5, input_shape=(64, 64, 1), include_preprocessing=False, classes=10)
    assert model.output.shape == (None, 10)


def test_preprocessing_layer_matches_normalize_input() -> None:
    x = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    with_pre = GhostNet(width=0.5, input_shape=(64, 64, 3), include_top=False)
    without = GhostNet(width=0.5, input_shape=(64, 64, 3), include_top=False,
                       include_preprocessing=False)
    without.set_weights(with_pre.get_weights())
    np.testing.assert_allclose(
        with_pre.predict(x, verbose=0),
        without.predict(ghostnet_keras.normalize_input(x), verbose=0),
        atol=1e-4,
    )
    assert ghostnet_keras.preprocess_input(x) is x


@pytest.mark.slow
def test_keras_file_round_trip_in_a_fresh_process(tmp_path) -> None:
    model = GhostNet(width=0.5, input_shape=(None, None, 3))
    x = np.random.default_rng(2).uniform(0, 255, (2, 96, 128, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    model.save(tmp_path / "model.keras")
    # A fresh interpreter that never imports ghostnet_keras: no custom objects needed.
    script = (
        "import sys, numpy as np, keras\n"
        "d = sys.argv[1]\n"
        "m = keras.models.load_model(d + '/model.keras')\n"
        "assert 'ghostnet_keras' not in sys.modules\n"
        "y = m.predict(np.load(d + '/x.npy'), verbose=0)\n"
        "print(float(np.abs(y - np.load(d + '/y.npy')).max()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
        check=False, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.strip().splitlines()[-1]) == 0.0


# Logits (not softmax) of GhostNet 0.5 at 64 x 64 with random BN and a head that spreads them
# (tests/peaked_models.py): on these 8 images the largest logit is 1-21 and the top-1 varies.
# Measured: XLA differs by 3e-5, mixed_float16 by 0.14 at most; a wrong kernel by whole units
# (one BN made the identity: 3.3-4.4; one BN's variance x4: 2.8-9.4), which the test checks.
JIT_ATOL = 1e-3
MIXED_ATOL = 0.3


@pytest.mark.slow
def test_jit_compile_and_mixed_precision() -> None:
    model = peaked_ghostnet(0.5, 64, 10)
    x = np.stack(list(synthetic_images(8, 64, seed=3)()))
    expected = model.predict(x, verbose=0)
    assert np.abs(expected).max() > 10 and len(set(expected.argmax(axis=1))) >= 3
    # the margins: a wrong batch norm (the identity) in one late block moves the logits by
    # more than 5x the mixed-precision tolerance (and 1000x XLA's)
    norm = model.get_layer("block8d_ghost2_primary_bn")
    weights = norm.get_weights()
    norm.set_weights([np.ones_like(weights[0]), np.zeros_like(weights[1]),
                      np.zeros_like(weights[2]), np.ones_like(weights[3])])
    assert np.abs(model.predict(x, verbose=0) - expected).max() > 5 * MIXED_ATOL
    norm.set_weights(weights)

    model.compile(jit_compile=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=0, atol=JIT_ATOL)

    keras.mixed_precision.set_global_policy("mixed_float16")
    mixed = GhostNet(width=0.5, input_shape=(64, 64, 3), classes=10, classifier_activation=None,
                     dropout_rate=0.0)
    mixed.set_weights(model.get_weights())
    assert mixed.get_layer("stem_conv").compute_dtype == "float16"
    assert mixed.output.dtype == "float32"
    out = mixed.predict(x, verbose=0)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=MIXED_ATOL)
    # trains a step under mixed precision (loss scaling) without NaNs
    mixed.compile(optimizer="sgd",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = mixed.train_on_batch(x[:2], np.array([1, 2]))
    assert np.isfinite(loss)


def test_feature_extractor_strides() -> None:
    backbone = GhostNet(width=1.0, include_top=False, input_shape=(None, None, 3))
    features = ghostnet_keras.feature_extractor(backbone)
    maps = features.predict(np.zeros((1, 256, 320, 3), "float32"), verbose=0)
    assert {k: v.shape for k, v in maps.items()} == {
        "stride_4": (1, 64, 80, 24), "stride_8": (1, 32, 40, 40),
        "stride_16": (1, 16, 20, 112), "stride_32": (1, 8, 10, 960),
    }
    assert ghostnet_keras.feature_extractor(backbone, strides=(2,)).output["stride_2"].shape[
        -1] == 16


def test_feature_extractor_errors() -> None:
    backbone = GhostNet(width=0.5, include_top=False)
    with pytest.raises(ValueError, match="strides"):
        ghostnet_keras.feature_extractor(backbone, strides=(64,))
    other = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3)])
    with pytest.raises(ValueError, match="not a GhostNet"):
        ghostnet_keras.feature_extractor(other)
