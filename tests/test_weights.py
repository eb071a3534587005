"""Reference weights: exact parity with PyTorch, strict loading, converters, ImageNet cache."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from ghostnet_keras import GhostNet
from ghostnet_keras.cli.convert_checkpoint import convert_checkpoint
from ghostnet_keras.weights import imagenet_cache
from ghostnet_keras.weights.loading import load_ghostnet_weights
from ghostnet_keras.weights.reference_names import reference_module_path
from ghostnet_keras.weights.strict import WeightsError

from .conftest import COMPACT_CLASSES, COMPACT_WEIGHTS, COMPACT_WIDTH, TEST_DATA_DIR, WIDTH_TAGS

PARITY_ATOL = 1e-4


def _pre_logits_model(model: keras.Model) -> keras.Model:
    return keras.Model(model.inputs, model.get_layer("flatten").output)


@pytest.mark.portable
@pytest.mark.slow
@pytest.mark.parametrize("width", [0.5, 1.0, 1.3])
def test_parity_with_reference_safetensors(width: float, reference_dir: Path) -> None:
    tag = WIDTH_TAGS[width]
    oracle = np.load(reference_dir / f"ghostnet_{tag}_expected.npz")
    model = GhostNet(
        width=width, weights=reference_dir / f"ghostnet_{tag}.safetensors",
        classifier_activation=None,
    )
    logits = model.predict(oracle["images"], verbose=0)
    pre_logits = _pre_logits_model(model).predict(oracle["images"], verbose=0)
    np.testing.assert_allclose(logits, oracle["logits"], rtol=0, atol=PARITY_ATOL)
    np.testing.assert_allclose(pre_logits, oracle["pre_logits"], rtol=0, atol=PARITY_ATOL)
    # Argmax agreement is what a user sees; it must be identical.
    assert (logits.argmax(1) == oracle["logits"].argmax(1)).all()


@pytest.mark.portable
@pytest.mark.slow
def test_parity_per_stage_and_from_pth(reference_dir: Path) -> None:
    oracle = np.load(reference_dir / "ghostnet_050_expected.npz")
    model = GhostNet(width=0.5, weights=reference_dir / "ghostnet_050.pth",
                     classifier_activation=None)
    stage_outputs = [f"block{i}{'a' if i not in (6, 8) else 'e' if i == 6 else 'd'}_add"
                     for i in range(9)] + ["top_relu"]
    probe = keras.Model(model.inputs, [model.get_layer(n).output for n in stage_outputs]
                        + [model.output])
    *stages, logits = probe.predict(oracle["images"], verbose=0)
    for index, features in enumerate(stages):
        np.testing.assert_allclose(features, oracle[f"blocks.{index}"], rtol=0, atol=PARITY_ATOL,
                                   err_msg=f"blocks.{index}")
    np.testing.assert_allclose(logits, oracle["logits"], rtol=0, atol=PARITY_ATOL)


@pytest.mark.portable
@pytest.mark.slow
def test_parity_on_odd_non_square_input(reference_dir: Path) -> None:
    # tools/make_test_oracles.py ran timm's ghostnet_100 (after checking it reproduces
    # the shared oracle) on 2 x 193 x 257 images: every stride-2 layer sees odd sizes there.
    oracle = np.load(TEST_DATA_DIR / "ghostnet_100_nonsquare_expected.npz")
    model = GhostNet(width=1.0, weights=reference_dir / "ghostnet_100.safetensors",
                     input_shape=(None, None, 3), classifier_activation=None)
    images = oracle["images"].astype("float32")
    np.testing.assert_allclose(model.predict(images, verbose=0), oracle["logits"], rtol=0,
                               atol=PARITY_ATOL)
    np.testing.assert_allclose(_pre_logits_model(model).predict(images, verbose=0),
                               oracle["pre_logits"], rtol=0, atol=PARITY_ATOL)


@pytest.mark.portable
def test_backbone_loads_reference_without_head(reference_dir: Path) -> None:
    oracle = np.load(reference_dir / "ghostnet_050_expected.npz")
    backbone = GhostNet(width=0.5, include_top=False,
                        weights=reference_dir / "ghostnet_050.safetensors")
    np.testing.assert_allclose(backbone.predict(oracle["images"], verbose=0),
                               oracle["blocks.9"], rtol=0, atol=PARITY_ATOL)


def test_reference_module_paths() -> None:
    assert reference_module_path("stem_conv") == "conv_stem"
    assert reference_module_path("block6d_se_reduce_conv") == "blocks.6.3.se.conv_reduce"
    assert reference_module_path("block1a_shortcut_dw_bn") == "blocks.1.0.shortcut.1"
    assert reference_module_path("top_bn") == "blocks.9.0.bn1"
    assert reference_module_path("predictions") == "classifier"
    assert reference_module_path("block1a_add") is None


def _mutated_checkpoint(tmp_path: Path, mutate) -> Path:
    state = load_file(COMPACT_WEIGHTS)
    mutate(state)
    path = tmp_path / "mutated.safetensors"
    save_file(state, path)
    return path


def _drop(key: str):
    return lambda state: state.pop(key)


def _add(key: str):
    return lambda state: state.__setitem__(key, np.zeros(3, np.float32))


def _reshape(key: str):
    return lambda state: state.__setitem__(key, np.zeros((5, 5), np.float32))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_drop("blocks.3.0.se.conv_reduce.weight"), "missing tensor 'blocks.3.0.se.conv_reduce"),
        (_drop("bn1.running_var"), "missing tensor 'bn1.running_var'"),
        (_add("blocks.3.0.extra.weight"), "unexpected tensor 'blocks.3.0.extra.weight'"),
        (_reshape("blocks.7.0.conv_dw.weight"), "'blocks.7.0.conv_dw.weight' has shape \\(5, 5\\)"),
    ],
)
def test_bad_checkpoint_names_the_tensor_and_loads_nothing(
    tmp_path: Path, mutate, message: str
) -> None:
    path = _mutated_checkpoint(tmp_path, mutate)
    model = GhostNet(width=COMPACT_WIDTH, classes=COMPACT_CLASSES)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(WeightsError, match=message):
        load_ghostnet_weights(model, path)
    for old, new in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_non_ghostnet_model_is_rejected() -> None:
    other = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, name="c")])
    with pytest.raises(WeightsError, match="no counterpart"):
        load_ghostnet_weights(other, COMPACT_WEIGHTS)


def test_unsupported_and_corrupt_files(tmp_path: Path) -> None:
    odd = tmp_path / "weights.npz"
    odd.write_bytes(b"x")
    with pytest.raises(ValueError, match="Unsupported weights file"):
        GhostNet(width=0.5, weights=odd)
    corrupt = tmp_path / "weights.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"weights\.pth"):
        GhostNet(width=0.5, weights=corrupt)


@pytest.mark.portable
@pytest.mark.slow
def test_keras_weight_files_with_and_without_top(reference_dir: Path, tmp_path: Path) -> None:
    oracle = np.load(reference_dir / "ghostnet_050_expected.npz")
    source = GhostNet(width=0.5, weights=reference_dir / "ghostnet_050.safetensors",
                      classifier_activation=None)
    source.save_weights(tmp_path / "g.weights.h5")
    source.save(tmp_path / "g.keras")
    for path in (tmp_path / "g.weights.h5", tmp_path / "g.keras"):
        full = GhostNet(width=0.5, weights=path, classifier_activation=None)
        np.testing.assert_allclose(full.predict(oracle["images"], verbose=0), oracle["logits"],
                                   rtol=0, atol=PARITY_ATOL)
        backbone = GhostNet(width=0.5, weights=path, include_top=False)
        np.testing.assert_allclose(backbone.predict(oracle["images"], verbose=0),
                                   oracle["blocks.9"], rtol=0, atol=PARITY_ATOL)
    with pytest.raises(ValueError, match=r"g\.weights\.h5"):
        GhostNet(width=1.0, weights=tmp_path / "g.weights.h5")


@pytest.mark.slow
def test_converter_cli(reference_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "out" / "ghostnet_050.weights.h5"
    result = subprocess.run(
        [sys.executable, "-m", "ghostnet_keras.cli.convert_checkpoint",
         f"--checkpoint={reference_dir / 'ghostnet_050.pth'}", "--width=0.5",
         f"--output={output}"],
        capture_output=True, text=True, check=False, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    oracle = np.load(reference_dir / "ghostnet_050_expected.npz")
    model = GhostNet(width=0.5, weights=output, classifier_activation=None)
    np.testing.assert_allclose(model.predict(oracle["images"], verbose=0), oracle["logits"],
                               rtol=0, atol=PARITY_ATOL)


def test_converter_fails_cleanly_and_writes_nothing(tmp_path: Path) -> None:
    output = tmp_path / "ghostnet.weights.h5"
    with pytest.raises(WeightsError, match="has shape"):
        convert_checkpoint(COMPACT_WEIGHTS, output, width=1.0)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="must end with"):
        convert_checkpoint(COMPACT_WEIGHTS, tmp_path / "x.h5")


def test_imagenet_download_failure_is_clear(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(imagenet_cache, "IMAGENET_WEIGHTS_URL",
                        "http://127.0.0.1:9/ghostnet_100/model.safetensors")
    with pytest.raises(RuntimeError, match="Could not download the GhostNet ImageNet weights"):
        GhostNet(weights="imagenet")
    assert not (tmp_path / "models" / "ghostnet_100_imagenet.weights.h5").exists()


@pytest.mark.slow
def test_imagenet_weights_convert_once_from_the_keras_cache(
    reference_dir: Path, tmp_path, monkeypatch
) -> None:
    # The hub file as keras.utils.get_file caches it; the random reference weights stand in for
    # the trained ones (same layout), so the result must match the oracle exactly.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    (tmp_path / "models").mkdir()
    shutil.copyfile(reference_dir / "ghostnet_100.safetensors",
                    tmp_path / "models" / "ghostnet_100_in1k.safetensors")
    oracle = np.load(reference_dir / "ghostnet_100_expected.npz")
    model = GhostNet(weights="imagenet", classifier_activation=None)
    converted = tmp_path / "models" / "ghostnet_100_imagenet.weights.h5"
    assert converted.exists()
    np.testing.assert_allclose(model.predict(oracle["images"], verbose=0), oracle["logits"],
                               rtol=0, atol=PARITY_ATOL)
    (tmp_path / "models" / "ghostnet_100_in1k.safetensors").unlink()  # now only the cache
    backbone = GhostNet(weights="imagenet", include_top=False)
    np.testing.assert_allclose(backbone.predict(oracle["images"], verbose=0),
                               oracle["blocks.9"], rtol=0, atol=PARITY_ATOL)
