"""GhostNetV2/V3 in TFLite: the DFC resize is XNNPACK- and GPU-friendly, outputs stay timm's."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_module

require_module("ai_edge_litert", "needs the `tflite` extra (ai-edge-litert)")

from ai_edge_litert.interpreter import Interpreter

from ghostnet_keras import GhostNetV2, GhostNetV3
from ghostnet_keras.synthetic_images import synthetic_images
from ghostnet_keras.tflite import conversion, gpu, integer_friendly, inventory
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


def test_average_pools_become_equal_frozen_depthwise_convs() -> None:
    model = GhostNetV2(width=0.1, classes=10, classifier_activation=None, input_shape=(67, 93, 3),
                       weights=TEST_DATA_DIR / "ghostnetv2_010.safetensors")
    rewritten = integer_friendly.pools_as_depthwise(model)
    kinds = [type(layer).__name__ for layer in rewritten.layers]
    assert "AveragePooling2D" not in kinds
    pools = [layer for layer in rewritten.layers if layer.name.endswith("_short_pool")]
    assert len(pools) == 14 and all(
        type(layer).__name__ == "DepthwiseConv2D" and not layer.trainable for layer in pools)
    trainable = sum(int(np.prod(w.shape)) for w in rewritten.trainable_weights)
    assert trainable == sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    # Odd 67 x 93 input: the pools floor (17 x 24 -> 8 x 12, ...) as the depthwise convs do.
    images = np.random.default_rng(0).uniform(0, 255, (2, 67, 93, 3)).astype(np.float32)
    np.testing.assert_allclose(rewritten(images).numpy(), model(images).numpy(),
                               rtol=0, atol=1e-5)


@pytest.mark.slow
def test_int8_ghostnetv2_is_one_xnnpack_partition() -> None:
    """Post-training int8: the DFC gates' pools run as int8 depthwise convs inside XNNPACK."""
    size = (64, 80, 3)
    model = GhostNetV2(width=0.1, classes=10, classifier_activation=None, input_shape=size,
                       weights=TEST_DATA_DIR / "ghostnetv2_010.safetensors")
    # convert_modes, as the benchmark and the CLI convert: the int8 mode gets its own export.
    converted = conversion.convert_modes(model, ("fp32", "int8"), synthetic_images(32, size[:2]))
    assert inventory.op_inventory(converted["fp32"])["AVERAGE_POOL_2D"]["count"] == 14
    data = converted["int8"]  # integer-only (checked by convert)
    ops = inventory.op_inventory(data)
    assert "AVERAGE_POOL_2D" not in ops and ops["DEPTH_TO_SPACE"]["count"] == 14
    placement = partitioning(data)
    assert placement.partitions == 1 and placement.undelegated_counts() == {}, placement
    images = np.stack(list(synthetic_images(8, size[:2], seed=1)()))
    expected = model(images).numpy()
    logits = np.concatenate([_run(data, image[None]) for image in images])
    # Post-training int8 of timm's weights (measured: within 6% of the logits' range, 8/8 top-1).
    np.testing.assert_allclose(logits, expected, rtol=0, atol=0.1 * np.abs(expected).max())
    assert (logits.argmax(1) == expected.argmax(1)).sum() >= 7
