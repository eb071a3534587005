"""TFLite conversion, op inventory / GPU check, LiteRT benchmark and the Android script.

GhostNet tests use width 0.5 at 96x96 and share one conversion per mode (module fixtures);
the checks of the converter's contract itself use a tiny model (a few seconds per conversion).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="needs the `tflite` extra (ai-edge-litert)")

from ghostnet_keras.tflite import benchmark, convert, gpu_supported_ops, inventory

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
    return convert.convert_modes(ghostnet_small, ("fp32", "fp16", "int8"),
                                 convert.synthetic_images(8, SIZE))


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
    return convert.convert(_tiny_model(), "fp32")


# ---------------------------------------------------------------------------------------------
# GhostNet


@pytest.mark.slow
def test_fp32_tflite_matches_keras(ghostnet_small: keras.Model, ghostnet_fp32: bytes) -> None:
    images = np.stack(list(convert.synthetic_images(3, SIZE, seed=1)()))
    expected = ghostnet_small.predict(images, verbose=0)
    actual = _run_tflite(ghostnet_fp32, images)
    assert expected.std() > 0.05, "logits too small for a meaningful comparison"
    assert np.abs(actual - expected).max() <= 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fp32", "fp16"])
def test_float_ghostnet_ops_are_gpu_delegable(
    mode: str, ghostnet_fp32: bytes, ghostnet_fp16: bytes
) -> None:
    data = ghostnet_fp32 if mode == "fp32" else ghostnet_fp16
    ops = inventory.op_inventory(data)
    allowed = set(gpu_supported_ops.DELEGATE_OPS)
    if mode == "fp16":
        allowed.add("DEQUANTIZE")  # float16 weights -> float32, folded by the delegate
        assert ops["DEQUANTIZE"]["constant_dtypes"] == ["float16"]
    assert set(ops) <= allowed, set(ops) - allowed
    assert "STRIDED_SLICE" not in ops
    assert not {"SHAPE", "PACK"} & set(ops)  # batch fixed to 1: static RESHAPE only
    assert inventory.gpu_unsupported_ops(data) == []
    # How GhostNet lowers: GAP(keepdims) -> MEAN, ZeroPadding2D -> PAD, ghost concat ->
    # CONCATENATION, SE gate ReLU(max_value=1) -> MINIMUM + RELU (Rescaling folded into the conv).
    for op in ("MEAN", "PAD", "CONCATENATION", "MINIMUM", "RELU", "MUL", "ADD"):
        assert op in ops, op
    assert all(
        row["input_dtypes"] == ["float32"] for name, row in ops.items() if name != "DEQUANTIZE"
    )


@pytest.mark.slow
def test_int8_ghostnet_has_no_float_compute_op(ghostnet_int8: bytes) -> None:
    assert convert.float_compute_ops(ghostnet_int8) == []
    ops = inventory.op_inventory(ghostnet_int8)
    assert ops["QUANTIZE"]["count"] == 1 and ops["DEQUANTIZE"]["count"] == 1
    assert ops["CONV_2D"]["input_dtypes"] == ["int8"]
    assert inventory.gpu_unsupported_ops(ghostnet_int8, allow_quantized=True) == []


# ---------------------------------------------------------------------------------------------
# Converter contract (tiny model)


def test_int8_check_catches_dynamic_range_model() -> None:
    import tensorflow as tf

    # Only optimizations=[DEFAULT], no representative data: the converter silently produces a
    # dynamic-range model (int8 weights, float activations), not an integer one.
    converter = tf.lite.TFLiteConverter.from_keras_model(_tiny_model())
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    data = converter.convert()
    problems = convert.float_compute_ops(data)
    assert any("CONV_2D" in p for p in problems), problems
    with pytest.raises(convert.FloatOpError, match="not fully integer"):
        convert.verify_full_integer(data)


def test_int8_with_int8_io_is_integer_only() -> None:
    data = convert.convert(_tiny_model(), "int8", convert.synthetic_images(4, 32), int8_io=True)
    info = inventory.read_model(data)
    assert [t.dtype for t in (*info.inputs, *info.outputs)] == ["int8", "int8"]
    assert info.inputs[0].scale and info.inputs[0].zero_point
    convert.verify_full_integer(data, float_io=False)
    with pytest.raises(convert.FloatOpError):
        convert.verify_full_integer(convert.convert(_tiny_model(), "dynamic"))


def test_convert_argument_errors() -> None:
    model = _tiny_model()
    with pytest.raises(convert.RepresentativeDataError, match="representative_data"):
        convert.convert(model, "int8")
    with pytest.raises(TypeError, match="tf_keras"):
        convert.convert(model, "qat_int8")
    with pytest.raises(ValueError, match="int8_io"):
        convert.convert(model, "fp32", int8_io=True)
    with pytest.raises(ValueError, match="Unknown mode"):
        convert.convert(model, "int4")
    with pytest.raises(ValueError, match="no representative_data"):
        convert.convert(model, "fp16", convert.synthetic_images(1, 32))


def test_convert_modes_exports_once_and_matches_convert() -> None:
    model = _tiny_model(flatten=True)
    images = np.stack(list(convert.synthetic_images(3, 32, seed=2)()))
    converted = convert.convert_modes(model, ("fp32", "int8"), convert.synthetic_images(4, 32))
    assert list(converted) == ["fp32", "int8"]
    separate = convert.convert(model, "fp32")
    np.testing.assert_array_equal(_run_tflite(converted["fp32"], images),
                                  _run_tflite(separate, images))
    assert "STRIDED_SLICE" not in inventory.op_inventory(converted["fp32"])  # batch fixed to 1
    convert.verify_full_integer(converted["int8"])
    with pytest.raises(ValueError, match="distinct"):
        convert.convert_modes(model, ("fp32", "fp32"))
    with pytest.raises(convert.RepresentativeDataError):
        convert.convert_modes(model, ("fp32", "int8"))


def test_dynamic_batch_flatten_would_split_the_gpu_graph() -> None:
    model = _tiny_model(flatten=True)
    dynamic = convert.convert(model, "fp32", batch_size=None)
    assert {"SHAPE", "STRIDED_SLICE", "PACK"} <= set(inventory.op_inventory(dynamic))
    assert {"SHAPE", "STRIDED_SLICE", "PACK", "RESHAPE"} <= set(
        inventory.gpu_unsupported_ops(dynamic)
    )
    static = convert.convert(model, "fp32")  # batch_size=1
    assert "STRIDED_SLICE" not in inventory.op_inventory(static)
    assert inventory.gpu_unsupported_ops(static) == []


def test_inventory_of_tiny_model(tiny_fp32: bytes) -> None:
    info = inventory.read_model(tiny_fp32)
    assert info.inputs[0].shape == (1, 32, 32, 3)
    ops = inventory.op_inventory(info)
    assert ops["CONV_2D"]["count"] == 1
    assert ops["CONV_2D"]["constant_dtypes"] == ["float32"]
    assert "total" in inventory.format_inventory(ops)
    with pytest.raises(ValueError, match="TFL3"):
        inventory.read_model(b"not a model at all")


def test_gpu_supported_op_lists() -> None:
    names = set(inventory._enum_names(inventory._schema().BuiltinOperator).values())
    assert gpu_supported_ops.DELEGATE_OPS <= names
    assert gpu_supported_ops.DOCUMENTED_OPS <= gpu_supported_ops.DELEGATE_OPS
    # The documented list lags the delegate: MEAN and HARD_SWISH are parsed, not documented.
    assert {
        "MEAN",
        "HARD_SWISH",
    } <= gpu_supported_ops.DELEGATE_OPS - gpu_supported_ops.DOCUMENTED_OPS
    assert "SHAPE" not in gpu_supported_ops.DELEGATE_OPS


def test_synthetic_images_are_deterministic_rgb() -> None:
    first = list(convert.synthetic_images(3, (40, 30), seed=7)())
    second = list(convert.synthetic_images(3, (40, 30), seed=7)())
    assert len(first) == 3 and first[0].shape == (40, 30, 3) and first[0].dtype == np.float32
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert min(float(i.min()) for i in first) >= 0.0 and max(float(i.max()) for i in first) <= 255
    assert all(float(i.std()) > 10.0 for i in first)


def test_representative_sources(tmp_path: Path) -> None:
    with pytest.raises(convert.RepresentativeDataError, match="does not exist"):
        convert.representative_source(str(tmp_path / "missing"))
    with pytest.raises(convert.RepresentativeDataError, match="No image"):
        convert.representative_source(str(tmp_path))
    import tensorflow as tf

    image = tf.io.encode_png(np.full((50, 80, 3), 200, np.uint8)).numpy()
    (tmp_path / "a.png").write_bytes(image)
    (images,) = list(convert.representative_source(str(tmp_path), 5, 32)())
    assert images.shape == (32, 32, 3) and np.allclose(images, 200.0)


@pytest.mark.slow
def test_quickstart_representative_images() -> None:
    pytest.importorskip(
        "ghostnet_keras.training.data", reason="the project's data pipeline is not available"
    )
    images = list(convert.quickstart_images(2, 48)())
    assert len(images) == 2 and images[0].shape == (48, 48, 3)
    assert float(images[0].max()) > 1.5  # RGB 0-255, not normalised


def test_write_atomically_leaves_nothing_on_failure(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = tmp_path / "out" / "model.tflite"
    with pytest.raises(OSError):
        convert.write_atomically({target: b"model", blocker / "sub" / "labels.txt": b"labels"})
    assert not target.exists()
    assert list((tmp_path / "out").iterdir()) == []


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
            "ghostnet_keras.tflite.convert",
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
    assert files == ["labels.txt", "tiny_fp32.json", "tiny_fp32.tflite"]  # no temporaries left
    data = output.read_bytes()
    sidecar = json.loads(output.with_suffix(".json").read_text())
    assert sidecar["file"] == output.name and sidecar["labels"] == "labels.txt"
    assert sidecar["bytes"] == len(data) and sidecar["mode"] == "fp32"
    import hashlib

    assert sidecar["sha256"] == hashlib.sha256(data).hexdigest()
    assert sidecar["inputs"][0]["normalisation"] == convert.NORMALISES_INTERNALLY
    assert sidecar["inputs"][0]["shape"] == [1, 32, 32, 3]
    assert sidecar["outputs"][0]["kind"] == "probabilities (softmax)"
    assert sidecar["macs"] > 0 and sidecar["params"] == model.count_params()
    assert (output.parent / "labels.txt").read_text().splitlines() == [
        f"class_{i}" for i in range(4)
    ]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "ghostnet_keras.tflite.convert",
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
    assert "GhostNet-0.5" in result.stdout and "1 thr median (p90) ms" in result.stdout
    assert "GPU: " in result.stdout
    assert (tmp_path / "latency_vs_macs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((tmp_path / "benchmark.json").read_text())
    (entry,) = results["results"]
    assert entry["model"] == "ghostnet_050" and entry["latency_ms"]["1"]["n"] == 3
    assert entry["macs"] > 0


def test_benchmark_helpers(tiny_fp32: bytes) -> None:
    samples = benchmark.time_interleaved(
        {"a": lambda: None, "b": lambda: None}, warmup=1, iterations=7, block=3
    )
    assert [len(v) for v in samples.values()] == [7, 7]
    rows = benchmark.op_profile(tiny_fp32, 1, warmup=1, iterations=3)
    assert [r["op"] for r in rows] == [op.name for op in inventory.read_model(tiny_fp32).ops]
    by_type = benchmark.summarize_op_profile(rows)
    assert abs(sum(v["share"] for v in by_type.values()) - 1.0) < 1e-6
    entry = benchmark.Entry("mobilenetv3_large", "fp32", tiny_fp32, 10**6, 10**3)
    entry.latency_ms[1] = benchmark.summarize([0.002, 0.001, 0.003])
    table = benchmark.format_table([entry], [1])
    assert "MobileNetV3-Large" in table and "1.00" in table


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


def _run_script(tmp_path: Path, path: str, **env: str) -> tuple[subprocess.CompletedProcess, float]:
    (tmp_path / "m.tflite").write_bytes(b"model")
    (tmp_path / "benchmark_model").write_bytes(b"binary")
    start = time.monotonic()
    result = subprocess.run(
        ["/bin/bash", str(ANDROID_SCRIPT), "m.tflite", "benchmark_model"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        env={"PATH": path, "OUT_DIR": str(tmp_path / "logs"), **env},
    )
    return result, time.monotonic() - start


@pytest.mark.skipif(shutil.which("timeout") is None, reason="needs coreutils timeout")
def test_android_script_fails_fast_without_adb_or_device(tmp_path: Path) -> None:
    result, seconds = _run_script(tmp_path, _tool_path(tmp_path))
    assert result.returncode == 3 and "adb not found" in result.stderr and seconds < 10
    no_device = 'echo "error: no devices/emulators found" >&2; exit 1\n'
    result, seconds = _run_script(tmp_path, _tool_path(tmp_path, no_device))
    assert result.returncode == 4 and "no usable Android device" in result.stderr
    hanging = f"exec {shutil.which('sleep')} 100\n"
    result, seconds = _run_script(tmp_path, _tool_path(tmp_path, hanging), ADB_TIMEOUT_S="1")
    assert result.returncode == 4 and "timed out" in result.stderr and seconds < 15


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
    result, _ = _run_script(tmp_path, _tool_path(tmp_path, fake))
    assert result.returncode == 0, result.stderr
    assert "cpu_1thread: Inference timings in us" in result.stdout
    assert "gpu: Inference timings in us" in result.stdout
    assert "warning" not in result.stdout
