"""Tests for `ghostnet_keras.analysis.profiler`.

MACs follow the GhostNet paper convention: multiply-adds of convolution and
dense layers only, per image, biases not counted.
"""

import itertools
import json
import math
import os
import subprocess
import sys

import keras
import pytest

from ghostnet_keras.analysis import profiler
from ghostnet_keras.cli import profile as profile_cli

# Independent hand counts of keras.applications' MobileNets, from their papers' tables
# (MobileNetV2 Table 2, MobileNetV3 Tables 1-2) and keras' 8-channel rounding: no profiler code.
# A block is (expansion, out_channels, kernel, stride, squeeze-excite).
MOBILENET_V2_BLOCKS = [
    (t, c, 3, s if i == 0 else 1, False)
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    for i in range(n)
]
MOBILENET_V3_LARGE_BLOCKS = [
    (1, 16, 3, 1, False), (4, 24, 3, 2, False), (3, 24, 3, 1, False), (3, 40, 5, 2, True),
    (3, 40, 5, 1, True), (3, 40, 5, 1, True), (6, 80, 3, 2, False), (2.5, 80, 3, 1, False),
    (2.3, 80, 3, 1, False), (2.3, 80, 3, 1, False), (6, 112, 3, 1, True), (6, 112, 3, 1, True),
    (6, 160, 5, 2, True), (6, 160, 5, 1, True), (6, 160, 5, 1, True),
]
MOBILENET_V3_SMALL_BLOCKS = [
    (1, 16, 3, 2, True), (72 / 16, 24, 3, 2, False), (88 / 24, 24, 3, 1, False),
    (4, 40, 5, 2, True), (6, 40, 5, 1, True), (6, 40, 5, 1, True), (3, 48, 5, 1, True),
    (3, 48, 5, 1, True), (6, 96, 5, 2, True), (6, 96, 5, 1, True), (6, 96, 5, 1, True),
]


def _round8(value: float) -> int:
    rounded = max(8, int(value + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * value else rounded


def _hand_count_macs(size, stem, blocks, last_conv, pooled_convs) -> int:
    """MACs of stem conv, inverted residual blocks, last 1x1 conv, then 1x1 convs on the pool."""
    side = math.ceil(size / 2)
    macs = side * side * stem * 3 * 3 * 3
    channels = stem
    for expansion, out, kernel, stride, squeeze_excite in blocks:
        hidden = _round8(channels * expansion)
        if expansion != 1:
            macs += side * side * channels * hidden
        side = math.ceil(side / stride)
        macs += side * side * hidden * kernel * kernel
        if squeeze_excite:
            macs += 2 * hidden * _round8(hidden / 4)
        macs += side * side * hidden * out
        channels = out
    macs += side * side * channels * last_conv
    widths = [last_conv, *pooled_convs]
    return macs + sum(a * b for a, b in itertools.pairwise(widths))


def _single_layer_model(layer: keras.layers.Layer, input_shape: tuple) -> keras.Model:
    inputs = keras.Input(input_shape)
    return keras.Model(inputs, layer(inputs))


def test_conv2d_stride2_same():
    model = _single_layer_model(keras.layers.Conv2D(8, 3, strides=2, padding="same"), (32, 32, 3))
    result = profiler.profile(model)
    # Output 16x16x8, each output does 3*3*3 MACs.
    assert result.macs == 16 * 16 * 8 * 3 * 3 * 3
    assert result.params == 3 * 3 * 3 * 8 + 8


def test_depthwise_conv2d_depth_multiplier():
    layer = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="valid")
    result = profiler.profile(_single_layer_model(layer, (10, 10, 4)))
    # H_out * W_out * C_in * depth_multiplier * kh * kw.
    assert result.macs == 8 * 8 * 4 * 2 * 3 * 3
    assert result.params == 3 * 3 * 4 * 2 + 4 * 2


def test_grouped_conv2d():
    layer = keras.layers.Conv2D(8, 3, groups=2, padding="same")
    result = profiler.profile(_single_layer_model(layer, (6, 6, 4)))
    # Each output sees C_in / groups = 2 input channels.
    assert result.macs == 6 * 6 * 8 * 3 * 3 * 2
    assert result.params == 3 * 3 * 2 * 8 + 8


def test_separable_conv2d():
    layer = keras.layers.SeparableConv2D(16, 3, padding="same")
    result = profiler.profile(_single_layer_model(layer, (8, 8, 4)))
    depthwise = 8 * 8 * 4 * 3 * 3
    pointwise = 8 * 8 * 4 * 16
    assert result.macs == depthwise + pointwise
    assert result.params == 3 * 3 * 4 + 4 * 16 + 16


def test_conv1d_conv3d_depthwise1d_separable1d():
    cases = [
        (keras.layers.Conv1D(6, 3), (10, 2), 8 * 6 * 3 * 2),
        (keras.layers.Conv3D(2, 3, padding="same"), (4, 4, 4, 3), 64 * 2 * 27 * 3),
        (keras.layers.DepthwiseConv1D(3, depth_multiplier=3), (10, 2), 8 * 2 * 3 * 3),
        (keras.layers.SeparableConv1D(5, 3, padding="same"), (10, 2), 10 * 2 * 3 + 10 * 2 * 5),
    ]
    for layer, shape, expected in cases:
        assert profiler.profile(_single_layer_model(layer, shape)).macs == expected, layer


def test_conv2d_transpose():
    layer = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same")
    result = profiler.profile(_single_layer_model(layer, (5, 5, 2)))
    # Every input element is scattered to kh * kw * filters outputs.
    assert result.macs == 5 * 5 * 2 * 3 * 3 * 4
    assert result.layers[0].output_shape == (None, 10, 10, 4)


def test_dense_on_rank3_input_counts_each_position():
    result = profiler.profile(_single_layer_model(keras.layers.Dense(5), (7, 6)))
    assert result.macs == 7 * 6 * 5
    assert result.params == 6 * 5 + 5


def test_einsum_dense_matches_dense():
    layer = keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 5), bias_axes="d")
    result = profiler.profile(_single_layer_model(layer, (7, 6)))
    assert result.macs == 7 * 6 * 5


def test_unlisted_layers_cost_nothing():
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.BatchNormalization()(inputs)
    x = keras.layers.ReLU()(x)
    y = keras.layers.MaxPooling2D()(x)
    y = keras.layers.UpSampling2D()(y)
    x = keras.layers.Add()([x, y])
    x = keras.layers.Multiply()([x, keras.layers.Activation("sigmoid")(x)])
    x = keras.layers.GlobalAveragePooling2D()(x)
    assert profiler.profile(keras.Model(inputs, x)).macs == 0


def test_shared_layer_counts_macs_per_call_params_once():
    dense = keras.layers.Dense(4, name="shared")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, dense(dense(inputs)))
    result = profiler.profile(model)
    assert result.macs == 2 * 4 * 4
    assert result.params == 4 * 4 + 4
    rows = [row for row in result.layers if row.name == "shared"]
    assert [row.params for row in rows] == [20, 0]
    assert [row.macs for row in rows] == [16, 16]
    assert sum(row.params for row in result.layers) == result.params


def test_nested_sequential_in_functional():
    inner = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 1, name="pw"), keras.layers.ReLU()],
        name="inner",
    )
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Flatten()(inner(inputs))
    outputs = keras.layers.Dense(2, name="head")(x)
    result = profiler.profile(keras.Model(inputs, outputs))
    assert result.macs == 8 * 8 * 4 * 3 + 8 * 8 * 4 * 2
    assert result.params == (3 * 4 + 4) + (256 * 2 + 2)
    names = [row.name for row in result.layers]
    assert "inner/pw" in names and "head" in names


def test_nested_model_reshaped_by_input_shape():
    # Inner Sequential without an Input, outer model with undefined spatial dims.
    inner = keras.Sequential([keras.layers.Conv2D(4, 3, strides=2, padding="same")], name="inner")
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(inner(inputs)))
    small = profiler.profile(model, input_shape=(16, 16, 3))
    large = profiler.profile(model, input_shape=(32, 32, 3))
    assert small.macs == 8 * 8 * 4 * 27
    assert large.macs == 16 * 16 * 4 * 27
    assert small.params == large.params == 27 * 4 + 4
    assert small.input_shape == (16, 16, 3)


def test_bn_params_accounting():
    inputs = keras.Input((5, 5, 2))
    x = keras.layers.Conv2D(4, 3, use_bias=False)(inputs)
    x = keras.layers.BatchNormalization()(x)
    model = keras.Model(inputs, x)
    result = profiler.profile(model)
    assert result.params == 72 + 4 * 4
    assert result.trainable_params == 72 + 2 * 4
    assert result.non_trainable_params == 2 * 4
    assert result.params_without_bn_stats == 72 + 2 * 4

    model.trainable = False
    frozen = profiler.profile(model)
    assert frozen.trainable_params == 0
    assert frozen.non_trainable_params == frozen.params == 72 + 16
    assert frozen.params_without_bn_stats == 72 + 8


class ComposedBlock(keras.layers.Layer):
    """Composite custom layer: 1x1 conv + depthwise 3x3 and its own weight."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(4, 1, name="conv")
        self.dw = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(1,), initializer="ones", name="scale")

    def call(self, x):
        return self.dw(self.conv(x)) * self.scale


def test_composite_layers_and_subclassed_models_are_refused():
    inputs = keras.Input((6, 6, 2))
    model = keras.Model(inputs, ComposedBlock(name="block")(inputs))
    with pytest.raises(TypeError, match="'block' \\(ComposedBlock\\) has sub-layers"):
        profiler.profile(model)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.head = keras.layers.Dense(3)

        def call(self, x):
            return self.head(x)

    with pytest.raises(TypeError, match="functional API"):
        profiler.profile(Sub(), input_shape=(4,))


def test_multi_input_model():
    a, b = keras.Input((4,)), keras.Input((6,))
    x = keras.layers.Concatenate()([keras.layers.Dense(3)(a), keras.layers.Dense(3)(b)])
    model = keras.Model([a, b], x)
    assert profiler.profile(model).macs == 4 * 3 + 6 * 3


def test_undefined_spatial_dims_require_input_shape():
    model = _single_layer_model(keras.layers.Conv2D(4, 3), (None, None, 3))
    with pytest.raises(ValueError, match="input_shape"):
        profiler.profile(model)
    assert profiler.profile(model, input_shape=(10, 10, 3)).macs == 8 * 8 * 4 * 27


def test_non_model_raises_type_error():
    with pytest.raises(TypeError):
        profiler.profile(keras.layers.Dense(3))
    with pytest.raises(TypeError):
        profiler.profile("ResNet50")


def test_bad_input_shape_raises():
    model = _single_layer_model(keras.layers.Conv2D(4, 3), (None, None, 3))
    with pytest.raises(ValueError):
        profiler.profile(model, input_shape=(10, 0, 3))
    with pytest.raises(ValueError):
        profiler.profile(model, input_shape=[(10, 10, 3), (10, 10, 3)])


def test_format_table_and_dict():
    model = _single_layer_model(keras.layers.Dense(5, name="fc"), (7, 6))
    result = profiler.profile(model)
    table = str(result)
    assert "fc" in table and "Dense" in table and "MACs" in table and "210" in table
    assert "fc" not in result.format_table(per_layer=False)
    data = json.loads(json.dumps(result.to_dict(per_layer=True)))
    assert data["macs"] == 210
    assert data["layers"][0]["output_shape"] == [None, 7, 5]


def test_resnet50():
    result = profiler.profile(keras.applications.ResNet50(weights=None))
    assert result.params == 25_636_712
    assert result.params_without_bn_stats == result.trainable_params == 25_583_592
    # keras.applications.ResNet50 is the original ResNet v1, which puts the
    # stride-2 of the first block of stages 3-5 on the first 1x1 conv. Counted by
    # hand (conv1 118.0M + bottlenecks + fc 2.048M) that is exactly
    # 3,857,973,248 MACs. The often quoted 4.09G (4,089,184,256) is ResNet
    # "v1.5" (torchvision / NVIDIA), which strides in the 3x3 conv and hence
    # runs the 1x1 reduce conv at the higher resolution.
    assert result.macs == 3_857_973_248
    assert abs(result.macs - 3.86e9) / 3.86e9 < 0.01


def test_mobilenet_v2():
    result = profiler.profile(keras.applications.MobileNetV2(weights=None))
    assert result.params == 3_538_984
    assert result.macs == _hand_count_macs(224, 32, MOBILENET_V2_BLOCKS, 1280, [1000])
    assert abs(result.macs - 300e6) / 300e6 < 0.01  # the paper's 300M


def test_mobilenet_v3_input_shape():
    # Built with weights=None and no input_shape, the model has (None, None, 3).
    model = keras.applications.MobileNetV3Large(weights=None)
    with pytest.raises(ValueError, match="input_shape"):
        profiler.profile(model)
    result = profiler.profile(model, input_shape=(224, 224, 3))
    assert result.params == 5_507_432
    assert result.macs == _hand_count_macs(224, 16, MOBILENET_V3_LARGE_BLOCKS, 960, [1280, 1000])
    # The paper reports 219M; keras' model under this convention (convs and dense only) 216.6M.
    assert abs(result.macs - 219e6) / 219e6 < 0.02
    smaller = profiler.profile(model, input_shape=(160, 160, 3))
    assert smaller.macs == _hand_count_macs(
        160, 16, MOBILENET_V3_LARGE_BLOCKS, 960, [1280, 1000]
    )
    assert smaller.params == result.params


def test_report_json():
    data = json.loads(profile_cli.report("MobileNetV3Small", 224, as_json=True))
    assert data["name"] == "MobileNetV3Small"
    assert data["input_shape"] == [224, 224, 3]
    assert data["params"] == 2_554_968
    assert data["macs"] == _hand_count_macs(224, 16, MOBILENET_V3_SMALL_BLOCKS, 576, [1024, 1000])
    assert abs(data["macs"] - 56e6) / 56e6 < 0.02  # the paper's 56M
    assert "layers" not in data


def test_report_table_and_per_layer():
    out = profile_cli.report("MobileNetV3Small", 160, per_layer=True)
    assert "MACs (per image)" in out and "expanded_conv_project" in out
    assert "(160, 160, 3)" in out


def test_report_keras_file(tmp_path):
    inputs = keras.Input((None, None, 3))
    outputs = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    path = os.fspath(tmp_path / "tiny.keras")
    keras.Model(inputs, outputs).save(path)
    # undefined spatial dims: profiled at input_size even when it is not forced
    data = json.loads(profile_cli.report(path, 8, force_size=False, per_layer=True,
                                         as_json=True))
    assert data["macs"] == 8 * 8 * 4 * 27
    assert data["layers"][0]["class_name"] == "Conv2D"


def test_report_unknown_model():
    with pytest.raises(ValueError, match="Unknown model 'NoSuchNet'"):
        profile_cli.report("NoSuchNet", 224)


@pytest.mark.slow
def test_cli_subprocess():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": repo, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-m", "ghostnet_keras.cli.profile", "--model=MobileNetV2", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=repo,
        check=True,
        timeout=300,
    )
    data = json.loads(proc.stdout)
    assert data["macs"] == _hand_count_macs(224, 32, MOBILENET_V2_BLOCKS, 1280, [1000])
    assert data["params"] == 3_538_984
    for bad, message in ((["--model=NoSuchNet"], "Unknown model 'NoSuchNet'"),
                         (["--input_size=0"], "input_size"),
                         (["--model=MobileNetV2", "extra"], "Unexpected arguments: extra")):
        proc = subprocess.run([sys.executable, "-m", "ghostnet_keras.cli.profile", *bad],
                              capture_output=True, text=True, env=env, cwd=repo, check=False,
                              timeout=300)
        assert proc.returncode != 0 and message in proc.stderr, proc.stderr[-2000:]
