"""GhostNetV2/V3 in TFLite: the DFC resize is XNNPACK- and GPU-friendly, outputs stay timm's."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="needs the `tflite` extra (ai-edge-litert)")

from ai_edge_litert.interpreter import Interpreter

from ghostnet_keras import GhostNetV2, GhostNetV3
from ghostnet_keras.tflite import conversion, gpu, inventory
from ghostnet_keras.tflite.xnnpack import partitioning

from .conftest import TEST_DATA_DIR

# 200 x 264: odd 13 x 17 and 7 x 9 maps, where the legacy nearest rule matters.
SHAPE = (200, 264, 3)


def _run(data: bytes, images: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_content=data)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images.astype(np.float32))
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.fixture(scope="module")
def exports() -> dict[str, tuple[bytes, np.ndarray, np.ndarray]]:
    """(tflite bytes, images, timm logits): V2 in fp32, the V3 deploy form in fp16."""
    v2 = GhostNetV2(width=0.1, classes=10, classifier_activation=None, input_shape=SHAPE,
                    weights=TEST_DATA_DIR / "ghostnetv2_010.safetensors")
    v3 = GhostNetV3(width=0.1, classes=10, classifier_activation=None, input_shape=SHAPE,
                    weights=TEST_DATA_DIR / "ghostnetv3_010.pth", reparameterized=True)
    v2_oracle = np.load(TEST_DATA_DIR / "ghostnetv2_010_expected.npz")
    v3_oracle = np.load(TEST_DATA_DIR / "ghostnetv3_010_expected.npz")
    return {
        "v2_fp32": (conversion.convert(v2, "fp32"), v2_oracle["nonsquare/images"],
                    v2_oracle["nonsquare/logits"]),
        "v3_fp16": (conversion.convert(v3, "fp16"), v3_oracle["nonsquare/images"],
                    v3_oracle["deploy/nonsquare/logits"]),
    }


@pytest.mark.slow
@pytest.mark.parametrize(("name", "atol"), [("v2_fp32", 1e-5), ("v3_fp16", 1e-2)])
def test_tflite_matches_timm(exports, name: str, atol: float) -> None:
    data, images, logits = exports[name]
    ops = inventory.op_inventory(data)
    # Each DFC gate's 2x nearest upsampling is DEPTH_TO_SPACE of four copies (RESIZE_NEAREST_
    # NEIGHBOR is not an XNNPACK op), so XNNPACK takes the whole network in one partition.
    assert ops["DEPTH_TO_SPACE"]["count"] == 14 and "RESIZE_NEAREST_NEIGHBOR" not in ops
    placement = partitioning(data)
    assert placement.partitions == 1 and placement.undelegated_counts() == {}, placement
    # fp16: the CPU computes in float32 with weights rounded to float16.
    np.testing.assert_allclose(_run(data, images), logits, rtol=0, atol=atol)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["v2_fp32", "v3_fp16"])
def test_fully_delegated_on_the_gpu_accelerator(exports, software_gpu: None, name: str) -> None:
    result = gpu.check(exports[name][0])
    assert result.fully_delegated, result.as_dict()
    assert result.top1_agrees and result.relative_diff < 2e-2, result.as_dict()
