"""The exports on LiteRT's and MediaPipe's arm64 builds (what Android apps run) against x86 LiteRT.

The arm64 runtime comes from `tools/install_arm64_runtime.sh` (qemu-user 10, an arm64 Python,
the aarch64 wheels; cached, a second run returns at once); the tests fail under CI=true, and
skip elsewhere, when it cannot be set up. Each model runs in one emulated process for all its
images. Small models (width 0.1-0.25, 32-56 px), a few images.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="needs the `tflite` extra (ai-edge-litert)")

from ghostnet_keras import GhostNetV2, GhostNetV3
from ghostnet_keras.synthetic_images import synthetic_images
from ghostnet_keras.tflite import arm64, conversion, inventory, metadata

from .conftest import TEST_DATA_DIR
from .peaked_models import peaked_ghostnet
from .test_mediapipe import LABELS

SIZE = 32
IMAGES = 8
# Float formats: within this fraction of the largest |output|.
FLOAT_RTOL = 1e-5


@pytest.fixture(scope="module")
def runtime() -> None:
    """The arm64 runtime, set up by the project's script (fails under CI=true if it cannot)."""
    try:
        arm64.ensure_runtime()
    except arm64.Arm64UnavailableError as error:
        if os.environ.get("CI") == "true":
            pytest.fail(f"arm64 runtime not set up (CI=true): {error}")
        pytest.skip(f"arm64 runtime not set up: {error}")


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    generated = synthetic_images(IMAGES, SIZE, seed=5)()
    return np.stack([np.clip(np.rint(image), 0, 255) for image in generated]).astype(np.float32)


@pytest.fixture(scope="module")
def ghostnet() -> keras.Model:
    """GhostNet 0.25 at 32 x 32 with random BN and a head that spreads the images' scores."""
    return peaked_ghostnet(0.25, SIZE, len(LABELS))


@pytest.fixture(scope="module")
def exported(ghostnet: keras.Model, tmp_path_factory) -> dict[str, Path]:
    """fp32, fp16, int8 (uint8 io, as Android clients take it) files with metadata."""
    folder = tmp_path_factory.mktemp("arm64")
    models = conversion.convert_modes(ghostnet, ("fp32", "fp16", "int8"),
                                      synthetic_images(16, SIZE, seed=1), io="uint8")
    return {mode: _write(folder / f"ghostnet_025_{mode}.tflite", data)
            for mode, data in models.items()}


@pytest.fixture(scope="module")
def qat_int8(ghostnet: keras.Model, tmp_path_factory) -> Path:
    """The QAT int8 export of the same GhostNet (fake-quant ranges from training-mode passes)."""
    pytest.importorskip("tensorflow_model_optimization")
    from ghostnet_keras.training.qat_export import convert_qat
    from ghostnet_keras.training.qat_model import build_qat_model

    legacy = os.environ.get("TF_USE_LEGACY_KERAS")  # importing tfmot sets it
    try:
        qat_model = build_qat_model(ghostnet, width=0.25, num_classes=len(LABELS),
                                    image_size=SIZE, dropout_rate=0.0)
        batch = np.stack(list(synthetic_images(8, SIZE, seed=2)()))
        for _ in range(3):
            qat_model(batch, training=True)
        data = convert_qat(qat_model, io="uint8")
    finally:
        if legacy is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = legacy
    return _write(tmp_path_factory.mktemp("arm64_qat") / "ghostnet_025_qat_int8.tflite", data)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(metadata.with_image_classifier_metadata(data, LABELS, name=path.stem))
    return path


def _assert_int8_agrees(result: arm64.Comparison) -> None:
    """Within one quantization step, the same top-1 wherever x86's wins by more than a step."""
    assert result.runtime["machine"] == "aarch64"
    assert result.max_steps is not None and result.max_steps <= 1, result
    assert result.top1_agree == result.top1_decided, result
    assert result.top1_decided >= IMAGES // 2, result  # the check says something


def _assert_float_agrees(result: arm64.Comparison) -> None:
    assert result.runtime["machine"] == "aarch64"
    assert result.max_steps is None
    assert result.relative_diff <= FLOAT_RTOL, result
    assert result.top1_agree == result.top1_decided >= IMAGES // 2, result


@pytest.mark.parametrize(("mode", "cpu"), [("fp32", "cortex-a53"), ("fp32", "max"),
                                           ("fp16", "cortex-a76")])
def test_arm64_ghostnet_float_formats_match_x86(runtime, exported, images, mode, cpu) -> None:
    result = arm64.compare(exported[mode], images, cpu)
    _assert_float_agrees(result)
    if cpu == "cortex-a53":  # no dotprod, no fp16 arithmetic: XNNPACK's plain NEON kernels
        assert "asimddp" not in result.runtime["cpu_features"].split()
    else:
        assert "asimddp" in result.runtime["cpu_features"].split()


@pytest.mark.parametrize("cpu", ["cortex-a53", "cortex-a76", "max"])
def test_arm64_ghostnet_int8_within_one_step(runtime, exported, images, cpu) -> None:
    inputs = arm64.model_inputs(exported["int8"], images)
    assert inputs.dtype == np.uint8
    _assert_int8_agrees(arm64.compare(exported["int8"], inputs, cpu))


@pytest.mark.slow
def test_arm64_ghostnet_qat_int8_within_one_step(runtime, qat_int8, images) -> None:
    _assert_int8_agrees(arm64.compare(qat_int8, arm64.model_inputs(qat_int8, images),
                                      "cortex-a76"))


@pytest.mark.slow
@pytest.mark.parametrize(("version", "shape", "cpu"), [
    ("v2", (40, 56, 3), "cortex-a76"),   # DEPTH_TO_SPACE and depthwise pools, non-square
    ("v3", (48, 36, 3), "cortex-a53"),   # the deploy (re-parameterized) form, non-square
])
def test_arm64_ghostnetv2_v3_int8_non_square(runtime, tmp_path, version, shape, cpu) -> None:
    if version == "v2":
        model = GhostNetV2(width=0.1, classes=10, classifier_activation=None, input_shape=shape,
                           weights=TEST_DATA_DIR / "ghostnetv2_010.safetensors")
    else:
        model = GhostNetV3(width=0.1, classes=10, classifier_activation=None, input_shape=shape,
                           weights=TEST_DATA_DIR / "ghostnetv3_010.pth", reparameterized=True)
    data = conversion.convert_modes(model, ("int8",), synthetic_images(8, shape[:2]),
                                    io="uint8")["int8"]
    ops = inventory.op_inventory(data)
    if version == "v2":
        assert "DEPTH_TO_SPACE" in ops and "AVERAGE_POOL_2D" not in ops
    path = tmp_path / f"ghostnet{version}_int8.tflite"
    path.write_bytes(data)
    generated = np.stack(list(synthetic_images(IMAGES, shape[:2], seed=7)()))
    _assert_int8_agrees(arm64.compare(path, arm64.model_inputs(path, generated), cpu))


def test_arm64_mediapipe_top_k_is_arm64_litert_top_k(runtime, exported, images) -> None:
    """MediaPipe's ImageClassifier (arm64 build): LiteRT's top-k, labels from the metadata."""
    path = exported["int8"]
    uint8_images = images.astype(np.uint8)
    found = arm64.mediapipe_classify(path, list(uint8_images), top_k=3, cpu="cortex-a76")
    assert found.metadata["name"] == path.stem
    litert = arm64.compare(path, uint8_images, "cortex-a76")
    step = arm64.output_quantization(path)[0]
    for categories, scores in zip(found.categories, litert.arm64, strict=True):
        assert len(categories) == 3
        assert arm64.topk_matches(categories, scores, tolerance=step / 2), (categories, scores)
        assert [c.category_name for c in categories] == [LABELS[c.index] for c in categories]


def test_arm64_evaluate_formats_reports_top1_and_difference(runtime, exported, images) -> None:
    """The main job's rows: arm64 top-1 on labelled images next to x86's (no MediaPipe here)."""
    path = exported["fp16"]
    labels = arm64.arm64_worker.invoke_each(str(path), images)[0].argmax(-1)  # x86's top-1
    labels[0] = (labels[0] + 1) % len(LABELS)  # one wrong label: x86 top-1 is 7/8
    (row,) = arm64.evaluate_formats({"fp16": path}, images, labels, ("cortex-a76",),
                                    mediapipe_cpu=None)
    assert row["format"] == "fp16" and row["cpu"] == "cortex-a76" and "error" not in row
    assert row["x86_top1"] == (IMAGES - 1) / IMAGES
    # Only near-ties (not decided by more than twice the difference) may flip.
    assert abs(row["top1"] - row["x86_top1"]) <= (IMAGES - row["top1_decided"]) / IMAGES
    assert row["relative_diff"] <= FLOAT_RTOL


def test_arm64_bad_input_gets_a_clear_error(runtime, exported, images, tmp_path) -> None:
    # MediaPipe's aarch64 wheel is built with LSE atomics: it stops on an ARMv8.0 core.
    with pytest.raises(ValueError, match=r"needs ARMv8\.1 LSE atomics, which cortex-a53"):
        arm64.mediapipe_classify(exported["int8"], [images[0].astype(np.uint8)], 1, "cortex-a53")
    with pytest.raises(ValueError, match=r"Unknown arm64 CPU 'pentium'.*cortex-a53"):
        arm64.compare(exported["fp32"], images, "pentium")
    with pytest.raises(arm64.Arm64RunError, match=r"expected \(N, 32, 32, 3\)"):
        arm64.run(exported["fp32"], images[:, :16], "cortex-a53")
    not_a_model = tmp_path / "not_a_model.tflite"
    not_a_model.write_bytes(b"this is not a flatbuffer")
    with pytest.raises(arm64.Arm64RunError, match=r"failed on .*not_a_model\.tflite"):
        arm64.run(not_a_model, images, "cortex-a53")


def test_arm64_columns_in_the_main_job_summary(tmp_path: Path) -> None:
    """The summary's arm64 LiteRT cell: top-1 (range over CPUs), worst difference and steps."""
    from ghostnet_keras.training.main_job import Pipeline

    def write(name: str, content: object) -> None:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))

    write("evaluate/accuracy.json", {"tflite_fp32": 0.988, "tflite_int8": 0.984})
    write("benchmark/latency_1_thread.json", {})
    row = {"max_steps": None, "max_abs_diff": 5e-7, "top1": 0.988}
    mediapipe = {"mediapipe_cpu": "cortex-a76"}
    write("arm64/arm64.json", {"cpus": ["cortex-a53", "cortex-a76"], "rows": [
        {**row, "format": "fp32", "cpu": "cortex-a53", **mediapipe, "mediapipe_top1": 0.988},
        {**row, "format": "fp32", "cpu": "cortex-a76", **mediapipe, "mediapipe_top1": 0.988},
        {"format": "int8", "cpu": "cortex-a53", "max_steps": 1, "max_abs_diff": 0.0039,
         "top1": 0.984, **mediapipe, "mediapipe_error": "arm64 MediaPipe failed\nno labels"},
        {"format": "int8", "cpu": "cortex-a76", "max_steps": 0, "max_abs_diff": 0.0,
         "top1": 0.986, **mediapipe, "mediapipe_error": "arm64 MediaPipe failed\nno labels"},
    ]})
    Pipeline(tmp_path, data_dir=None).summary()
    table = (tmp_path / "summary.md").read_text()
    assert "| arm64 LiteRT (top-1, max diff to x86) | MediaPipe arm64 top-1 |" in table
    assert "| 98.80%, max diff 5.0e-07 | 98.80% |" in table
    assert "| 98.40%-98.60%, max diff 3.9e-03 (1 step) | failed (no labels) |" in table
    assert "emulated cortex-a53, cortex-a76, MediaPipe's on cortex-a76" in table
    assert "emulated time is not speed" in table
