"""All-or-nothing loading from every source (docs/loading.md): a file that does not fit is
refused with the tensors named, and the model keeps every weight bit for bit."""

from __future__ import annotations

import re
import shutil
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from ghostnet_keras import GhostNet, GhostNetV2, GhostNetV3, reparameterize
from ghostnet_keras.weights import imagenet_cache, strict
from ghostnet_keras.weights.loading import (
    has_training_form,
    is_training_form,
    load_ghostnet_weights,
)
from ghostnet_keras.weights.strict import WeightsError, copy_weights_by_name

from .conftest import COMPACT_WEIGHTS, TEST_DATA_DIR

SHAPE = (64, 64, 3)
V2_WEIGHTS = TEST_DATA_DIR / "ghostnetv2_010.safetensors"
V3_WEIGHTS = TEST_DATA_DIR / "ghostnetv3_010.pth"  # official layout, training form


@pytest.fixture(scope="module")
def sources() -> dict[str, keras.Model]:
    """The compact oracles as models: v1 width 0.2, V2 and V3 (training form) 0.1, 10 classes."""
    common = dict(classes=10, input_shape=SHAPE, classifier_activation=None)
    return {
        "v1": GhostNet(width=0.2, weights=COMPACT_WEIGHTS, **common),
        "v2": GhostNetV2(width=0.1, weights=V2_WEIGHTS, **common),
        "v3": GhostNetV3(width=0.1, weights=V3_WEIGHTS, **common),
    }


@pytest.fixture(scope="module")
def files(sources: dict[str, keras.Model], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Each source in every format: `{"v1.keras": path, "v2.safetensors": path, ...}`."""
    folder = tmp_path_factory.mktemp("sources")
    paths = {"v1.safetensors": COMPACT_WEIGHTS, "v2.safetensors": V2_WEIGHTS,
             "v3.pth": V3_WEIGHTS, "v3.pth.tar": folder / "v3.pth.tar"}
    shutil.copyfile(V3_WEIGHTS, paths["v3.pth.tar"])
    for version, model in sources.items():
        paths[f"{version}.keras"] = folder / f"{version}.keras"
        paths[f"{version}.weights.h5"] = folder / f"{version}.weights.h5"
        model.save(paths[f"{version}.keras"])
        model.save_weights(paths[f"{version}.weights.h5"])
    return paths


@pytest.fixture(scope="module")
def targets() -> dict[str, keras.Model]:
    """Models that no source above fits (random weights, which a failed load must keep)."""
    return {
        "v1 width 0.1": GhostNet(width=0.1, classes=10, input_shape=SHAPE),
        "V2 width 0.2": GhostNetV2(width=0.2, classes=10, input_shape=SHAPE),
        "v1 1000 classes": GhostNet(width=0.2, input_shape=SHAPE),
        "v1 width 0.25": GhostNet(width=0.25, classes=10, input_shape=SHAPE),
    }


def _snapshot(model: keras.Model) -> list[np.ndarray]:
    return [np.array(w, copy=True) for w in model.get_weights()]


def _assert_unchanged(model: keras.Model, before: list[np.ndarray]) -> None:
    after = model.get_weights()
    assert len(after) == len(before)
    for old, new in zip(before, after, strict=True):
        np.testing.assert_array_equal(old, new)  # bit for bit, not within a tolerance


def _refused(model: keras.Model, path: Path, message: str, **kwargs) -> WeightsError:
    """Loads `path` into `model`: it must fail with `message` and leave the model as it was."""
    before = _snapshot(model)
    with pytest.raises(WeightsError, match=re.compile(message, re.DOTALL)) as error:
        load_ghostnet_weights(model, path, **kwargs)
    _assert_unchanged(model, before)
    return error.value


UNUSED_DFC_LAYER = r"0 missing, [1-9]\d* unused, 0 mis-shaped.*unexpected layer 'block\w+_short_"
UNUSED_DFC_TENSOR = (r"0 missing, [1-9]\d* unused, 0 mis-shaped.*"
                     r"unexpected tensor 'blocks\.\d\.\d\.ghost1\.short_conv")
MISSING_DFC_LAYER = r"[1-9]\d* missing, 0 unused, 0 mis-shaped.*missing layer 'block\w+_short_"
MISSING_DFC_TENSOR = r"[1-9]\d* missing, 0 unused, 0 mis-shaped.*missing tensor 'blocks\.\d+\.\d"
CLASSES_LAYER = (r"layer 'predictions' has weights \(1280, 10\), \(10,\) in the source, but the "
                 r"model needs \(1280, 1000\), \(1000,\)")
CLASSES_TENSOR = r"tensor 'classifier\.weight' has shape \(10, 1280\), but layer 'predictions'"
WIDTH = r"0 missing, 0 unused, [1-9]\d* mis-shaped"


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        # The reported bug: a GhostNetV2 file into GhostNet (v1) dropped every DFC weight.
        ("v2.keras", "v1 width 0.1", UNUSED_DFC_LAYER),
        ("v2.weights.h5", "v1 width 0.1", UNUSED_DFC_LAYER),
        ("v2.safetensors", "v1 width 0.1", UNUSED_DFC_TENSOR),
        # A v1 file into GhostNetV2.
        ("v1.keras", "V2 width 0.2", MISSING_DFC_LAYER),
        ("v1.weights.h5", "V2 width 0.2", MISSING_DFC_LAYER),
        ("v1.safetensors", "V2 width 0.2", MISSING_DFC_TENSOR),
        # A 10-class file into a 1000-class model.
        ("v1.keras", "v1 1000 classes", CLASSES_LAYER),
        ("v1.weights.h5", "v1 1000 classes", CLASSES_LAYER),
        ("v1.safetensors", "v1 1000 classes", CLASSES_TENSOR),
        # A width-0.2 file into width 0.25.
        ("v1.keras", "v1 width 0.25", WIDTH + r".*layer 'block\w+' has weights"),
        ("v1.weights.h5", "v1 width 0.25", WIDTH + r".*layer 'block\w+' has weights"),
        ("v1.safetensors", "v1 width 0.25", WIDTH + r".*tensor 'blocks\.[\d.\w]+' has shape"),
        # The official GhostNetV3 .pth (training form, FLOPs counter entries) into v1.
        ("v3.pth", "v1 width 0.1", r"unexpected tensor 'blocks\.0\.0\.ghost1\.cheap_rpr_conv"),
        ("v3.pth.tar", "v1 1000 classes", r"missing tensor 'blocks\.0\.0\.ghost1\.cheap_op"),
    ],
)
def test_a_file_that_does_not_fit_is_refused_and_nothing_changes(
    files: dict, targets: dict, source: str, target: str, message: str
) -> None:
    error = _refused(targets[target], files[source], message)
    assert str(files[source]) in str(error)
    assert "nothing was loaded; the model keeps its weights" in str(error)


def test_the_reported_v2_file_into_ghostnet_is_refused(files: dict) -> None:
    with pytest.raises(WeightsError, match="unexpected layer 'block2a_ghost1_short_bn'"):
        GhostNet(width=0.1, classes=10, weights=files["v2.keras"])


def test_errors_name_a_few_tensors_with_shapes_and_count_the_rest(files, targets) -> None:
    error = str(_refused(targets["v1 width 0.1"], files["v2.keras"], UNUSED_DFC_LAYER))
    named = [line for line in error.splitlines() if "unexpected layer" in line]
    assert len(named) == strict.SHOWN_PER_PROBLEM
    assert all("(weights (" in line for line in named)
    assert "more unused" in error


@pytest.mark.slow
def test_every_format_loads_exactly_with_and_without_top(sources: dict, files: dict) -> None:
    source = sources["v1"]
    expected = {layer.name: layer.get_weights() for layer in source.layers if layer.weights}
    for fmt in ("v1.keras", "v1.weights.h5", "v1.safetensors"):
        full = GhostNet(width=0.2, classes=10, input_shape=SHAPE, weights=files[fmt])
        backbone = GhostNet(width=0.2, include_top=False, input_shape=SHAPE, weights=files[fmt])
        # The head rule: a backbone ignores exactly the head's layers of a full file.
        skipped = {layer.name for layer in full.layers if layer.weights} - {
            layer.name for layer in backbone.layers if layer.weights}
        assert skipped == set(strict.HEAD_LAYERS)
        for model in (full, backbone):
            for layer in model.layers:
                for loaded, saved in zip(layer.get_weights(), expected.get(layer.name, []),
                                         strict=True):
                    np.testing.assert_array_equal(loaded, saved, err_msg=f"{fmt}: {layer.name}")


@pytest.mark.parametrize("fmt", ["v2.keras", "v2.weights.h5", "v2.safetensors"])
def test_a_backbone_ignores_only_the_head(files: dict, fmt: str) -> None:
    # Without top the file's head is skipped by rule; anything else unused is still refused.
    with pytest.raises(WeightsError) as error:
        GhostNet(width=0.1, include_top=False, weights=files[fmt])
    assert "short" in str(error.value)
    for head in (*strict.HEAD_LAYERS, *strict.HEAD_TENSORS):
        assert f"'{head}" not in str(error.value)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["v3.keras", "v3.weights.h5"])
def test_training_form_keras_file_fuses_into_the_deploy_form(
    sources: dict, files: dict, fmt: str
) -> None:
    assert is_training_form(files[fmt])
    deploy = GhostNetV3(width=0.1, classes=10, input_shape=SHAPE, classifier_activation=None,
                        reparameterized=True, weights=files[fmt])
    assert not has_training_form(deploy)
    images = np.random.default_rng(0).uniform(0, 255, (2, *SHAPE)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(sources["v3"](images, training=False))
    fused = keras.ops.convert_to_numpy(deploy(images, training=False))
    assert np.abs(fused - expected).max() <= 1e-5 * np.abs(expected).max()


def test_is_training_form_looks_inside_keras_files(files: dict) -> None:
    for fmt in ("v1.keras", "v1.weights.h5", "v2.keras", "v2.weights.h5", "v2.safetensors"):
        assert not is_training_form(files[fmt]), fmt
    for fmt in ("v3.keras", "v3.weights.h5", "v3.pth"):
        assert is_training_form(files[fmt]), fmt


def test_deploy_form_file_into_the_training_form_says_so(
    sources: dict, tmp_path: Path
) -> None:
    deploy = reparameterize(sources["v3"])
    deploy.save(tmp_path / "deploy.keras")
    error = _refused(sources["v3"], tmp_path / "deploy.keras", "missing layer")
    assert "load it with reparameterized=True" in str(error)


def test_reparameterize_into_a_model_that_does_not_fit(sources: dict, targets: dict) -> None:
    target = targets["v1 width 0.1"]
    before = _snapshot(target)
    with pytest.raises(WeightsError, match="fused weights of 'ghostnetv3_010'"):
        reparameterize(sources["v3"], into=target)
    _assert_unchanged(target, before)


def test_copy_by_name_uses_every_layer_of_the_source(sources: dict, targets: dict) -> None:
    target = targets["v1 width 0.1"]
    before = _snapshot(target)
    with pytest.raises(WeightsError, match=re.compile(UNUSED_DFC_LAYER, re.DOTALL)):
        copy_weights_by_name(sources["v2"], target)
    _assert_unchanged(target, before)


def test_unreadable_and_nameless_keras_files(files: dict, targets: dict, tmp_path: Path) -> None:
    target = targets["v1 width 0.25"]
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(Path(files["v1.weights.h5"]).read_bytes()[:5000])
    _refused(target, truncated, r"cannot read .*truncated\.weights\.h5")
    not_a_zip = tmp_path / "broken.keras"
    not_a_zip.write_bytes(b"not a zip archive")
    _refused(target, not_a_zip, r"cannot read .*broken\.keras")
    nameless = tmp_path / "nameless.weights.h5"
    shutil.copyfile(files["v1.weights.h5"], nameless)
    with h5py.File(nameless, "r+") as handle:
        named = []
        handle.visititems(lambda _, obj: named.append(obj) if "name" in obj.attrs else None)
        for obj in named:
            del obj.attrs["name"]
    _refused(target, nameless, "records no layer names")


def test_optimizer_state_in_a_keras_file_is_not_weights(sources: dict, tmp_path: Path) -> None:
    model = sources["v1"]
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    model.save(tmp_path / "compiled.keras")
    with zipfile.ZipFile(tmp_path / "compiled.keras") as archive, h5py.File(
        archive.open("model.weights.h5"), "r"
    ) as handle:
        assert "optimizer" in handle  # the state is there, and is not a layer
    loaded = GhostNet(width=0.2, classes=10, input_shape=SHAPE,
                      weights=tmp_path / "compiled.keras")
    for old, new in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_imagenet_cache_that_does_not_fit_is_refused(
    files: dict, targets: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setitem(imagenet_cache.IMAGENET_VARIANTS, ("v1", 0.1), "ghostnet_010")
    cache = tmp_path / "models" / "ghostnet_010_imagenet.weights.h5"
    cache.parent.mkdir()

    def no_download(**_: object) -> keras.Model:
        raise AssertionError("the cache exists: nothing to download or convert")

    target = targets["v1 width 0.1"]
    shutil.copyfile(files["v2.weights.h5"], cache)  # another model's weights under that name
    error = _refused(target, "imagenet", UNUSED_DFC_LAYER, version="v1", width=0.1,
                     build=no_download)
    assert "delete that file" in str(error) and str(cache) in str(error)
    cache.write_bytes(Path(files["v2.weights.h5"]).read_bytes()[:4096])  # a torn copy
    _refused(target, "imagenet", r"cannot read .*delete that file", version="v1", width=0.1,
             build=no_download)
