"""GhostNet in KerasHub (`ghostnet_keras.hub`): presets from the compact oracles, round trips.

KerasHub's base classes load the preset folders `ghostnet-hub-preset` writes and reproduce
timm's outputs; a fine-tuned classifier round-trips through `save_to_preset`; a checkpoint that
does not fit writes nothing. No TensorFlow here: the same tests run on JAX.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from ghostnet_keras.preprocessing import normalize_input
from ghostnet_keras.weights.strict import WeightsError

from .conftest import (
    COMPACT_CLASSES,
    COMPACT_EXPECTED,
    COMPACT_WEIGHTS,
    COMPACT_WIDTH,
    TEST_DATA_DIR,
    require_module,
)

require_module("keras_hub", 'pip install "ghostnet-keras[hub]"')

import keras_hub

from ghostnet_keras.hub import (
    GhostNetBackbone,
    GhostNetImageClassifier,
    to_functional_model,
)
from ghostnet_keras.hub.presets import build_classifier, write_preset

pytestmark = pytest.mark.portable

PARITY_ATOL = 1e-4
PRESET_FILES = {"config.json", "model.weights.h5", "metadata.json", "task.json",
                "task.weights.h5", "preprocessor.json"}
# KerasHub's pyramid level -> timm's `blocks[i]` output at that stride (v1 oracle keys).
PYRAMID_BLOCKS = {"P1": 0, "P2": 2, "P3": 4, "P4": 6, "P5": 9}
# version -> (checkpoint, oracle, width): the compact V2/V3 oracles (width 0.1, 10 classes).
V2V3 = {
    "v2": ("ghostnetv2_010.safetensors", "ghostnetv2_010_expected.npz"),
    "v3": ("ghostnetv3_010.pth", "ghostnetv3_010_expected.npz"),
}


def _numpy(x: object) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(x))


@pytest.fixture(scope="module")
def v1_preset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("presets") / "ghostnet_020_c10"
    return write_preset(COMPACT_WEIGHTS, output, version="v1", width=COMPACT_WIDTH,
                        num_classes=COMPACT_CLASSES, image_size=(64, 64))


@pytest.fixture(scope="module")
def v1_classifier(v1_preset: Path) -> keras.Model:
    return keras_hub.models.ImageClassifier.from_preset(str(v1_preset))


@pytest.fixture(scope="module")
def oracle() -> dict[str, np.ndarray]:
    with np.load(COMPACT_EXPECTED) as data:
        return dict(data)


def test_preset_folder_holds_keras_hub_files(v1_preset: Path) -> None:
    assert PRESET_FILES <= {path.name for path in v1_preset.iterdir()}
    assert not [p for p in v1_preset.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_base_classes_load_the_preset_with_timm_outputs(v1_classifier, oracle) -> None:
    classifier = v1_classifier
    assert isinstance(classifier, GhostNetImageClassifier)
    for size in ("64x64", "80x112"):
        images = oracle[f"images_{size}"].astype("float32")
        logits = _numpy(classifier(normalize_input(images, "channels_last")))
        np.testing.assert_allclose(logits, oracle[f"logits_{size}"], rtol=0, atol=PARITY_ATOL,
                                   err_msg=size)
    # predict() runs the preset's preprocessor: resizing a 64 x 64 image to 64 x 64 changes
    # nothing, the normalisation is the contract.
    logits = classifier.predict(oracle["images_64x64"].astype("float32"), verbose=0)
    np.testing.assert_allclose(logits, oracle["logits_64x64"], rtol=0, atol=PARITY_ATOL)


def test_base_backbone_loads_the_preset_with_its_pyramid(v1_preset: Path, oracle) -> None:
    backbone = keras_hub.models.Backbone.from_preset(str(v1_preset))
    assert isinstance(backbone, GhostNetBackbone)
    pyramid = keras.Model(backbone.inputs, backbone.pyramid_outputs)
    images = normalize_input(oracle["images_80x112"], "channels_last")
    outputs = pyramid(images)
    assert sorted(outputs) == sorted(PYRAMID_BLOCKS)
    for level, block in PYRAMID_BLOCKS.items():
        np.testing.assert_allclose(_numpy(outputs[level]), oracle[f"blocks.{block}_80x112"],
                                   rtol=0, atol=PARITY_ATOL, err_msg=level)


@pytest.mark.parametrize("version", ["v2", "v3_deploy"])
def test_v2_and_v3_presets_match_timm(version: str, tmp_path: Path) -> None:
    """GhostNetV2, and GhostNetV3 in deploy form (its training-form checkpoint fused)."""
    deploy = version == "v3_deploy"
    checkpoint, expected = V2V3[version[:2]]
    preset = write_preset(TEST_DATA_DIR / checkpoint, tmp_path / version, version=version[:2],
                          width=0.1, num_classes=10, reparameterized=deploy)
    classifier = keras_hub.models.ImageClassifier.from_preset(str(preset))
    assert (classifier.backbone.version, classifier.backbone.reparameterized) == (
        version[:2], deploy)
    oracle = np.load(TEST_DATA_DIR / expected)
    images = normalize_input(oracle["nonsquare/images"], "channels_last")
    expected_logits = oracle[f"{'deploy/' if deploy else ''}nonsquare/logits"]
    np.testing.assert_allclose(_numpy(classifier(images)), expected_logits, rtol=0,
                               atol=PARITY_ATOL)


def test_fine_tuned_classifier_round_trips_through_save_to_preset(v1_preset: Path,
                                                                   tmp_path: Path) -> None:
    classifier = keras_hub.models.ImageClassifier.from_preset(str(v1_preset))
    images = np.random.default_rng(0).uniform(0, 255, (4, 48, 40, 3)).astype("float32")
    labels = np.arange(4) % COMPACT_CLASSES
    normalized = normalize_input(images, "channels_last")
    before = _numpy(classifier(normalized))
    # Eager on TensorFlow, where tracing the train step costs more than the step (KerasHub's
    # harness compiles it); JAX compiles it faster than it runs it op by op.
    classifier.compile(optimizer=keras.optimizers.SGD(0.1),
                       run_eagerly=keras.backend.backend() == "tensorflow")
    classifier.fit(images, labels, batch_size=4, epochs=1, verbose=0)  # through the preprocessor
    tuned = _numpy(classifier(normalized))
    assert np.abs(tuned - before).max() > 1e-3  # the fit changed the weights
    classifier.save_to_preset(str(tmp_path / "tuned"))
    restored = keras_hub.models.ImageClassifier.from_preset(str(tmp_path / "tuned"))
    assert isinstance(restored, GhostNetImageClassifier)
    np.testing.assert_allclose(_numpy(restored(normalized)), tuned, rtol=0, atol=1e-6)
    assert tuple(restored.preprocessor.image_converter.image_size) == (64, 64)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"width": 0.25}, "has shape"), ({"num_classes": 7}, "classifier.weight"),
     ({"version": "v2"}, "missing tensor")],
    ids=["width", "classes", "version"],
)
def test_a_checkpoint_that_does_not_fit_writes_nothing(overrides, message, tmp_path) -> None:
    arguments = {"version": "v1", "width": COMPACT_WIDTH, "num_classes": COMPACT_CLASSES,
                 **overrides}
    with pytest.raises(WeightsError, match=message):
        write_preset(COMPACT_WEIGHTS, tmp_path / "preset", **arguments)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_refused(v1_preset: Path) -> None:
    files = sorted(path.name for path in v1_preset.iterdir())
    with pytest.raises(FileExistsError, match="already exists"):
        write_preset(COMPACT_WEIGHTS, v1_preset, width=COMPACT_WIDTH, num_classes=10)
    assert sorted(path.name for path in v1_preset.iterdir()) == files


def test_functional_model_is_the_classifier_with_its_normalisation(v1_classifier) -> None:
    classifier = v1_classifier
    flat = to_functional_model(classifier)
    assert type(flat).__name__ == "Functional"
    assert tuple(flat.input.shape) == (None, 64, 64, 3)
    images = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    np.testing.assert_allclose(
        _numpy(flat(images)), _numpy(classifier(normalize_input(images, "channels_last"))),
        rtol=0, atol=1e-5,
    )


def test_functional_model_refuses_another_normalisation() -> None:
    classifier = build_classifier(width=0.1, num_classes=3, image_size=(40, 40))
    classifier.preprocessor.image_converter.scale = 1 / 255
    with pytest.raises(ValueError, match="scale"):
        to_functional_model(classifier)


def test_exports_name_the_function_to_call_for_a_keras_hub_task() -> None:
    from ghostnet_keras.data_format import to_channels_last

    classifier = build_classifier(width=0.1, num_classes=3, image_size=(40, 40))
    with pytest.raises(TypeError, match=r"ghostnet_keras\.hub\.to_functional_model"):
        to_channels_last(classifier)  # the first step of the TFLite and serving exports


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="version"):
        GhostNetBackbone(version="v4")
    with pytest.raises(ValueError, match="reparameterized"):
        GhostNetBackbone(version="v2", reparameterized=True)
    with pytest.raises(ValueError, match="num_classes"):
        GhostNetImageClassifier(GhostNetBackbone(width=0.1), num_classes=0)


@pytest.mark.slow
def test_command_line_writes_a_preset(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("ghostnet-hub-preset")
    result = subprocess.run(
        [str(script), f"--checkpoint={COMPACT_WEIGHTS}", "--version=v1",
         f"--width={COMPACT_WIDTH}", "--image_size=64,48", "--num_classes=10",
         f"--output={tmp_path / 'preset'}"],
        capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert PRESET_FILES <= {path.name for path in (tmp_path / "preset").iterdir()}
    preprocessor = keras_hub.models.ImageClassifierPreprocessor.from_preset(
        str(tmp_path / "preset"))
    assert tuple(preprocessor.image_converter.image_size) == (64, 48)


def test_image_size_flag_is_parsed_or_refused() -> None:
    from absl import app

    from ghostnet_keras.cli.hub_preset import parse_image_size

    assert parse_image_size(["64", "48"]) == (64, 48)
    assert parse_image_size(["96"]) == (96, 96)
    for bad in (["a", "1"], ["1", "2", "3"], ["0", "4"]):
        with pytest.raises(app.UsageError, match="image_size"):
            parse_image_size(bad)
