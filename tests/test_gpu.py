"""GhostNet's TFLite exports on LiteRT's GPU accelerator (the software GPU, lavapipe, in CI)."""

from __future__ import annotations

import tempfile

import keras
import numpy as np
import pytest

from tests.conftest import require_module

require_module("ai_edge_litert", "needs the `tflite` extra (ai-edge-litert)")

from ghostnet_keras.tflite import conversion, gpu

SIZE = 64


@pytest.fixture(scope="module")
def ghostnet_float(software_gpu: None) -> dict[str, bytes]:
    """GhostNet 0.5 at 64x64 whose logits are of order 1-10 (not a near-uniform output)."""
    from ghostnet_keras import GhostNet

    model = GhostNet(width=0.5, input_shape=(SIZE, SIZE, 3), classes=10,
                     classifier_activation=None)
    images = np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype("float32")
    spread = float(np.abs(model.predict(images, verbose=0)).max())
    kernel, bias = model.get_layer("predictions").get_weights()
    model.get_layer("predictions").set_weights([kernel * 5.0 / spread, bias])
    return conversion.convert_modes(model, ("fp32", "fp16"))


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "enforce_f32", "tolerance"), [
    ("fp32", True, 1e-4),    # float32 GPU arithmetic
    ("fp16", False, 2e-2),   # the accelerator's default float16 arithmetic
])
def test_ghostnet_compiles_gpu_only_and_matches_the_cpu(
    ghostnet_float: dict[str, bytes], mode: str, enforce_f32: bool, tolerance: float
) -> None:
    result = gpu.check(ghostnet_float[mode], enforce_f32=enforce_f32, iterations=1)
    assert result.fully_delegated, result.error
    assert result.adapter is not None and result.precision == ("fp32" if enforce_f32 else "fp16")
    reference = gpu.cpu_outputs(ghostnet_float[mode], gpu.random_inputs(ghostnet_float[mode]))
    scale = max(float(np.abs(v).max()) for v in reference.values())
    assert 1.0 <= scale <= 100.0, "logits of order 1-10 make the comparison meaningful"
    assert result.relative_diff <= tolerance and result.top1_agrees
    assert result.latency_ms["iterations"] == 1
    if result.software:
        assert "correctness, not speed" in result.adapter_label


def _gather_nd_model() -> bytes:
    import tensorflow as tf

    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((1, 8, 8, 4), tf.float32, name="images")])
        def serve(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
            return {"output": tf.gather_nd(tf.nn.relu(x) * 2.0, [[0, 1, 2], [0, 3, 4]])}

    module = Module()
    with tempfile.TemporaryDirectory() as folder:
        tf.saved_model.save(module, folder, signatures={"serving_default": module.serve})
        return tf.lite.TFLiteConverter.from_saved_model(folder).convert()


def test_an_op_the_gpu_cannot_run_is_named(software_gpu: None) -> None:
    result = gpu.check(_gather_nd_model())
    assert not result.fully_delegated
    assert result.fallback_ops == ["GATHER_ND"]  # MUL and RELU alone compile on the GPU
    assert "not accelerated" in result.error


def test_a_dynamic_batch_is_not_delegated(software_gpu: None) -> None:
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    outputs = keras.layers.Dense(3)(keras.layers.Flatten()(x))
    data = conversion.convert(keras.Model(inputs, outputs), "fp32", batch_size=None)
    assert not gpu.check(data).fully_delegated


def test_accelerator_environment_points_at_the_software_gpu(software_gpu: None) -> None:
    env = gpu.accelerator_environment({"LD_LIBRARY_PATH": "/x"})
    if gpu.software_gpu_installed():
        assert env["VK_ICD_FILENAMES"] == env["VK_DRIVER_FILES"]
        assert env["VK_ICD_FILENAMES"].endswith("lvp_icd.json")
        assert env["LD_LIBRARY_PATH"].endswith(":/x")
