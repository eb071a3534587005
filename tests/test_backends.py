"""Every Keras backend: fine-tuning, `.keras` files across backends, ONNX export, TF-only parts.

Portable: the main suite runs it on TensorFlow, `make test` again on JAX (`.venv-jax`, no
TensorFlow installed) and `make test-torch` on PyTorch. The cross-backend tests run the other
backends' interpreters (`.venv`, `.venv-jax`, `.venv-torch` beside the code, or
`GHOSTNET_PYTHON_<BACKEND>`); under `CI=true` the TensorFlow and JAX ones must exist.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from ghostnet_keras import GhostNet, with_fused_batch_norm
from ghostnet_keras.backends import BACKENDS, BackendError
from ghostnet_keras.export import onnx as onnx_export

from . import backend_worker
from .conftest import REPO_DIR

pytestmark = pytest.mark.portable

BACKEND = keras.backend.backend()
PARITY_ATOL = 1e-4
CI = os.environ.get("CI") == "true"
# The backends every CI run must have an interpreter for (torch: `make test-torch`).
REQUIRED_IN_CI = ("tensorflow", "jax")
VENVS = {"tensorflow": ".venv", "jax": ".venv-jax", "torch": ".venv-torch"}


def backend_python(backend: str) -> str | None:
    """The interpreter of `backend`'s venv, or None where it is not made."""
    if backend == BACKEND:
        return sys.executable
    configured = os.environ.get(f"GHOSTNET_PYTHON_{backend.upper()}")
    path = Path(configured) if configured else REPO_DIR / VENVS[backend] / "bin" / "python"
    if path.exists():
        return str(path)
    if CI and backend in REQUIRED_IN_CI:
        pytest.fail(f"CI needs the {backend} backend interpreter at {path} (make test makes it)")
    return None


def run_worker(backend: str, job: str, folder: Path, **env: str) -> None:
    python = backend_python(backend)
    if python is None:
        pytest.skip(f"no {backend} backend venv ({VENVS[backend]}; tools/make_backend_venv.sh)")
    environment = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
    result = subprocess.run(
        [python, "-m", "tests.backend_worker", job, str(folder)], cwd=REPO_DIR,
        env=environment, capture_output=True, text=True, timeout=1200, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def small_model() -> keras.Model:
    model = backend_worker.small_model()
    backend_worker.fixed_weights(model)
    return model


def test_fine_tune_with_fit_lowers_the_loss() -> None:
    # The training copy with fused batch norms (TF's kernel on TensorFlow, the built-in code
    # elsewhere); its weights go back into the portable model. One compiled train step: on
    # JAX, compiling GhostNet's step is most of this test's time.
    keras.utils.set_random_seed(0)
    model = backend_worker.small_model()
    copy = with_fused_batch_norm(model)
    copy.compile(optimizer=keras.optimizers.Adam(1e-3),
                 loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images, labels = backend_worker.learnable_batches(8)
    losses = copy.fit(images, labels, batch_size=16, epochs=3, verbose=0).history["loss"]
    assert losses[-1] < 0.7 * losses[0], losses
    model.set_weights(copy.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(images[:4])),
                               keras.ops.convert_to_numpy(copy(images[:4])), rtol=0, atol=1e-5)


def test_model_library_builds_runs_and_profiles_here() -> None:
    from ghostnet_keras import feature_extractor, profile
    from ghostnet_keras.models import cifar
    from ghostnet_keras.models.ghostify import ghostify  # the package attribute can be the module

    stats = profile(GhostNet(width=0.5))
    assert (stats.params_without_bn_stats, round(stats.macs / 1e4)) == (2_587_292, 4233)
    backbone = GhostNet(width=0.5, include_top=False, input_shape=(None, None, 3))
    maps = feature_extractor(backbone)(np.zeros((1, 64, 96, 3), "float32"))
    assert {k: tuple(v.shape) for k, v in maps.items()} == {
        "stride_4": (1, 16, 24, 12), "stride_8": (1, 8, 12, 20), "stride_16": (1, 4, 6, 56),
        "stride_32": (1, 2, 3, 480)}
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, name="first")(inputs)
    x = keras.layers.Conv2D(16, 3, name="second")(x)
    plain = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    ghost = ghostify(plain, ratio=2)
    assert ghost(np.ones((2, 16, 16, 3), "float32")).shape == (2, 16)
    assert {layer.name for layer in ghost.layers} >= {"first", "second_primary_conv"}
    resnet = cifar.ghost_resnet56()
    assert resnet(np.ones((1, 32, 32, 3), "float32")).shape == (1, 10)


@pytest.mark.slow
@pytest.mark.parametrize("saved_on", BACKENDS)
def test_keras_file_saved_on_any_backend_loads_here(saved_on: str, tmp_path: Path) -> None:
    run_worker(saved_on, "save", tmp_path)
    loaded = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    outputs = keras.ops.convert_to_numpy(loaded(backend_worker.probe_images()))
    np.testing.assert_allclose(outputs, np.load(tmp_path / "outputs.npy"), rtol=0, atol=1e-5)
    assert np.ptp(outputs) > 0.1  # real logits, not a constant


@pytest.mark.slow
def test_jax_data_parallel_fine_tune_on_two_devices(tmp_path: Path) -> None:
    if BACKEND != "jax":
        pytest.skip("runs in the JAX backend suite (keras.distribution.DataParallel on JAX)")
    run_worker("jax", "data_parallel", tmp_path,
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    result = json.loads((tmp_path / "result.json").read_text())
    assert len(result["devices"]) == 2
    assert result["kernel_sharding_devices"] == 2  # the weights are replicated on both
    assert result["losses"][-1] < 0.7 * result["losses"][0], result


# --------------------------------------------------------------------------------------------
# ONNX


def _onnx_ready() -> None:
    try:
        onnx_export._check_requirements(BACKEND)
    except onnx_export.OnnxExportError as error:
        if CI and BACKEND in REQUIRED_IN_CI:
            raise
        pytest.skip(str(error))


def _run_onnx(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


@pytest.mark.slow
def test_onnx_export_of_the_reference_weights_matches_the_oracle(
    reference_dir: Path, tmp_path: Path
) -> None:
    _onnx_ready()
    oracle = np.load(reference_dir / "ghostnet_050_expected.npz")
    model = GhostNet(width=0.5, weights=reference_dir / "ghostnet_050.safetensors",
                     classifier_activation=None)
    output = tmp_path / "ghostnet_050.onnx"
    sidecar = onnx_export.export_onnx(model, output, dynamic_batch=False)
    assert sidecar["dynamic_batch"] is False
    assert (tmp_path / "ghostnet_050.labels.txt").read_text().splitlines()[0] == "tench"
    logits = np.concatenate([_run_onnx(output, image[None]) for image in oracle["images"]])
    np.testing.assert_allclose(logits, oracle["logits"], rtol=0, atol=PARITY_ATOL)


def test_onnx_export_refuses_a_file_that_does_not_match(
    small_model: keras.Model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if BACKEND != "tensorflow":
        pytest.skip("backend-independent check, run on TensorFlow (one export less here)")
    _onnx_ready()
    keras_outputs = onnx_export._keras_outputs
    # The Keras side of the comparison is shifted, as a wrong export would be.
    monkeypatch.setattr(onnx_export, "_keras_outputs",
                        lambda model, images: [o + 1e-3 for o in keras_outputs(model, images)])
    with pytest.raises(onnx_export.OnnxMismatchError, match=r"differ from Keras' by .* > 0.0001"):
        onnx_export.export_onnx(small_model, tmp_path / "bad.onnx", dynamic_batch=False)
    assert list(tmp_path.iterdir()) == []


def test_onnx_bad_arguments_are_named(small_model: keras.Model, tmp_path: Path) -> None:
    with pytest.raises(onnx_export.OnnxExportError, match=r"must end with \.onnx"):
        onnx_export.export_onnx(small_model, tmp_path / "model.tflite")
    anysize = GhostNet(width=0.25, input_shape=(None, None, 3), classes=3)
    _onnx_ready()
    with pytest.raises(onnx_export.OnnxExportError, match="input_size"):
        onnx_export.export_onnx(anysize, tmp_path / "anysize.onnx")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_onnx_command_line_exports_a_keras_file_with_a_dynamic_batch(
    small_model: keras.Model, tmp_path: Path
) -> None:
    # A model loaded from a file and never called: on JAX, Keras' own export raises "The model
    # provided has never called." for it.
    _onnx_ready()
    small_model.save(tmp_path / "small.keras")
    output = tmp_path / "out" / "small.onnx"
    command = [sys.executable, "-m", "ghostnet_keras.cli.export_onnx",
               f"--model={tmp_path / 'small.keras'}", f"--output={output}"]
    environment = {**os.environ, "KERAS_BACKEND": BACKEND}
    result = subprocess.run(command, cwd=REPO_DIR, env=environment, capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"backend={BACKEND} opset=" in result.stdout
    assert sorted(p.name for p in output.parent.iterdir()) == [
        "small.json", "small.labels.txt", "small.onnx"]
    sidecar = json.loads(output.with_suffix(".json").read_text())
    assert sidecar["model"] == "small_ghostnet" and sidecar["file"] == "small.onnx"
    assert sidecar["exported_with"]["keras_backend"] == BACKEND
    assert isinstance(sidecar["opset"], int) and sidecar["opset"] >= 13
    assert sidecar["dynamic_batch"] is True
    assert sidecar["inputs"][0]["shape"][1:] == [32, 32, 3]
    assert max(sidecar["check"]["max_abs_diff_by_batch"].values()) <= PARITY_ATOL
    assert (output.parent / "small.labels.txt").read_text().splitlines()[9] == "class_9"
    # The file stands alone (no external data) and takes a batch size it was not checked at.
    images = backend_worker.probe_images(3)
    np.testing.assert_allclose(
        _run_onnx(output, images),
        keras.ops.convert_to_numpy(small_model(images)), rtol=0, atol=PARITY_ATOL)
    failed = subprocess.run([*command[:3], "--width=0.5", f"--model={tmp_path / 'small.keras'}",
                             f"--output={tmp_path / 'x.onnx'}"], cwd=REPO_DIR, env=environment,
                            capture_output=True, text=True, timeout=600, check=False)
    assert failed.returncode == 2
    assert "--width would be ignored next to --model" in failed.stderr
    assert not (tmp_path / "x.onnx").exists()


# --------------------------------------------------------------------------------------------
# TensorFlow-only parts


@pytest.mark.skipif(BACKEND == "tensorflow", reason="checks the message on the other backends")
def test_tensorflow_only_parts_name_the_backend_they_need(small_model: keras.Model) -> None:
    message = rf"needs the TensorFlow Keras backend; the active backend is '{BACKEND}'"
    for module in ("ghostnet_keras.export.serving", "ghostnet_keras.training"):
        sys.modules.pop(module, None)
        with pytest.raises(BackendError, match=message):
            importlib.import_module(module)
    from ghostnet_keras.tflite import conversion

    with pytest.raises(BackendError, match=message):
        conversion.convert(small_model, "fp32")
