"""Every console script: a user error is one `error: ...` line and a non-zero exit, never a
traceback; flags that would be ignored are refused. Run through the installed scripts.

The usage errors are found before Keras is imported (each call well under a second on an idle
machine); the few that load a model use a tiny one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from absl import app

from ghostnet_keras.cli import model_flags

BIN = Path(sys.executable).parent
SCRIPTS = (
    "ghostnet-profile", "ghostnet-convert", "ghostnet-report", "ghostnet-train",
    "ghostnet-evaluate", "ghostnet-export-serving", "ghostnet-export-onnx",
    "ghostnet-tflite-convert", "ghostnet-tflite-benchmark", "ghostnet-tflite-inventory",
    "ghostnet-main",
)
# What each script needs to get past flag parsing (its required flags).
REQUIRED = {
    "ghostnet-convert": ["--checkpoint=x.pth", "--output=x.weights.h5"],
    "ghostnet-train": ["--model_dir=run"],
    "ghostnet-tflite-inventory": ["--model=x.tflite"],
}


def run(script: str, *arguments: str, cwd: Path, **environment: str) -> tuple[int, str]:
    """Runs a console script; returns (exit code, stderr)."""
    result = subprocess.run(
        [str(BIN / script), *arguments], cwd=cwd, capture_output=True, text=True,
        timeout=600, check=False, env={**os.environ, "CUDA_VISIBLE_DEVICES": "", **environment})
    return result.returncode, result.stderr


def error_line(stderr: str) -> str:
    """The one `error:` line; fails on a traceback or on more than one error line."""
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_stray_positional_argument_is_a_usage_error(script: str, tmp_path: Path) -> None:
    code, stderr = run(script, *REQUIRED.get(script, []), "stray", cwd=tmp_path)
    assert code == 2
    assert "Unexpected arguments: stray" in error_line(stderr)
    assert list(tmp_path.iterdir()) == []  # nothing was written


@pytest.mark.parametrize(("script", "flag"), [
    ("ghostnet-tflite-convert", "--no_such_flag=1"),
    ("ghostnet-export-serving", "--max_pixels=0"),
    ("ghostnet-export-serving", "--max_batch_size=-1"),
    ("ghostnet-tflite-convert", "--mode=fp8"),
    ("ghostnet-evaluate", "--model_version=v4"),
])
def test_a_bad_flag_is_a_usage_error(script: str, flag: str, tmp_path: Path) -> None:
    code, stderr = run(script, flag, cwd=tmp_path)
    assert code == 2 and flag.split("=")[0].removeprefix("--") in error_line(stderr)


# The commands that share the model flags, with what else each needs.
MODEL_COMMANDS = {
    "ghostnet-tflite-convert": ["--output=out/m.tflite"],
    "ghostnet-export-onnx": ["--output=out/m.onnx"],
    "ghostnet-export-serving": ["--export_base=out/serving"],
    "ghostnet-evaluate": [],
}


@pytest.mark.parametrize("script", MODEL_COMMANDS)
def test_the_model_flags_are_checked_alike(script: str, tmp_path: Path) -> None:
    other = MODEL_COMMANDS[script]
    (tmp_path / "m.keras").write_bytes(b"not read: refused before loading")
    code, stderr = run(script, "--model=m.keras", "--weights=imagenet", *other, cwd=tmp_path)
    assert code == 2
    assert "--weights would be ignored next to --model" in error_line(stderr)
    code, stderr = run(script, "--model=m.keras", "--model_version=v2", *other, cwd=tmp_path)
    assert code == 2 and "--model_version would be ignored" in error_line(stderr)
    code, stderr = run(script, "--model=missing.keras", *other, cwd=tmp_path)
    assert code == 1 and "No such model file: missing.keras" in error_line(stderr)
    code, stderr = run(script, "--width=0.5", "--weights=missing.weights.h5", *other,
                       cwd=tmp_path)
    assert code == 1 and "No such weights file: missing.weights.h5" in error_line(stderr)
    code, stderr = run(script, *other, cwd=tmp_path)
    assert code == 2 and "name the model" in error_line(stderr)
    code, stderr = run(script, "--width=1.0", "--weights=x.h5", "--input_size=16", *other,
                       cwd=tmp_path)
    assert code == 2 and "--input_size takes height[,width]" in error_line(stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def test_tflite_converter_refuses_flags_its_mode_ignores(tmp_path: Path) -> None:
    base = ["--width=0.5", "--output=m.tflite"]
    for flags, message in (
        (["--mode=fp16", "--representative=random"], "--representative calibrates mode int8"),
        (["--mode=fp32", "--num_calibration=10"], "--num_calibration needs --representative"),
        (["--mode=fp32", "--io=uint8"], "--io=uint8 needs an integer mode"),
        (["--mode=int8"], "--mode=int8 needs calibration images"),
        (["--mode=qat_int8"], "qat_int8 converts a QAT SavedModel"),
        (["--mode=fp32", "--output=m.onnx"], "--output must end with .tflite"),
        (["--mode=fp32", "--weights=imagenet"], "no ImageNet weights for GhostNet v1 width 0.5"),
    ):
        code, stderr = run("ghostnet-tflite-convert", *base, *flags, cwd=tmp_path)
        assert code == 2 and message in error_line(stderr), flags
    assert list(tmp_path.iterdir()) == []


def test_trainer_refuses_flags_qat_ignores(tmp_path: Path) -> None:
    model = tmp_path / "float.keras"
    model.write_bytes(b"not read: refused before loading")
    qat = ["--model_dir=run", "--qat", f"--init_from={model}"]
    for flag in ("--mixed_precision=mixed_float16", "--jit_compile", "--max_steps=5"):
        code, stderr = run("ghostnet-train", *qat, flag, cwd=tmp_path)
        name = flag.split("=")[0]
        assert code == 2 and f"{name} would be ignored with --qat" in error_line(stderr)
    code, stderr = run("ghostnet-train", "--model_dir=run", "--qat", cwd=tmp_path)
    assert code == 2 and "--qat needs --init_from" in error_line(stderr)
    code, stderr = run("ghostnet-train", "--model_dir=run", f"--init_from={model}", cwd=tmp_path)
    assert code == 2 and "--init_from would be ignored" in error_line(stderr)
    code, stderr = run("ghostnet-train", "--model_dir=run", "--tpu=grpc://x", cwd=tmp_path)
    assert code == 2 and "--tpu would be ignored with --strategy=auto" in error_line(stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["float.keras"]


def test_unreadable_inputs_are_named(tmp_path: Path) -> None:
    (tmp_path / "bad.tflite").write_bytes(b"not a flatbuffer")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    code, stderr = run("ghostnet-tflite-inventory", "--model=missing.tflite", cwd=tmp_path)
    assert code == 1 and "missing.tflite" in error_line(stderr)
    code, stderr = run("ghostnet-tflite-inventory", "--model=bad.tflite", cwd=tmp_path)
    assert code == 1 and "Not a TFLite flatbuffer" in error_line(stderr)
    code, stderr = run("ghostnet-convert", "--checkpoint=missing.pth",
                       "--output=x.weights.h5", cwd=tmp_path)
    assert code == 1 and "No such checkpoint file: missing.pth" in error_line(stderr)
    code, stderr = run("ghostnet-convert", "--checkpoint=bad.pth", "--output=x.weights.h5",
                       cwd=tmp_path)
    assert code == 1 and "bad.pth" in error_line(stderr)
    code, stderr = run("ghostnet-convert", "--output=x.weights.h5", cwd=tmp_path)
    assert code == 2 and "--checkpoint" in error_line(stderr)
    code, stderr = run("ghostnet-report", "--widths=wide", cwd=tmp_path)
    assert code == 2 and "--widths takes positive numbers" in error_line(stderr)
    code, stderr = run("ghostnet-tflite-benchmark", "--threads=0", cwd=tmp_path)
    assert code == 2 and "--threads takes positive integers" in error_line(stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pth", "bad.tflite"]


@pytest.mark.slow
def test_unreachable_imagenet_weights_are_one_message(tmp_path: Path) -> None:
    # An empty Keras cache and a proxy that refuses at once: the download fails fast, as
    # offline (keras.utils.get_file goes through urllib, which honours https_proxy).
    (tmp_path / "keras_home").mkdir()
    offline = {"KERAS_HOME": str(tmp_path / "keras_home"), "https_proxy": "http://127.0.0.1:9",
               "HTTPS_PROXY": "http://127.0.0.1:9", "no_proxy": "", "NO_PROXY": ""}
    code, stderr = run("ghostnet-tflite-convert", "--width=1.0", "--weights=imagenet",
                       "--input_size=32", "--output=m.tflite", cwd=tmp_path, **offline)
    line = error_line(stderr)
    assert code == 1
    assert "Could not download the GhostNet ImageNet weights" in line
    assert "--weights=<that file>" in line
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.slow
def test_a_wrong_label_count_or_size_is_named(tmp_path: Path) -> None:
    from ghostnet_keras import GhostNet

    GhostNet(width=0.1, classes=4, input_shape=(32, 32, 3)).save(tmp_path / "m.keras")
    (tmp_path / "labels.txt").write_text("cat\ndog\nbird\n")
    code, stderr = run("ghostnet-tflite-convert", "--model=m.keras", "--labels=labels.txt",
                       "--output=m.tflite", "--nocheck_gpu", cwd=tmp_path)
    assert code == 1
    assert "the model has 4 classes but 3 labels were given" in error_line(stderr)
    code, stderr = run("ghostnet-tflite-convert", "--model=m.keras", "--input_size=64",
                       "--output=m.tflite", "--nocheck_gpu", cwd=tmp_path)
    assert code == 2
    assert "--input_size=64,64 would be ignored: m.keras takes 32x32" in error_line(stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.txt", "m.keras"]


# ------------------------------------------------------------------ the model flags, in-process


def test_model_flags_check_names_each_problem(tmp_path: Path) -> None:
    weights = tmp_path / "w.weights.h5"
    weights.write_bytes(b"")
    spec = model_flags.check(width=0.5, weights=weights, version="v2", classes=10,
                             input_size=(64, 48))
    assert spec == model_flags.ModelSpec(width=0.5, weights=str(weights), version="v2",
                                         input_size=(64, 48), classes=10)
    with pytest.raises(model_flags.ModelFlagsError, match="there are no ImageNet weights"):
        model_flags.check(width=1.3, weights="imagenet", version="v3")
    with pytest.raises(model_flags.ModelFlagsError, match="has 1000 classes"):
        model_flags.check(width=1.0, weights="imagenet", classes=10)
    with pytest.raises(model_flags.ModelFlagsError, match="both a width and weights"):
        model_flags.check(width=0.5, require_weights=True)
    with pytest.raises(model_flags.ModelFlagsError, match=r"must be a \.keras file"):
        model_flags.check(tmp_path / "m.h5")
    with pytest.raises(model_flags.ModelFlagsError, match="positive"):
        model_flags.check(width=0.0)
    # A usage error for the command line, a ValueError for the library caller.
    assert issubclass(model_flags.ModelFlagsError, app.UsageError)
    assert issubclass(model_flags.ModelFlagsError, ValueError)
    assert model_flags.parse_input_size(["192", "256"]) == (192, 256)
    assert model_flags.parse_input_size(["224"]) == (224, 224)
    for bad in (["31"], ["a"], ["1", "2", "3"]):
        with pytest.raises(model_flags.ModelFlagsError, match="--input_size"):
            model_flags.parse_input_size(bad)
