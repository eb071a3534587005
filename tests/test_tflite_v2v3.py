"""GhostNetV2/V3 in TFLite: the DFC resize is RESIZE_NEAREST_NEIGHBOR, outputs stay timm's."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="needs the `tflite` extra (ai-edge-litert)")

from ai_edge_litert.interpreter import Interpreter

from ghostnet_keras import GhostNetV2, GhostNetV3
from ghostnet_keras.tflite import convert, gpu, gpu_supported_ops, inventory

from .conftest import TEST_DATA_DIR

# 200 x 264: odd 13 x 17 and 7 x 9 maps, where the legacy nearest rule matters.
SHAPE = (200, 264, 3)


def _run(data: bytes, images: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images.astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _assert_gpu_friendly(data: bytes) -> None:
    ops = inventory.op_inventory(data)
    assert "RESIZE_NEAREST_NEIGHBOR" in ops
    # DEQUANTIZE of fp16 weights is folded by the delegate (gpu_unsupported_ops checks it).
    assert set(ops) - {"DEQUANTIZE"} <= set(gpu_supported_ops.DELEGATE_OPS), sorted(ops)
    assert inventory.gpu_unsupported_ops(data) == []


@pytest.mark.slow
def test_v2_fp32_matches_timm_and_is_gpu_delegable() -> None:
    model = GhostNetV2(width=0.1, classes=10, classifier_activation=None, input_shape=SHAPE,
                       weights=TEST_DATA_DIR / "ghostnetv2_010.safetensors")
    data = convert.convert(model, "fp32")
    _assert_gpu_friendly(data)
    oracle = np.load(TEST_DATA_DIR / "ghostnetv2_010_expected.npz")
    np.testing.assert_allclose(_run(data, oracle["nonsquare/images"]),
                               oracle["nonsquare/logits"], rtol=0, atol=1e-5)


@pytest.mark.slow
def test_v3_deploy_fp16_matches_timm_and_runs_on_the_gpu() -> None:
    model = GhostNetV3(width=0.1, classes=10, classifier_activation=None, input_shape=SHAPE,
                       weights=TEST_DATA_DIR / "ghostnetv3_010.pth", reparameterized=True)
    data = convert.convert(model, "fp16")
    _assert_gpu_friendly(data)
    oracle = np.load(TEST_DATA_DIR / "ghostnetv3_010_expected.npz")
    # fp16 weights: the CPU computes in float32 with weights rounded to float16.
    np.testing.assert_allclose(_run(data, oracle["nonsquare/images"]),
                               oracle["deploy/nonsquare/logits"], rtol=0, atol=1e-2)
    if not gpu.software_gpu_installed():
        pytest.skip("no GPU accelerator here (see ghostnet_keras.tflite.gpu to install one)")
    result = gpu.check(data)
    assert result.fully_delegated, result.as_dict()
    assert result.top1_agrees and result.relative_diff < 1e-2, result.as_dict()
