"""Quantization-aware training: the tf_keras twin, the QAT model, fine-tuning and int8 TFLite.

tf_keras and tfmot are imported inside the tests only (importing tfmot sets
`TF_USE_LEGACY_KERAS=1` for the process; the module fixture below restores the variable).
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from ghostnet_keras.training import qat_export
from ghostnet_keras.training.qat_model import (
    _quantize_config_class,
    build_qat_model,
    build_tf_keras_model,
)
from ghostnet_keras.training.quantization_friendly import quantization_friendly
from tests.conftest import require_module

REPO_DIR = Path(__file__).resolve().parents[1]
SE_GATES = {f"block{b}_se_gate" for b in ("3a", "4a", "6d", "6e", "7a", "8b", "8d")}


@pytest.fixture(scope="module", autouse=True)
def _restore_legacy_keras_flag():
    before = os.environ.get("TF_USE_LEGACY_KERAS")
    yield
    if before is None:
        os.environ.pop("TF_USE_LEGACY_KERAS", None)
    else:
        os.environ["TF_USE_LEGACY_KERAS"] = before


@pytest.fixture(scope="module")
def qat():
    require_module("tf_keras", "needs the `qat` extra (tf_keras)")
    require_module("tensorflow_model_optimization", "needs the `qat` extra (tfmot)")
    from ghostnet_keras.training import qat as qat_module

    return qat_module


def _randomize_batch_norm(model: keras.Model, seed: int = 0) -> None:
    """Non-trivial BN statistics, so that weight copies and BN folding are really tested."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([
                rng.uniform(0.5, 1.5, gamma.shape).astype("float32"),
                rng.normal(0.0, 0.1, beta.shape).astype("float32"),
                rng.normal(0.0, 0.1, mean.shape).astype("float32"),
                rng.uniform(0.5, 1.5, var.shape).astype("float32"),
            ])


@pytest.fixture(scope="module")
def float_model() -> keras.Model:
    import ghostnet_keras

    keras.utils.set_random_seed(0)
    model = ghostnet_keras.GhostNet(
        width=0.5, input_shape=(32, 32, 3), classes=10, classifier_activation=None,
        dropout_rate=0.1,
    )
    _randomize_batch_norm(model)
    return model


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).uniform(0, 255, (4, 32, 32, 3)).astype("float32")


def test_importing_qat_modules_does_not_import_tf_keras_or_tfmot() -> None:
    code = (
        "import os, sys\n"
        "import ghostnet_keras.training.qat, ghostnet_keras.training.qat_export\n"
        "bad = [m for m in ('tf_keras', 'tensorflow_model_optimization', 'tensorflow')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
        "assert 'TF_USE_LEGACY_KERAS' not in os.environ\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_DIR, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_tf_keras_twin_has_same_layers_weights_and_outputs(qat, float_model, images) -> None:
    import tf_keras

    twin = build_tf_keras_model(
        float_model, width=0.5, num_classes=10, image_size=32, dropout_rate=0.1)
    assert isinstance(twin, tf_keras.Model)
    def names(model):
        return sorted(layer.name for layer in model.layers
                      if type(layer).__name__ != "InputLayer")

    assert names(twin) == names(float_model)
    for layer in float_model.layers:
        if not layer.weights:
            continue
        expected = layer.get_weights()
        got = twin.get_layer(layer.name).get_weights()
        assert len(got) == len(expected), layer.name
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=layer.name)
    diff = np.abs(twin(images, training=False).numpy() - float_model(images).numpy()).max()
    assert diff <= 1e-4

    # The quantization-friendly rewrite computes the same function.
    rewritten, caps = quantization_friendly(twin)
    assert caps == {}
    names = {layer.name for layer in rewritten.layers}
    assert not any(name.endswith(("_gate_shift", "_gate_relu6")) for name in names)  # folded
    assert isinstance(rewritten.get_layer("preprocessing"), tf_keras.layers.DepthwiseConv2D)
    assert not any(isinstance(layer, tf_keras.layers.Rescaling) for layer in rewritten.layers)
    diff = np.abs(rewritten(images).numpy() - twin(images).numpy()).max()
    assert diff <= 1e-4
    _, caps = quantization_friendly(twin, cap_relu_by_quantizer=True)
    assert caps == dict.fromkeys(SE_GATES, (0.0, 1.0))


@pytest.fixture(scope="module")
def qat_model(qat, float_model):
    return build_qat_model(
        float_model, width=0.5, num_classes=10, image_size=32, dropout_rate=0.1)


@pytest.mark.slow
def test_quantize_apply_wraps_ghostnet_and_quantizes_the_se_gate(qat, qat_model, float_model,
                                                                 images) -> None:
    import tensorflow_model_optimization as tfmot

    quantize = tfmot.quantization.keras
    wrappers = {layer.name: layer for layer in qat_model.layers
                if isinstance(layer, quantize.QuantizeWrapperV2)}
    others = [type(layer).__name__ for layer in qat_model.layers
              if layer.name not in wrappers]
    assert sorted(others) == ["InputLayer", "QuantizeLayer"]
    config_class = _quantize_config_class()
    for gate in SE_GATES:
        block = gate.removesuffix("_se_gate")
        gate_config = wrappers[f"quant_{gate}"].quantize_config
        assert isinstance(gate_config, config_class) and gate_config.fixed_range == (0.0, 1.0)
        excite_config = wrappers[f"quant_{block}_se_excite"].quantize_config
        assert isinstance(excite_config, config_class) and excite_config.fixed_range is None
        # The gate relu6(x + 3) / 6 becomes the expand conv with x / 6 + 0.5 and a [0, 1] cap.
        kernel, bias = float_model.get_layer(f"{block}_se_expand_conv").get_weights()
        inner = wrappers[f"quant_{block}_se_expand_conv"].layer
        np.testing.assert_allclose(inner.get_weights()[0], kernel / 6, rtol=1e-6)
        np.testing.assert_allclose(inner.get_weights()[1], bias / 6 + 0.5, rtol=1e-6, atol=1e-7)
    assert qat_model(images, training=False).shape == (4, 10)


def _op_counts(tflite_bytes: bytes) -> collections.Counter:
    from ghostnet_keras.tflite import inventory

    return collections.Counter(op.name for op in inventory.read_model(tflite_bytes).ops)


@pytest.mark.slow
def test_qat_finetune_saves_and_converts_to_int8_tflite(qat, quickstart_dir, tmp_path) -> None:
    import tensorflow as tf

    from ghostnet_keras.tflite import inventory
    from ghostnet_keras.tflite.conversion import signature_with_batch
    from ghostnet_keras.tflite.verify import float_compute_ops
    from ghostnet_keras.tflite.xnnpack import partitioning
    from ghostnet_keras.training import input_pipeline as data
    from ghostnet_keras.training.configs import get_config
    from ghostnet_keras.training.loop import DataSource, Trainer

    source = DataSource(data_dir=quickstart_dir)
    # A float model trained briefly (confident predictions make the comparison meaningful).
    float_config = get_config("quickstart", "epochs=1,steps_per_epoch=25,warmup_epochs=0.2,"
                                            "log_every_steps=100")
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    Trainer(float_config, strategy, tmp_path / "float", source).train()
    init_from = tmp_path / "float" / "model.keras"

    config = get_config("quickstart", "steps_per_epoch=4,global_batch_size=32")
    model_dir = tmp_path / "qat"
    history = qat.train_qat(config, strategy, model_dir, source, str(init_from), epochs=1)
    assert [row["epoch"] for row in history] == [0]
    assert {"loss", "accuracy", "val_accuracy", "learning_rate"} <= set(history[0])
    assert json.loads((model_dir / "qat_history.json").read_text()) == history
    assert len((model_dir / "qat_history.csv").read_text().splitlines()) == 2
    assert not (model_dir / "qat_backup").exists()
    saved_model = model_dir / "qat_saved_model"
    assert signature_with_batch(saved_model, 1) == qat_export.TFLITE_SIGNATURE  # default: any batch

    tflite_bytes = qat_export.convert_qat(saved_model)  # raises FloatOpError on a float op
    assert float_compute_ops(tflite_bytes) == []
    counts = _op_counts(tflite_bytes)
    # BN folded into every conv (no standalone MUL/ADD), gate clip fused, preprocessing a DW.
    assert counts["CONV_2D"] == 54 and counts["DEPTHWISE_CONV_2D"] == 42
    assert counts["MUL"] == len(SE_GATES) and counts["ADD"] == 16
    assert not {"RELU", "MINIMUM", "MAXIMUM", "RELU_0_TO_1", "LOGISTIC"} & set(counts)
    # XNNPACK takes the whole network in one partition; only the head's int8 SOFTMAX (XNNPACK
    # has no int8 softmax) runs outside, followed by a one-op partition for the output's
    # DEQUANTIZE. No squeeze-excite op leaves the delegate.
    placement = partitioning(tflite_bytes)
    assert placement.undelegated_counts() == {"SOFTMAX": 1}, placement
    assert placement.partitions == 2
    (index, _), = placement.undelegated
    assert index == len(inventory.read_model(tflite_bytes).ops) - 2  # SOFTMAX, DEQUANTIZE

    from ai_edge_litert.interpreter import Interpreter

    batch = next(iter(data.build_dataset(
        "quickstart", "test", image_size=32, batch_size=32, training=False,
        data_dir=quickstart_dir)))[0].numpy()
    interpreter = Interpreter(model_content=tflite_bytes)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert tuple(inp["shape"]) == (1, 32, 32, 3) and inp["dtype"] == np.float32
    lite = []
    for image in batch:
        interpreter.set_tensor(inp["index"], image[None])
        interpreter.invoke()
        lite.append(interpreter.get_tensor(out["index"])[0])
    lite = np.array(lite)
    serve = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
    keras_qat = next(iter(serve(images=tf.constant(batch)).values())).numpy()
    agreement = np.mean(lite.argmax(-1) == keras_qat.argmax(-1))
    assert agreement >= 0.8, agreement


@pytest.mark.slow
def test_qat_resumes_from_its_backup_after_sigkill(qat, quickstart_dir, tmp_path) -> None:
    import signal
    import time

    import ghostnet_keras

    init_from = tmp_path / "float.keras"
    ghostnet_keras.GhostNet(width=0.25, input_shape=(32, 32, 3), classes=10).save(init_from)
    model_dir = tmp_path / "qat"
    override = "width=0.25,qat_epochs=2,steps_per_epoch=4,global_batch_size=16,dropout_rate=0"
    command = [sys.executable, "-m", "ghostnet_keras.training.train", f"--model_dir={model_dir}",
               f"--data_dir={quickstart_dir}", "--qat", f"--init_from={init_from}",
               f"--params_override={override}"]
    process = subprocess.Popen(command, cwd=REPO_DIR, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    history_path = model_dir / qat.HISTORY_JSON
    backup = model_dir / qat.BACKUP_DIR
    # Kill once an epoch is finished and backed up (the history row is written first); the run
    # is finite: either that happens or the process ends (a failure).
    while not (history_path.exists() and any(backup.rglob("checkpoint"))):
        assert process.poll() is None, process.stderr.read()[-3000:]
        time.sleep(0.2)
    assert process.poll() is None, "the QAT run ended before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    before_kill = json.loads(history_path.read_text())
    assert backup.is_dir() and not (model_dir / qat.SAVED_MODEL_DIR).exists()

    result = subprocess.run(command, cwd=REPO_DIR, capture_output=True, text=True, check=False,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads(history_path.read_text())
    assert [row["epoch"] for row in history] == [0, 1]
    # Epoch 0 was not trained again: its row (with its wall time) is the interrupted run's.
    assert history[0] == before_kill[0]
    assert len((model_dir / qat.HISTORY_CSV).read_text().splitlines()) == 3
    assert (model_dir / qat.SAVED_MODEL_DIR).is_dir() and not backup.exists()


@pytest.mark.slow
@pytest.mark.parametrize("version", ["v2", "v3"])
def test_ghostnet_v2_v3_quantize_to_integer_only_int8(qat, version) -> None:
    """The DFC gate (sigmoid, nearest resize, multiply) quantizes; a V3 is fine-tuned deployed."""
    import tensorflow_model_optimization as tfmot
    from ai_edge_litert.interpreter import Interpreter

    import ghostnet_keras
    from ghostnet_keras.layers.nearest_resize import tf_keras_nearest_resize
    from ghostnet_keras.tflite.verify import float_compute_ops
    from ghostnet_keras.tflite.xnnpack import partitioning

    size, width = 40, 0.25  # the smallest V2/V3 input is 33 x 33
    keras.utils.set_random_seed(0)
    constructor = {"v2": ghostnet_keras.GhostNetV2, "v3": ghostnet_keras.GhostNetV3}[version]
    float_model = constructor(width=width, input_shape=(size, size, 3), classes=10,
                              classifier_activation=None)
    _randomize_batch_norm(float_model)
    batch = np.random.default_rng(2).uniform(0, 255, (8, size, size, 3)).astype("float32")

    twin = build_tf_keras_model(float_model, width=width, num_classes=10, image_size=size,
                                version=version)
    names = {layer.name for layer in twin.layers}
    if version == "v3":  # the deploy form: fused convs, no parallel branches
        assert "block3a_ghost1_primary_conv" in names
        assert not any(name.endswith(("_primary_add", "_cheap_add", "_dw_add")) for name in names)
    expected = float_model(batch).numpy()
    # 1e-3: V3's fused convs round differently on the large activations of random BN stats
    # (the fusion itself is checked to 1e-5 against timm in test_ghostnet_v2v3.py).
    np.testing.assert_allclose(twin(batch, training=False).numpy(), expected,
                               atol=1e-3 * np.abs(expected).max())

    qat_model = build_qat_model(float_model, width=width, num_classes=10, image_size=size,
                                dropout_rate=0.0, version=version)
    wrappers = [layer for layer in qat_model.layers
                if isinstance(layer, tfmot.quantization.keras.QuantizeWrapperV2)]
    resizes = [w for w in wrappers if isinstance(w.layer, tf_keras_nearest_resize())]
    assert len(resizes) == 14 and all(w.quantize_config.quantize_output is False
                                      for w in resizes)
    for _ in range(3):  # training-mode passes set the fake-quant ranges
        qat_model(batch, training=True)
    tflite_bytes = qat_export.convert_qat(qat_model, io="int8")  # raises on a float op
    assert float_compute_ops(tflite_bytes, float_io=False) == []
    counts = _op_counts(tflite_bytes)
    assert counts["LOGISTIC"] == counts["DEPTH_TO_SPACE"] == 14  # the gates' 2x upsampling
    # Each gate's 2x2 average pool is a frozen depthwise conv (XNNPACK has no int8 average
    # pool), so XNNPACK takes the whole int8 network in one partition.
    assert "AVERAGE_POOL_2D" not in counts and counts["MUL"] == 14 + 7  # DFC gates, SE excites
    placement = partitioning(tflite_bytes)
    assert placement.partitions == 1 and placement.undelegated_counts() == {}, placement

    interpreter = Interpreter(model_content=tflite_bytes)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    (in_scale, in_zero), (out_scale, out_zero) = inp["quantization"], out["quantization"]
    lite = []
    for image in batch:
        quantized = np.clip(np.round(image / in_scale + in_zero), -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], quantized[None])
        interpreter.invoke()
        lite.append((interpreter.get_tensor(out["index"])[0].astype(np.float32) - out_zero)
                    * out_scale)
    fake_quantized = qat_model(batch, training=False).numpy()
    # int8 arithmetic vs the fake-quantized float graph: a few output steps apart (both are
    # on the output's grid, so the difference is a whole number of steps).
    assert np.round(np.abs(np.array(lite) - fake_quantized) / out_scale).max() <= 4
