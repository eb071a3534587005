"""The building blocks: Ghost module, squeeze-excite gate, Ghost bottleneck."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import ghostnet_keras
from ghostnet_keras import ChannelSlice, ghost_bottleneck, ghost_module, make_divisible
from ghostnet_keras.analysis.profiler import profile


@pytest.mark.parametrize(
    ("value", "expected"),
    [(8.0, 8), (16 * 0.5, 8), (48 * 0.5, 24), (72 * 1.3, 92), (120 * 1.3, 156), (960 * 1.3, 1248),
     (1.0, 4), (9.9, 12), (10.0, 12), (3.5, 4)],
)
def test_make_divisible_matches_reference_rule(value: float, expected: int) -> None:
    assert make_divisible(value, 4) == expected


def _layer_types(model: keras.Model) -> list[str]:
    return [type(layer).__name__ for layer in model.layers]


def test_ghost_module_structure_and_cost() -> None:
    inputs = keras.Input((16, 16, 32))
    outputs = ghost_module(inputs, 64, kernel_size=3, ratio=2, dw_size=3, name="g")
    model = keras.Model(inputs, outputs)
    assert outputs.shape == (None, 16, 16, 64)
    assert model.get_layer("g_primary_conv").kernel.shape == (3, 3, 32, 32)
    assert model.get_layer("g_cheap_dwconv").kernel.shape == (3, 3, 32, 1)
    assert "ChannelSlice" not in _layer_types(model)
    # The paper's point (Eq. 4-5): about 1/s of the weights and multiply-adds of the 3x3 conv
    # it replaces, s = ratio = 2. Counted on the built layers, against a built plain conv.
    plain = keras.Model(inputs, keras.layers.Conv2D(64, 3, padding="same", use_bias=False)(inputs))
    ghost_weights = sum(model.get_layer(f"g_{part}").count_params()
                        for part in ("primary_conv", "cheap_dwconv"))
    assert ghost_weights / plain.count_params() == pytest.approx(0.5, abs=0.02)
    ghost_macs = profile(model).macs
    assert ghost_macs == 16 * 16 * (32 * 3 * 3 * 32 + 32 * 3 * 3)
    assert ghost_macs / profile(plain).macs == pytest.approx(0.5, abs=0.02)


def test_ghost_module_halves_are_concatenated_primary_first() -> None:
    inputs = keras.Input((8, 8, 4))
    model = keras.Model(inputs, ghost_module(inputs, 8, activation=False, name="g"))
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 4)).astype("float32")
    out = model.predict(x, verbose=0)
    primary = keras.Model(inputs, model.get_layer("g_primary_bn").output).predict(x, verbose=0)
    np.testing.assert_allclose(out[..., :4], primary, atol=1e-6)


def test_ghost_module_trims_when_ratio_does_not_divide() -> None:
    inputs = keras.Input((8, 8, 5))
    model = keras.Model(inputs, ghost_module(inputs, 10, ratio=3, name="g"))
    assert model.output.shape[-1] == 10
    assert model.get_layer("g_primary_conv").filters == 4  # ceil(10 / 3)
    assert isinstance(model.get_layer("g_trim"), ChannelSlice)
    assert model.predict(np.ones((2, 8, 8, 5), "float32"), verbose=0).shape == (2, 8, 8, 10)


def test_ghost_module_rejects_bad_ratio() -> None:
    with pytest.raises(ValueError, match="ratio"):
        ghost_module(keras.Input((8, 8, 4)), 8, ratio=1, name="g")


def test_hard_sigmoid_gate_is_relu6_x_plus_3_over_6() -> None:
    inputs = keras.Input((5,))
    model = keras.Model(inputs, ghostnet_keras.hard_sigmoid_gate(inputs, name="gate"))
    x = np.linspace(-8, 8, 50, dtype="float32").reshape(10, 5)
    expected = np.clip(x + 3, 0, 6) / 6
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, atol=1e-7)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(keras.activations.hard_sigmoid(x)), expected, atol=1e-7
    )


def test_squeeze_excite_width_and_gate() -> None:
    inputs = keras.Input((4, 4, 120))
    model = keras.Model(inputs, ghostnet_keras.squeeze_excite(inputs, 0.25, name="se"))
    assert model.get_layer("se_reduce_conv").filters == 32  # make_divisible(30, 4)
    assert model.get_layer("se_expand_conv").filters == 120
    assert model.output.shape == (None, 4, 4, 120)


@pytest.mark.parametrize(
    ("in_ch", "out_ch", "strides", "shortcut"),
    [(16, 16, 1, False), (16, 24, 1, True), (24, 24, 2, True)],
)
def test_ghost_bottleneck_shortcut(in_ch: int, out_ch: int, strides: int, shortcut: bool) -> None:
    inputs = keras.Input((32, 32, in_ch))
    outputs = ghost_bottleneck(inputs, 48, out_ch, 5, strides, se_ratio=0.25, name="b")
    model = keras.Model(inputs, outputs)
    names = {layer.name for layer in model.layers}
    assert outputs.shape == (None, 32 // strides, 32 // strides, out_ch)
    assert ("b_shortcut_conv" in names) == shortcut
    assert ("b_dw_dwconv" in names) == (strides == 2)
    if strides == 2:
        assert model.get_layer("b_dw_dwconv").kernel.shape[:2] == (5, 5)
        assert model.get_layer("b_dw_pad").padding == ((2, 2), (2, 2))
    assert "b_se_excite" in names
    # ghost2 is not activated: no ReLU after its BNs
    assert "b_ghost2_primary_relu" not in names and "b_ghost1_primary_relu" in names


def test_ghost_bottleneck_rejects_stride_3() -> None:
    with pytest.raises(ValueError, match="strides"):
        ghost_bottleneck(keras.Input((8, 8, 4)), 8, 8, strides=3, name="b")
