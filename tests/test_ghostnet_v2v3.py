"""GhostNetV2/V3: exact parity with timm, parameter counts, weights, reparameterize.

Model-level parity runs on every backend (`portable`) against the compact oracle in tests/data
(timm at width 0.1, made by tools/make_v2v3_reference.py); the full-size oracles in
../shared/reference/v2v3 are checked on the main (TensorFlow) suite.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from ghostnet_keras import (
    GhostNet,
    GhostNetV2,
    GhostNetV3,
    GhostNetV3_050,
    NearestResize,
    feature_extractor,
    reparameterize,
)
from ghostnet_keras.models.ghostnet import STAGES
from ghostnet_keras.weights import imagenet_cache
from ghostnet_keras.weights.reference_names import reference_layout
from ghostnet_keras.weights.strict import WeightsError

from .conftest import REFERENCE_DIR, TEST_DATA_DIR, unavailable

# The family's widths; timm's parameter counts for each (training and deploy form) are read
# from ../shared/reference/v2v3/v2v3_info.json ("counts").
FAMILY_WIDTHS = {"v2": (1.0, 1.3, 1.6), "v3": (0.5, 1.0, 1.3, 1.6)}
# timm's `blocks[i]` outputs: the last block of each stage, then the 1x1 `top` conv.
BLOCK_OUTPUTS = [f"block{i}{chr(ord('a') + len(stage) - 1)}_add"
                 for i, stage in enumerate(STAGES)] + ["top_relu"]
SIZES = ("224", "nonsquare")
CONSTRUCTORS = {"v2": GhostNetV2, "v3": GhostNetV3}


def _moving_stats(model: keras.Model) -> int:
    return sum(2 * int(np.prod(layer.moving_mean.shape)) for layer in model.layers
               if isinstance(layer, keras.layers.BatchNormalization))


def _timm_count(model: keras.Model) -> int:
    return model.count_params() - _moving_stats(model)


def _probe(model: keras.Model) -> keras.Model:
    outputs = [model.get_layer(name).output for name in BLOCK_OUTPUTS]
    return keras.Model(model.inputs, [*outputs, model.get_layer("flatten").output, model.output])


def _predict(model: keras.Model, images: np.ndarray) -> Any:
    outputs = model(keras.ops.convert_to_tensor(images.astype(np.float32)), training=False)
    return keras.tree.map_structure(keras.ops.convert_to_numpy, outputs)


def _assert_matches(model: keras.Model, oracle, size: str, atol_scale: float = 2e-5) -> None:
    """Every block output, pre_logits and logits within float32 rounding of the oracle.

    The tolerance is `atol_scale` times the largest magnitude of each tensor (at least 1):
    1e-4 and below for the order-1 oracles.
    """
    # Eager calls: tracing a graph per input size costs more than running these small inputs.
    *blocks, pre_logits, logits = _predict(_probe(model), oracle[f"{size}/images"])
    named = {f"blocks.{i}": out for i, out in enumerate(blocks)}
    named.update(pre_logits=pre_logits, logits=logits)
    for key, actual in named.items():
        expected = oracle[f"{size}/{key}"]
        atol = atol_scale * max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(actual, expected, rtol=0, atol=atol, err_msg=f"{size}/{key}")
    assert (logits.argmax(-1) == oracle[f"{size}/logits"].argmax(-1)).all()


def _assert_layout_is_the_checkpoint(model: keras.Model, state_dict: dict) -> None:
    """The model's layers map one-to-one onto the checkpoint's tensors."""
    keys = {key for _, entries in reference_layout(model).values() for key, _, _ in entries}
    assert keys == {k for k in state_dict if not k.endswith("num_batches_tracked")}


# ----------------------------------------------------------------------------------------------
# Compact oracle (tests/data, every backend)
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compact_v2() -> keras.Model:
    return GhostNetV2(width=0.1, classes=10, classifier_activation=None,
                      input_shape=(None, None, 3),
                      weights=TEST_DATA_DIR / "ghostnetv2_010.safetensors")


@pytest.fixture(scope="module")
def compact_v3() -> keras.Model:
    # The official repository's layout (`bn` names, FLOPs counter entries, wrapped), as .pth.
    return GhostNetV3(width=0.1, classes=10, classifier_activation=None,
                      input_shape=(None, None, 3), weights=TEST_DATA_DIR / "ghostnetv3_010.pth")


@pytest.mark.portable
@pytest.mark.parametrize("size", SIZES)
def test_v2_matches_timm_compact(compact_v2: keras.Model, size: str) -> None:
    _assert_matches(compact_v2, np.load(TEST_DATA_DIR / "ghostnetv2_010_expected.npz"), size)


@pytest.mark.portable
@pytest.mark.parametrize("size", SIZES)
def test_v3_matches_timm_compact(compact_v3: keras.Model, size: str) -> None:
    _assert_matches(compact_v3, np.load(TEST_DATA_DIR / "ghostnetv3_010_expected.npz"), size)


@pytest.mark.slow
@pytest.mark.portable
def test_v3_deploy_forms_match_timm_compact(compact_v3: keras.Model) -> None:
    oracle = np.load(TEST_DATA_DIR / "ghostnetv3_010_expected.npz")
    deploy = reparameterize(compact_v3)
    fused_on_load = GhostNetV3(width=0.1, classes=10, classifier_activation=None,
                               input_shape=(None, None, 3), reparameterized=True,
                               weights=TEST_DATA_DIR / "ghostnetv3_010.pth")
    built = GhostNetV3(width=0.1, classes=10, reparameterized=True)
    assert _timm_count(deploy) == _timm_count(fused_on_load) == _timm_count(built)
    assert [layer.name for layer in deploy.layers][1:] == [layer.name for layer in built.layers][1:]
    assert deploy.layers[0].name == compact_v3.layers[0].name
    for size in SIZES:
        images = oracle[f"{size}/images"]
        for model in (deploy, fused_on_load):
            np.testing.assert_allclose(_predict(model, images),
                                       oracle[f"deploy/{size}/logits"], rtol=0, atol=2e-5)


@pytest.mark.portable
def test_layer_names_map_one_to_one_to_timm_keys(compact_v2: keras.Model) -> None:
    _assert_layout_is_the_checkpoint(
        compact_v2, load_file(TEST_DATA_DIR / "ghostnetv2_010.safetensors")
    )


# ----------------------------------------------------------------------------------------------
# Full-size oracles (../shared/reference/v2v3)
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def v2v3_dir() -> Path:
    directory = REFERENCE_DIR / "v2v3"
    if not (directory / "ghostnetv2_100.safetensors").exists():
        unavailable(f"GhostNetV2/V3 oracle not found at {directory}")
    return directory


@pytest.fixture(scope="module")
def timm_counts(v2v3_dir: Path) -> dict[str, dict[str, int]]:
    """timm 1.0.31's parameter counts (`sum(p.numel() for p in model.parameters())`, BN moving
    statistics excluded) by model name: `params_train_form`, V3 also `params_deploy_form`."""
    path = v2v3_dir / "v2v3_info.json"
    if not path.exists():
        unavailable(f"{path} not found")
    return json.loads(path.read_text())["counts"]


def _model_name(version: str, width: float) -> str:
    return f"ghostnet{version}_{round(width * 100):03d}"


@pytest.mark.slow
def test_v2_matches_timm_full_size(v2v3_dir: Path) -> None:
    weights = v2v3_dir / "ghostnetv2_100.safetensors"
    model = GhostNetV2(weights=weights, classifier_activation=None, input_shape=(None, None, 3))
    _assert_layout_is_the_checkpoint(model, load_file(weights))
    oracle = np.load(v2v3_dir / "ghostnetv2_100_expected.npz")
    for size in SIZES:
        _assert_matches(model, oracle, size, atol_scale=1e-5)


@pytest.mark.slow
def test_v3_training_and_deploy_forms_match_timm_full_size(
    v2v3_dir: Path, timm_counts: dict[str, dict[str, int]]
) -> None:
    train_weights = v2v3_dir / "ghostnetv3_050.safetensors"
    deploy_weights = v2v3_dir / "ghostnetv3_050_deploy.safetensors"
    model = GhostNetV3_050(weights=train_weights, classifier_activation=None,
                           input_shape=(None, None, 3))
    loaded_deploy = GhostNetV3_050(weights=deploy_weights, classifier_activation=None,
                                   input_shape=(None, None, 3), reparameterized=True)
    _assert_layout_is_the_checkpoint(model, load_file(train_weights))
    _assert_layout_is_the_checkpoint(loaded_deploy, load_file(deploy_weights))
    fused = reparameterize(model)
    counts = timm_counts["ghostnetv3_050"]
    assert (_timm_count(model), _timm_count(fused)) == (counts["params_train_form"],
                                                        counts["params_deploy_form"])
    oracle = np.load(v2v3_dir / "ghostnetv3_050_expected.npz")
    deploy_oracle = np.load(v2v3_dir / "ghostnetv3_050_deploy_expected.npz")
    for size in SIZES:
        _assert_matches(model, oracle, size, atol_scale=1e-5)
        _assert_matches(loaded_deploy, deploy_oracle, size, atol_scale=1e-5)
        _assert_matches(fused, deploy_oracle, size, atol_scale=1e-5)
        # reparameterize() keeps the training form's outputs (relative 1e-5).
        images = oracle[f"{size}/images"]
        expected = _predict(model, images)
        np.testing.assert_allclose(_predict(fused, images), expected, rtol=0,
                                   atol=1e-5 * np.abs(expected).max())


def test_every_width_timm_counts_is_tested(timm_counts: dict[str, dict[str, int]]) -> None:
    assert set(timm_counts) == {_model_name(version, width)
                                for version, widths in FAMILY_WIDTHS.items() for width in widths}


@pytest.mark.slow
@pytest.mark.parametrize(("version", "width"), [(version, width)
                                                for version, widths in FAMILY_WIDTHS.items()
                                                for width in widths])
def test_parameter_counts_match_timm(version: str, width: float,
                                     timm_counts: dict[str, dict[str, int]]) -> None:
    """Every width and form; built at 64 x 64 (the count does not depend on the input size)."""
    counts = timm_counts[_model_name(version, width)]
    model = CONSTRUCTORS[version](width=width, input_shape=(64, 64, 3))
    assert model.name == _model_name(version, width)
    assert _timm_count(model) == counts["params_train_form"]
    if version == "v3":
        deploy = GhostNetV3(width=width, reparameterized=True, input_shape=(64, 64, 3))
        assert _timm_count(deploy) == counts["params_deploy_form"]
    else:
        assert "params_deploy_form" not in counts


# ----------------------------------------------------------------------------------------------
# Weights: strict loading, ImageNet cache
# ----------------------------------------------------------------------------------------------


def test_missing_dfc_tensor_is_named_and_nothing_loads(tmp_path: Path) -> None:
    state = load_file(TEST_DATA_DIR / "ghostnetv2_010.safetensors")
    del state["blocks.3.0.ghost1.short_conv.2.weight"]
    state["blocks.3.0.ghost1.short_conv.9.weight"] = np.zeros(3, np.float32)
    path = tmp_path / "broken.safetensors"
    save_file(state, path)
    model = GhostNetV2(width=0.1, classes=10)
    before = [w.copy() for w in model.get_weights()]
    with pytest.raises(WeightsError) as error:
        model = GhostNetV2(width=0.1, classes=10, weights=path)
    assert "missing tensor 'blocks.3.0.ghost1.short_conv.2.weight'" in str(error.value)
    assert "unexpected tensor 'blocks.3.0.ghost1.short_conv.9.weight'" in str(error.value)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_wrong_form_or_version_is_an_error() -> None:
    with pytest.raises(WeightsError, match=r"missing tensor .blocks\.0\.0\.ghost1\.cheap_rpr_conv"):
        GhostNetV3(width=0.1, classes=10, weights=TEST_DATA_DIR / "ghostnetv2_010.safetensors")
    with pytest.raises(WeightsError, match="short_conv"):
        GhostNet(width=0.1, classes=10, weights=TEST_DATA_DIR / "ghostnetv2_010.safetensors")
    with pytest.raises(ValueError, match=r"width 1\.0 or 1\.3 or 1\.6"):
        GhostNetV2(width=0.5, weights="imagenet")
    with pytest.raises(ValueError, match="no parallel branches"):
        reparameterize(GhostNetV2(width=0.1, classes=10))


def test_imagenet_download_failure_is_clear(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(imagenet_cache, "HUB_URL", "http://127.0.0.1:9/{variant}.safetensors")
    with pytest.raises(RuntimeError, match=r"ghostnetv2_130_in1k\.safetensors"):
        GhostNetV2(width=1.3, weights="imagenet")
    assert not list((tmp_path / "models").glob("*.weights.h5"))


@pytest.mark.slow
def test_imagenet_weights_convert_once_from_the_keras_cache(
    v2v3_dir: Path, tmp_path, monkeypatch
) -> None:
    # The hub files as keras.utils.get_file caches them; the random oracle weights stand in for
    # the trained ones (same layout). timm publishes V3 at width 1.0 only: the oracle is 0.5.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setitem(imagenet_cache.IMAGENET_VARIANTS, ("v3", 0.5), "ghostnetv3_050")
    (tmp_path / "models").mkdir()
    for variant in ("ghostnetv2_100", "ghostnetv3_050"):
        shutil.copyfile(v2v3_dir / f"{variant}.safetensors",
                        tmp_path / "models" / f"{variant}_in1k.safetensors")
    v2_oracle = np.load(v2v3_dir / "ghostnetv2_100_expected.npz")
    v2 = GhostNetV2(weights="imagenet", classifier_activation=None)
    assert (tmp_path / "models" / "ghostnetv2_100_imagenet.weights.h5").exists()
    np.testing.assert_allclose(v2.predict(v2_oracle["224/images"], verbose=0),
                               v2_oracle["224/logits"], rtol=0, atol=1e-4)
    (tmp_path / "models" / "ghostnetv3_050_in1k.safetensors").unlink()
    with pytest.raises(RuntimeError, match="Could not download"):
        GhostNetV3(width=0.5, weights="imagenet")
    shutil.copyfile(v2v3_dir / "ghostnetv3_050.safetensors",
                    tmp_path / "models" / "ghostnetv3_050_in1k.safetensors")
    v3_oracle = np.load(v2v3_dir / "ghostnetv3_050_deploy_expected.npz")
    deploy = GhostNetV3(width=0.5, weights="imagenet", reparameterized=True,
                        classifier_activation=None)
    assert (tmp_path / "models" / "ghostnetv3_050_imagenet.weights.h5").exists()
    np.testing.assert_allclose(deploy.predict(v3_oracle["224/images"], verbose=0),
                               v3_oracle["224/logits"], rtol=0, atol=1e-4)


# ----------------------------------------------------------------------------------------------
# Consumers of the Keras model
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_feature_extractor_and_keras_file(compact_v2: keras.Model, tmp_path: Path) -> None:
    features = feature_extractor(compact_v2, strides=(4, 8, 16, 32))
    maps = _predict(features, np.zeros((1, 200, 264, 3), np.float32))
    assert {k: v.shape[1:3] for k, v in maps.items()} == {
        "stride_4": (50, 66), "stride_8": (25, 33), "stride_16": (13, 17), "stride_32": (7, 9)
    }
    compact_v2.save(tmp_path / "v2.keras")
    restored = keras.saving.load_model(tmp_path / "v2.keras")
    assert any(isinstance(layer, NearestResize) for layer in restored.layers)
    images = np.load(TEST_DATA_DIR / "ghostnetv2_010_expected.npz")["nonsquare/images"]
    np.testing.assert_array_equal(_predict(restored, images), _predict(compact_v2, images))


@pytest.mark.slow
@pytest.mark.parametrize("order", ["keras first", "ghostnet_keras first"])
def test_keras_file_loads_in_a_fresh_process(compact_v2: keras.Model, tmp_path: Path,
                                             order: str) -> None:
    """`import ghostnet_keras` is enough for `keras.saving.load_model` to find NearestResize
    when Keras is imported first; `ghostnet_keras.weights.keras_files.load_keras_file` always."""
    compact_v2.save(tmp_path / "v2.keras")
    images = np.load(TEST_DATA_DIR / "ghostnetv2_010_expected.npz")["nonsquare/images"]
    np.save(tmp_path / "x.npy", images)
    np.save(tmp_path / "y.npy", _predict(compact_v2, images))
    imports = ("import keras\nimport ghostnet_keras\nload = keras.saving.load_model\n"
               if order == "keras first" else
               "import ghostnet_keras\n"
               "from ghostnet_keras.weights.keras_files import load_keras_file"
               " as load\n")
    script = (
        "import sys, numpy as np\n" + imports +
        "d = sys.argv[1]\n"
        "m = load(d + '/v2.keras')\n"
        "y = m.predict(np.load(d + '/x.npy'), verbose=0)\n"
        "print(float(np.abs(y - np.load(d + '/y.npy')).max()))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                            text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.strip().splitlines()[-1]) <= 1e-5  # predict vs call


@pytest.mark.slow
def test_macs_of_the_published_widths() -> None:
    from ghostnet_keras import profile

    # Multiply-adds of conv and dense layers at 224 x 224 (the paper's convention; timm's
    # GMACs, 0.18 / 0.28 / 0.42 / 0.17, come from a counter that also counts other ops).
    assert profile(GhostNetV2(width=1.0)).macs == 167_048_288
    assert profile(GhostNetV2(width=1.3)).macs == 269_322_976
    deploy = profile(GhostNetV3(width=1.0, reparameterized=True))
    # The deploy form has V2's convolutions (plus biases); training adds the parallel branches.
    assert deploy.macs == 167_048_288
    assert profile(GhostNetV3(width=1.0)).macs == 404_128_320


def test_minimum_input_size_is_checked() -> None:
    # The DFC gate pools the stride-32 map 2x2: 33 x 33 is the smallest input.
    assert GhostNetV2(width=0.1, classes=10, input_shape=(33, 40, 3)).output.shape == (None, 10)
    with pytest.raises(ValueError, match="at least 33x33"):
        GhostNetV3(width=0.1, input_shape=(32, 64, 3))


def test_training_recipes_build_the_family() -> None:
    from ghostnet_keras.training.configs import get_config
    from ghostnet_keras.training.models import build_training_model

    markers = {"ghostnetv2": "block3a_ghost1_attention", "ghostnetv3": "block1a_dw_add"}
    for family, marker in markers.items():
        config = get_config("quickstart", f"model={family},width=0.3,image_size=64")
        model = build_training_model(config, num_classes=10)
        assert model.input_shape == (None, 64, 64, 3) and model.output_shape == (None, 10)
        assert model.get_layer("stem_conv").filters == 8
        model.get_layer(marker)  # the V2 gate / the V3 training-form branches


def test_fused_batch_norm_copy_keeps_the_outputs(compact_v2: keras.Model) -> None:
    # The trainer trains `with_fused_batch_norm(model)`; NearestResize must survive the copy.
    from ghostnet_keras import with_fused_batch_norm

    fused = with_fused_batch_norm(compact_v2)
    images = np.load(TEST_DATA_DIR / "ghostnetv2_010_expected.npz")["nonsquare/images"]
    np.testing.assert_allclose(_predict(fused, images), _predict(compact_v2, images),
                               rtol=0, atol=1e-5)


@pytest.mark.slow
def test_convert_checkpoint_to_keras_weights(compact_v2: keras.Model, tmp_path: Path) -> None:
    from ghostnet_keras.cli.convert_checkpoint import convert_checkpoint

    output = convert_checkpoint(TEST_DATA_DIR / "ghostnetv2_010.safetensors",
                                tmp_path / "v2.weights.h5", width=0.1, model="ghostnetv2")
    model = GhostNetV2(width=0.1, classes=10, classifier_activation=None,
                       input_shape=(None, None, 3), weights=output)
    images = np.load(TEST_DATA_DIR / "ghostnetv2_010_expected.npz")["224/images"]
    np.testing.assert_array_equal(_predict(model, images), _predict(compact_v2, images))
    with pytest.raises(WeightsError, match="short_conv"):
        convert_checkpoint(TEST_DATA_DIR / "ghostnetv2_010.safetensors",
                           tmp_path / "v1.weights.h5", width=0.1)
    assert not (tmp_path / "v1.weights.h5").exists()


@pytest.mark.slow
def test_tf_keras_twin_from_the_same_definition(compact_v2: keras.Model) -> None:
    # The QAT path builds the same graph with tf_keras.layers; weights copy by layer name.
    import tf_keras

    from ghostnet_keras.models.ghostnet import build_ghostnet
    from ghostnet_keras.weights.strict import copy_weights_by_name

    twin = build_ghostnet(width=0.1, classes=10, classifier_activation=None,
                          input_shape=(None, None, 3), keras_module=tf_keras, version="v2")
    names = [layer.name for layer in compact_v2.layers]
    assert [layer.name for layer in twin.layers][1:] == names[1:]  # [0]: the input's name
    copy_weights_by_name(compact_v2, twin)
    oracle = np.load(TEST_DATA_DIR / "ghostnetv2_010_expected.npz")
    logits = twin(oracle["nonsquare/images"].astype(np.float32), training=False)
    np.testing.assert_allclose(np.asarray(logits), oracle["nonsquare/logits"], rtol=0, atol=1e-5)
