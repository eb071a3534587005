"""TFLite conversion, calibration, the integer check, XNNPACK partitions, the LiteRT benchmark.

GhostNet tests use width 0.5 at 96x96 and share one conversion per mode (module fixtures);
the checks of the converter's contract itself use a tiny model (a few seconds per conversion).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import require_module

require_module("ai_edge_litert", "needs the `tflite` extra (ai-edge-litert)")

from ghostnet_keras.synthetic_images import synthetic_images
from ghostnet_keras.tflite import (
    benchmark_models,
    benchmark_report,
    calibration,
    conversion,
    inventory,
    latency,
    sidecar,
    verify,
    xnnpack,
)

REPO_DIR = Path(__file__).resolve().parents[1]
ANDROID_SCRIPT = REPO_DIR / "tflite" / "android" / "run_benchmark.sh"
SIZE = 96


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_DIR), env.get("PYTHONPATH")) if p)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _tiny_model(classes: int = 5, size: int = 32, flatten: bool = False) -> keras.Model:
    inputs = keras.Input((size, size, 3))
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocessing")(inputs)
    x = keras.layers.ZeroPadding2D(1)(x)
    x = keras.layers.Conv2D(8, 3, strides=2, use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.ReLU(max_value=1.0)(x)
    if flatten:
        x = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
        x = keras.layers.Flatten()(x)
    else:
        x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny")


def _run_tflite(data: bytes, images: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=1)
    interpreter.allocate_tensors()
    (input_detail,) = interpreter.get_input_details()
    (output_detail,) = interpreter.get_output_details()
    outputs = []
    for image in images:
        interpreter.set_tensor(input_detail["index"], image[None].astype(np.float32))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_detail["index"])[0])
    return np.stack(outputs)


@pytest.fixture(scope="module")
def ghostnet_small() -> keras.Model:
    """GhostNet 0.5 at 96x96, logits, with random BN statistics and biases (non-trivial logits)."""
    from ghostnet_keras import GhostNet

    model = GhostNet(width=0.5, input_shape=(SIZE, SIZE, 3), classifier_activation=None)
    rng = np.random.default_rng(0)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.gamma.shape
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, shape),
                    rng.normal(0.0, 0.2, shape),
                    rng.normal(0.0, 0.2, shape),
                    rng.uniform(0.5, 1.5, shape),
                ]
            )
        elif isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and layer.use_bias:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, rng.normal(0.0, 0.1, bias.shape)])
    return model


@pytest.fixture(scope="module")
def ghostnet_converted(ghostnet_small: keras.Model) -> dict[str, bytes]:
    """fp32, fp16 and int8 from one export (`convert_modes`)."""
    return conversion.convert_modes(ghostnet_small, ("fp32", "fp16", "int8"),
                                 synthetic_images(8, SIZE))


@pytest.fixture(scope="module")
def ghostnet_fp32(ghostnet_converted: dict[str, bytes]) -> bytes:
    return ghostnet_converted["fp32"]


@pytest.fixture(scope="module")
def ghostnet_fp16(ghostnet_converted: dict[str, bytes]) -> bytes:
    return ghostnet_converted["fp16"]


@pytest.fixture(scope="module")
def ghostnet_int8(ghostnet_converted: dict[str, bytes]) -> bytes:
    return ghostnet_converted["int8"]


@pytest.fixture(scope="module")
def tiny_fp32() -> bytes:
    return conversion.convert(_tiny_model(), "fp32")


# ---------------------------------------------------------------------------------------------
# GhostNet


@pytest.mark.slow
def test_fp32_tflite_matches_keras(ghostnet_small: keras.Model, ghostnet_fp32: bytes) -> None:
    images = np.stack(list(synthetic_images(3, SIZE, seed=1)()))
    expected = ghostnet_small.predict(images, verbose=0)
    actual = _run_tflite(ghostnet_fp32, images)
    assert expected.std() > 0.05, "logits too small for a meaningful comparison"
    assert np.abs(actual - expected).max() <= 1e-4


@pytest.mark.slow
def test_fp16_tflite_is_within_1e_2_of_the_largest_keras_logit(
    ghostnet_small: keras.Model, ghostnet_fp16: bytes
) -> None:
    images = np.stack(list(synthetic_images(8, SIZE, seed=1)()))
    expected = ghostnet_small.predict(images, verbose=0)
    largest = np.abs(expected).max()
    assert expected.std() > 0.05, "logits too small for a meaningful comparison"
    # fp16 weights (rounding 2^-11 relative): measured 4e-4 of the largest logit (0.9)
    np.testing.assert_allclose(_run_tflite(ghostnet_fp16, images), expected, rtol=0,
                               atol=1e-2 * largest)


@pytest.mark.slow
def test_int8_tflite_agrees_with_keras_on_the_held_out_digits(
    quickstart_run, quickstart_dir: str
) -> None:
    """Post-training int8 (uint8 in and out, as the main job ships it) of the quickstart model
    trained for 3 epochs, calibrated on 200 training digits, through LiteRT: the same top-1 as
    Keras on >= 98% of the 500 held-out digits."""
    from ghostnet_keras.training.main_job import digit_images, tflite_predict
    from ghostnet_keras.weights.keras_files import load_keras_file

    run, _ = quickstart_run
    model = load_keras_file(run / "model.keras")
    size = model.input_shape[1]
    calibration_images, _ = digit_images("train", size, quickstart_dir, 200)
    images, labels = digit_images("test", size, quickstart_dir)
    assert len(images) == 500
    int8 = conversion.convert(model, "int8", lambda: iter(calibration_images), "uint8")
    expected = model.predict(images, verbose=0).argmax(axis=1)
    predicted = tflite_predict(int8, images).argmax(axis=1)
    agreement = float((predicted == expected).mean())
    assert (expected == labels).mean() >= 0.85  # a trained model: chance is 10%
    assert agreement >= 0.98, agreement  # measured: 99.8% (Keras top-1 96.2%, int8 96.0%)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fp32", "fp16"])
def test_float_ghostnet_lowers_to_static_builtin_ops(
    mode: str, ghostnet_fp32: bytes, ghostnet_fp16: bytes
) -> None:
    data = ghostnet_fp32 if mode == "fp32" else ghostnet_fp16
    ops = inventory.op_inventory(data)
    if mode == "fp16":
        assert ops["DEQUANTIZE"]["constant_dtypes"] == ["float16"]
    assert not {"SHAPE", "PACK", "STRIDED_SLICE"} & set(ops)  # batch 1: static RESHAPE only
    # How GhostNet lowers: GAP(keepdims) -> MEAN, ZeroPadding2D -> PAD, ghost concat ->
    # CONCATENATION, the SE gate relu6(x + 3) / 6 -> the expand CONV_2D with a fused RELU6 and
    # a MUL (no MINIMUM: XNNPACK would not take it in int8).
    for op in ("MEAN", "PAD", "CONCATENATION", "MUL", "ADD"):
        assert op in ops, op
    assert "MINIMUM" not in ops
    assert ops["CONV_2D"]["fused_activations"].get("RELU6") == 7
    assert all(
        row["input_dtypes"] == ["float32"] for name, row in ops.items() if name != "DEQUANTIZE"
    )
    assert xnnpack.partitioning(data) == xnnpack.Partitioning(1, ())


@pytest.mark.slow
def test_int8_ghostnet_has_no_float_compute_op(ghostnet_int8: bytes) -> None:
    assert verify.float_compute_ops(ghostnet_int8) == []
    ops = inventory.op_inventory(ghostnet_int8)
    assert ops["QUANTIZE"]["count"] == 1 and ops["DEQUANTIZE"]["count"] == 1
    assert ops["CONV_2D"]["input_dtypes"] == ["int8"]
    # One XNNPACK partition: no squeeze-excite op sends the tensor back to LiteRT's kernels.
    assert xnnpack.partitioning(ghostnet_int8) == xnnpack.Partitioning(1, ())


# ---------------------------------------------------------------------------------------------
# Converter contract (tiny model)


def test_int8_check_catches_dynamic_range_model() -> None:
    import tensorflow as tf

    # Only optimizations=[DEFAULT], no representative data: the converter silently produces a
    # dynamic-range model (int8 weights, float activations), not an integer one.
    converter = tf.lite.TFLiteConverter.from_keras_model(_tiny_model())
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    data = converter.convert()
    problems = verify.float_compute_ops(data)
    assert any("CONV_2D" in p for p in problems), problems
    with pytest.raises(verify.FloatOpError, match="not fully integer"):
        verify.verify_full_integer(data)


def test_int8_with_int8_io_is_integer_only() -> None:
    data = conversion.convert(_tiny_model(), "int8", synthetic_images(4, 32), "int8")
    info = inventory.read_model(data)
    assert [t.dtype for t in (*info.inputs, *info.outputs)] == ["int8", "int8"]
    assert info.inputs[0].scale and info.inputs[0].zero_point
    verify.verify_full_integer(data, float_io=False)
    with pytest.raises(verify.FloatOpError):
        verify.verify_full_integer(conversion.convert(_tiny_model(), "dynamic"))


def test_int8_with_uint8_io_takes_rgb_values() -> None:
    model = _tiny_model()
    representative = synthetic_images(6, 32)
    as_float = conversion.convert(model, "int8", representative)
    as_uint8 = conversion.convert(model, "int8", representative, "uint8")
    info = inventory.read_model(as_uint8)
    assert [t.dtype for t in (*info.inputs, *info.outputs)] == ["uint8", "uint8"]
    assert (info.inputs[0].scale, info.inputs[0].zero_point) == ((1.0,), (0,))
    verify.verify_full_integer(as_uint8, float_io=False)
    from ai_edge_litert.interpreter import Interpreter

    images = np.stack(list(synthetic_images(3, 32, seed=3)())).round()
    expected = _run_tflite(as_float, images)
    interpreter = Interpreter(model_content=as_uint8)
    interpreter.allocate_tensors()
    (source,), (target,) = interpreter.get_input_details(), interpreter.get_output_details()
    scale, zero = target["quantization"]
    for image, reference in zip(images, expected, strict=True):
        interpreter.set_tensor(source["index"], image[None].astype(np.uint8))
        interpreter.invoke()
        got = (interpreter.get_tensor(target["index"])[0].astype(np.float32) - zero) * scale
        assert np.abs(got - reference).max() <= 2 * scale  # the same model, uint8 at the edges


def test_convert_argument_errors() -> None:
    model = _tiny_model()
    with pytest.raises(calibration.RepresentativeDataError, match="representative_data"):
        conversion.convert(model, "int8")
    with pytest.raises(TypeError, match="tf_keras"):
        conversion.convert(model, "qat_int8")
    with pytest.raises(ValueError, match="io='uint8' needs an integer model"):
        conversion.convert(model, "fp32", io="uint8")
    with pytest.raises(ValueError, match="Unknown io"):
        conversion.convert(model, "int8", synthetic_images(1, 32), io="int16")
    with pytest.raises(ValueError, match="Unknown mode"):
        conversion.convert(model, "int4")
    with pytest.raises(ValueError, match="no representative_data"):
        conversion.convert(model, "fp16", synthetic_images(1, 32))


def test_convert_modes_exports_once_and_matches_convert() -> None:
    model = _tiny_model(flatten=True)
    images = np.stack(list(synthetic_images(3, 32, seed=2)()))
    converted = conversion.convert_modes(model, ("fp32", "int8"),
                                         synthetic_images(4, 32))
    assert list(converted) == ["fp32", "int8"]
    separate = conversion.convert(model, "fp32")
    np.testing.assert_array_equal(_run_tflite(converted["fp32"], images),
                                  _run_tflite(separate, images))
    assert "STRIDED_SLICE" not in inventory.op_inventory(converted["fp32"])  # batch fixed to 1
    verify.verify_full_integer(converted["int8"])
    with pytest.raises(ValueError, match="distinct"):
        conversion.convert_modes(model, ("fp32", "fp32"))
    with pytest.raises(calibration.RepresentativeDataError):
        conversion.convert_modes(model, ("fp32", "int8"))


def test_dynamic_batch_flatten_leaves_shape_ops() -> None:
    model = _tiny_model(flatten=True)
    dynamic = conversion.convert(model, "fp32", batch_size=None)
    assert {"SHAPE", "STRIDED_SLICE", "PACK"} <= set(inventory.op_inventory(dynamic))
    static = conversion.convert(model, "fp32")  # batch_size=1
    assert "STRIDED_SLICE" not in inventory.op_inventory(static)


def test_inventory_of_tiny_model(tiny_fp32: bytes) -> None:
    info = inventory.read_model(tiny_fp32)
    assert info.inputs[0].shape == (1, 32, 32, 3)
    ops = inventory.op_inventory(info)
    assert ops["CONV_2D"]["count"] == 1
    assert ops["CONV_2D"]["constant_dtypes"] == ["float32"]
    assert "total" in inventory.format_inventory(ops)
    with pytest.raises(ValueError, match="TFL3"):
        inventory.read_model(b"not a model at all")


def test_synthetic_images_are_deterministic_rgb() -> None:
    first = list(synthetic_images(3, (40, 30), seed=7)())
    second = list(synthetic_images(3, (40, 30), seed=7)())
    assert len(first) == 3 and first[0].shape == (40, 30, 3) and first[0].dtype == np.float32
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert min(float(i.min()) for i in first) >= 0.0 and max(float(i.max()) for i in first) <= 255
    assert all(float(i.std()) > 10.0 for i in first)


def test_representative_sources(tmp_path: Path) -> None:
    with pytest.raises(calibration.RepresentativeDataError, match="does not exist"):
        calibration.representative_source(str(tmp_path / "missing"))
    with pytest.raises(calibration.RepresentativeDataError, match="No image"):
        calibration.representative_source(str(tmp_path))
    import tensorflow as tf

    image = tf.io.encode_png(np.full((50, 80, 3), 200, np.uint8)).numpy()
    (tmp_path / "a.png").write_bytes(image)
    (images,) = list(calibration.representative_source(str(tmp_path), 5, 32)())
    assert images.shape == (32, 32, 3) and np.allclose(images, 200.0)


def test_folder_images_for_a_non_square_input(tmp_path: Path) -> None:
    import tensorflow as tf

    gradient = np.broadcast_to(np.linspace(0, 255, 120, dtype=np.float32)[None, :, None],
                               (90, 120, 3))
    (tmp_path / "wide.png").write_bytes(tf.io.encode_png(gradient.astype(np.uint8)).numpy())
    (image,) = list(calibration.folder_images(tmp_path, 5, (128, 96))())
    assert image.shape == (128, 96, 3) and image.dtype == np.float32
    # Resized to cover (128 / 0.875, 96 / 0.875) with the aspect kept, then centre-cropped:
    # the crop is the middle of the horizontal gradient, rows all alike.
    assert np.allclose(image[0], image[-1], atol=1.0)
    assert 60.0 < image[:, 0].mean() < image[:, -1].mean() < 200.0


@pytest.mark.slow
def test_int8_cli_calibrates_a_non_square_ghostnet_from_a_folder(tmp_path: Path) -> None:
    import tensorflow as tf

    from ghostnet_keras import GhostNet

    folder = tmp_path / "images"
    folder.mkdir()
    for index, image in enumerate(synthetic_images(4, (150, 200), seed=5)()):
        (folder / f"{index}.jpg").write_bytes(tf.io.encode_jpeg(image.astype(np.uint8)).numpy())
    model_path = tmp_path / "ghostnet_128x96.keras"
    GhostNet(width=0.5, input_shape=(128, 96, 3), classes=10).save(model_path)
    output = tmp_path / "out" / "ghostnet_128x96_int8.tflite"
    result = subprocess.run(
        [sys.executable, "-m", "ghostnet_keras.tflite.cli.convert", f"--model={model_path}",
         "--mode=int8", "--io=uint8", f"--representative={folder}", "--num_calibration=4",
         "--nocheck_gpu", f"--output={output}"],
        capture_output=True, text=True, env=_subprocess_env(), cwd=REPO_DIR, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    data = output.read_bytes()
    info = inventory.read_model(data)
    assert info.inputs[0].shape == (1, 128, 96, 3) and info.inputs[0].dtype == "uint8"
    verify.verify_full_integer(data, float_io=False)
    assert json.loads(output.with_suffix(".json").read_text())["gpu"] is None


# ---------------------------------------------------------------------------------------------
# Command lines


@pytest.mark.slow
def test_convert_cli_writes_three_files(tmp_path: Path) -> None:
    model = _tiny_model(classes=4)
    model_path = tmp_path / "tiny.keras"
    model.save(model_path)
    output = tmp_path / "out" / "tiny_fp32.tflite"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ghostnet_keras.tflite.cli.convert",
            f"--model={model_path}",
            "--mode=fp32",
            f"--output={output}",
        ],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        cwd=REPO_DIR,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    files = sorted(p.name for p in output.parent.iterdir())
    # No temporaries left.
    assert files == ["tiny_fp32.json", "tiny_fp32.labels.txt", "tiny_fp32.tflite"]
    data = output.read_bytes()
    written = json.loads(output.with_suffix(".json").read_text())
    assert written["file"] == output.name and written["labels"] == "tiny_fp32.labels.txt"
    assert written["bytes"] == len(data) and written["mode"] == "fp32"
    import hashlib

    assert written["sha256"] == hashlib.sha256(data).hexdigest()
    assert written["inputs"][0]["normalisation"] == sidecar.NORMALISES_INTERNALLY
    assert written["inputs"][0]["shape"] == [1, 32, 32, 3]
    assert written["outputs"][0]["kind"] == "probabilities (softmax)"
    assert written["macs"] > 0 and written["params"] == model.count_params()
    # The converter checked the model on the GPU accelerator (the software GPU in CI).
    assert written["gpu"]["checked"] and written["gpu"]["fully_delegated"]
    assert written["gpu"]["precision"] == "fp32" and written["gpu"]["relative_diff"] < 1e-4
    assert (output.parent / "tiny_fp32.labels.txt").read_text().splitlines() == [
        f"class_{i}" for i in range(4)
    ]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "ghostnet_keras.tflite.cli.convert",
            f"--model={model_path}",
            "--mode=int8",
            f"--output={tmp_path / 'bad' / 'x.tflite'}",
        ],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        cwd=REPO_DIR,
        timeout=300,
    )
    assert bad.returncode != 0 and "representative" in bad.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_benchmark_cli_one_model(tmp_path: Path, ghostnet_fp32: bytes) -> None:
    # Reuse the module's GhostNet 0.5 conversion (the conversion itself is tested above).
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    (models_dir / f"ghostnet_050_{SIZE}_fp32.tflite").write_bytes(ghostnet_fp32)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ghostnet_keras.tflite.benchmark",
            "--models=ghostnet_050",
            "--modes=fp32",
            "--threads=1",
            f"--input_size={SIZE}",
            "--warmup=1",
            "--iterations=3",
            "--gpu_iterations=1",
            "--reuse_converted",
            f"--output_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        env=_subprocess_env(),
        cwd=REPO_DIR,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GhostNet-0.5" in result.stdout and "1 thr ms" in result.stdout
    assert "GPU: LiteRT GPU accelerator on" in result.stdout, result.stdout
    assert (tmp_path / "latency_vs_macs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((tmp_path / "benchmark.json").read_text())
    (entry,) = results["results"]
    assert entry["model"] == "ghostnet_050" and entry["latency_ms"]["1"]["n"] == 3
    assert entry["macs"] > 0 and entry["xnnpack_partitions"] == 1
    assert entry["gpu"]["fully_delegated"] and entry["gpu"]["precision"] == "fp32"


def test_benchmark_helpers(tiny_fp32: bytes) -> None:
    samples = latency.time_interleaved(
        {"a": lambda: None, "b": lambda: None}, warmup=1, iterations=7, block=3
    )
    assert [len(v) for v in samples.values()] == [7, 7]
    rows = latency.op_profile(tiny_fp32, 1, warmup=1, iterations=3)
    assert [r["op"] for r in rows] == [op.name for op in inventory.read_model(tiny_fp32).ops]
    by_type = latency.summarize_op_profile(rows)
    assert abs(sum(v["share"] for v in by_type.values()) - 1.0) < 1e-6
    entry = benchmark_models.Entry("mobilenetv3_large", "fp32", tiny_fp32, 10**6, 10**3)
    entry.latency_ms[1] = latency.summarize([0.002, 0.001, 0.003])
    int8 = benchmark_models.Entry("mobilenetv3_large", "int8", tiny_fp32, 10**6, 10**3)
    int8.latency_ms[1] = latency.summarize([0.001, 0.001, 0.001])
    table = benchmark_report.format_table([entry, int8], [1])
    assert "MobileNetV3-Large" in table and "1.00" in table and "0.50" in table
    assert benchmark_models.ratio([entry, int8], int8, "mobilenetv3_large", "fp32", 1) == 0.5
    assert "not a GPU format" in benchmark_report.format_gpu_table([entry, int8])


# ---------------------------------------------------------------------------------------------
# Android script


def _tool_path(tmp_path: Path, fake_adb: str | None = None) -> str:
    """A PATH with only the tools the script needs (and optionally a fake adb)."""
    bin_dir = tmp_path / f"bin{len(list(tmp_path.glob('bin*')))}"
    bin_dir.mkdir()
    for tool in ("timeout", "basename", "tail", "tr", "sed", "grep", "mkdir", "rm", "sleep"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    if fake_adb is not None:
        adb = bin_dir / "adb"
        adb.write_text("#!/bin/bash\n" + fake_adb)
        adb.chmod(0o755)
    return str(bin_dir)


def _run_script(tmp_path: Path, path: str, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "m.tflite").write_bytes(b"model")
    (tmp_path / "benchmark_model").write_bytes(b"binary")
    return subprocess.run(
        ["/bin/bash", str(ANDROID_SCRIPT), "m.tflite", "benchmark_model"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={"PATH": path, "OUT_DIR": str(tmp_path / "logs"), **env},
    )


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils timeout")
def test_android_script_fails_clearly_without_adb_or_device(tmp_path: Path) -> None:
    result = _run_script(tmp_path, _tool_path(tmp_path))
    assert result.returncode == 3 and "adb not found" in result.stderr
    no_device = 'echo "error: no devices/emulators found" >&2; exit 1\n'
    result = _run_script(tmp_path, _tool_path(tmp_path, no_device))
    assert result.returncode == 4 and "no usable Android device" in result.stderr
    # an adb that hangs is ended by the script's own timeout (ADB_TIMEOUT_S), which says so
    hanging = f"exec {shutil.which('sleep')} 100\n"
    result = _run_script(tmp_path, _tool_path(tmp_path, hanging), ADB_TIMEOUT_S="1")
    assert result.returncode == 4 and "timed out" in result.stderr


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils timeout")
def test_android_script_runs_cpu_and_gpu_with_a_fake_device(tmp_path: Path) -> None:
    timings = "Inference timings in us: Init: 1, First inference: 2, Warmup (avg): 3"
    fake = f"""case "$1" in
  get-state) echo device ;;
  push) exit 0 ;;
  shell) shift; case "$*" in
    *ro.product.cpu.abi*) echo arm64-v8a ;;
    *getprop*) echo FakePhone ;;
    *use_gpu=true*) echo "model graph will be completely executed by the delegate."
      echo "{timings}, Inference (avg): 4000" ;;
    *num_threads=1*) echo "{timings}, Inference (avg): 5000" ;;
  esac ;;
esac
"""
    result = _run_script(tmp_path, _tool_path(tmp_path, fake))
    assert result.returncode == 0, result.stderr
    assert "cpu_1thread: Inference timings in us" in result.stdout
    assert "gpu: Inference timings in us" in result.stdout
    assert "warning" not in result.stdout
