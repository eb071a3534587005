"""TFLite Model Metadata, and MediaPipe's ImageClassifier as a real client of our `.tflite` files.

MediaPipe runs in its own venv, made by `tools/make_mediapipe_venv.sh` (once; later runs return
at once); the tests fail, never skip, when it cannot be made. GhostNet 0.5 at 64x64 with random
BN statistics (non-trivial logits), exported once; fp32, fp16, int8 (uint8 io) and QAT int8.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from tests.conftest import require_module
from tests.peaked_models import peaked_ghostnet

require_module("ai_edge_litert", "needs the `tflite` extra (ai-edge-litert)")

from ghostnet_keras.synthetic_images import synthetic_images
from ghostnet_keras.tflite import (
    conversion,
    flatbuffer_schema,
    mediapipe_runner,
    metadata,
    verify,
)

SIZE = 64
LABELS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TOP_K = 5


def _tiny_model(activation: str | None = "softmax", classes: int = 5) -> keras.Model:
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation=activation)(x)
    return keras.Model(inputs, outputs, name="tiny")


def _with_metadata(data: bytes, name: str) -> bytes:
    return metadata.with_image_classifier_metadata(
        data, LABELS, name=name, description="GhostNet 0.5 test model", version="test",
        author="ghostnet_keras tests", license="Apache-2.0")


def _litert_scores(data: bytes, images: np.ndarray) -> np.ndarray:
    """Direct LiteRT inference, outputs dequantized as MediaPipe reports them."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=1)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    scores = []
    for image in images:
        interpreter.set_tensor(inp["index"], image[None].astype(inp["dtype"]))
        interpreter.invoke()
        raw = interpreter.get_tensor(out["index"])[0]
        scale, zero_point = out["quantization"]
        scores.append((raw.astype(np.float32) - zero_point) * scale if scale else raw)
    return np.stack(scores).astype(np.float32)


def _assert_same_top_k(result: mediapipe_runner.ClientResult, scores: np.ndarray) -> float:
    """MediaPipe's top-k = LiteRT's top-k (scores, indices up to ties), names from the labels.

    Returns the largest score difference relative to the largest |score|.
    """
    assert len(result.categories) == len(scores)
    worst = 0.0
    for categories, row in zip(result.categories, scores, strict=True):
        assert len(categories) == TOP_K
        got = np.array([c.score for c in categories], np.float32)
        expected = np.sort(row)[::-1][:TOP_K]
        at_index = row[[c.index for c in categories]]
        scale = float(np.abs(row).max())
        worst = max(worst, float(np.abs(got - expected).max()) / scale,
                    float(np.abs(got - at_index).max()) / scale)
        assert [c.category_name for c in categories] == [LABELS[c.index] for c in categories]
    assert worst <= 1e-6, worst
    return worst


@pytest.fixture(scope="module")
def client() -> Path:
    """The MediaPipe venv, made by the project's script (fails, never skips, if it cannot)."""
    try:
        return mediapipe_runner.ensure_venv()
    except mediapipe_runner.MediaPipeUnavailableError as error:
        pytest.fail(f"The MediaPipe client environment could not be made: {error}")


@pytest.fixture(scope="module")
def ghostnet() -> keras.Model:
    return peaked_ghostnet(0.5, SIZE, len(LABELS))


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """Three RGB uint8 images at the model size."""
    generated = synthetic_images(3, SIZE, seed=5)()
    return np.stack([np.clip(np.rint(image), 0, 255) for image in generated]).astype(np.uint8)


@pytest.fixture(scope="module")
def exported(ghostnet: keras.Model) -> dict[str, bytes]:
    """fp32, fp16 and int8 with uint8 input/output (the Android default), with metadata."""
    models = conversion.convert_modes(ghostnet, ("fp32", "fp16", "int8"),
                                      synthetic_images(16, SIZE, seed=1), io="uint8")
    models["int8_uint8_io"] = models.pop("int8")
    assert verify.float_compute_ops(models["int8_uint8_io"], float_io=False) == []
    return {mode: _with_metadata(data, f"ghostnet_050_{mode}") for mode, data in models.items()}


# ---------------------------------------------------------------------------------------------
# Metadata (no MediaPipe needed)


def test_metadata_round_trip_labels_and_parser_version() -> None:
    plain = conversion.convert(_tiny_model(), "fp32")
    labels = ["cat", "dog", "bird", "fish", "frog"]
    data = metadata.with_image_classifier_metadata(
        plain, labels, name="tiny", description="d", version="2", author="a", license="MIT")
    read = metadata.read_metadata(data)
    assert read == metadata.image_classifier_metadata(
        plain, 5, name="tiny", description="d", version="2", author="a", license="MIT")
    assert read["min_parser_version"] == "1.0.0"
    (image,) = read["subgraph_metadata"][0]["input_tensor_metadata"]
    assert image["content"]["content_properties"] == {"ImageProperties": {"color_space": "RGB"}}
    assert image["process_units"] == [
        {"options": {"NormalizationOptions": {"mean": [0.0], "std": [1.0]}}}]
    assert image["stats"] == {"max": [255.0], "min": [0.0]}
    (scores,) = read["subgraph_metadata"][0]["output_tensor_metadata"]
    assert scores["name"] == "probabilities"  # the graph ends in SOFTMAX
    assert scores["associated_files"][0]["type"] == "TENSOR_AXIS_LABELS"
    assert metadata.labels(data) == labels
    assert metadata.associated_files(data) == {"labels.txt": b"cat\ndog\nbird\nfish\nfrog\n"}
    assert metadata.read_metadata(plain) is None

    # Embedding changes no weight: LiteRT computes the same outputs.
    image_batch = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.uint8)
    np.testing.assert_array_equal(_litert_scores(data, image_batch),
                                  _litert_scores(plain, image_batch))
    # Writing again replaces the metadata and the packed files (one entry, one labels file).
    again = metadata.with_image_classifier_metadata(data, [x.upper() for x in labels], name="t2")
    assert metadata.read_metadata(again)["name"] == "t2"
    assert metadata.labels(again) == [x.upper() for x in labels]
    assert list(metadata.associated_files(again)) == ["labels.txt"]
    logits = conversion.convert(_tiny_model(activation=None), "fp32")
    md = metadata.image_classifier_metadata(logits, 5, name="logits")
    assert md["subgraph_metadata"][0]["output_tensor_metadata"][0]["name"] == "logits"


def test_metadata_rejects_bad_labels_and_models() -> None:
    plain = conversion.convert(_tiny_model(), "fp32")
    with pytest.raises(metadata.MetadataError, match="5 classes but 4 labels"):
        metadata.with_image_classifier_metadata(plain, ["a", "b", "c", "d"], name="x")
    with pytest.raises(metadata.MetadataError, match="without newlines"):
        metadata.with_image_classifier_metadata(plain, ["a", "b\nc", "d", "e", "f"], name="x")
    with pytest.raises(metadata.MetadataError, match="model name"):
        metadata.with_image_classifier_metadata(plain, list("abcde"), name="")
    with pytest.raises(metadata.MetadataError, match="Not a TFLite model"):
        metadata.with_image_classifier_metadata(b"not a model at all", list("abcde"), name="x")
    with pytest.raises(metadata.MetadataError, match="names the associated files"):
        metadata.embed(plain, metadata.image_classifier_metadata(plain, 5, name="x"), {})


def test_min_parser_version_follows_the_schema_added_in_comments() -> None:
    schema = metadata.schema()
    assert schema.file_identifier == b"M001" and schema.version == "1.5.0"
    # Field ids are declaration order; a union field takes two (type, value).
    content = {f.name: f.id for f in schema.tables["Content"].fields}
    assert content == {"content_properties": 0, "range": 2}
    assert metadata.min_parser_version({"name": "m"}) == "1.0.0"
    versioned_file = {"associated_files": [{"name": "f", "version": "3"}]}
    assert metadata.min_parser_version(versioned_file) == "1.4.1"  # AssociatedFile.version
    vocabulary = {"associated_files": [{"name": "v", "type": "VOCABULARY"}]}
    assert metadata.min_parser_version(vocabulary) == "1.0.1"  # enum value
    regex = {"subgraph_metadata": [{"input_process_units": [
        {"options": {"RegexTokenizerOptions": {"delim_regex_pattern": " "}}}]}]}
    assert metadata.min_parser_version(regex) == "1.2.1"  # union member
    custom = {"subgraph_metadata": [{"custom_metadata": [{"name": "c", "data": [1, 2]}]}]}
    assert metadata.min_parser_version(custom) == "1.5.0"
    assert schema.decode(schema.encode(custom)) == custom
    with pytest.raises(flatbuffer_schema.SchemaError, match="no field"):
        schema.encode({"nmae": "typo"})


# ---------------------------------------------------------------------------------------------
# MediaPipe ImageClassifier


def test_classify_without_client_environment_names_the_make_target(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(mediapipe_runner.VENV_ENV, str(tmp_path / "missing"))
    with pytest.raises(mediapipe_runner.MediaPipeUnavailableError, match="make mediapipe-venv"):
        mediapipe_runner.classify(tmp_path / "m.tflite", [np.zeros((8, 8, 3), np.uint8)])


def test_client_environment_is_made_once(client: Path, monkeypatch) -> None:
    venv = mediapipe_runner.venv_dir()
    before = sorted((path.name, path.stat().st_mtime_ns) for path in venv.iterdir())
    # with its stamp there, the script makes nothing: an interpreter it cannot run goes unused
    monkeypatch.setenv("PYTHON", "/nonexistent/python3")
    assert mediapipe_runner.ensure_venv() == client
    assert sorted((path.name, path.stat().st_mtime_ns) for path in venv.iterdir()) == before


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["fp32", "fp16", "int8_uint8_io"])
def test_mediapipe_top_k_equals_litert(client, exported, images, mode, tmp_path) -> None:
    data = exported[mode]
    path = tmp_path / f"ghostnet_{mode}.tflite"
    path.write_bytes(data)
    result = mediapipe_runner.classify(path, list(images), top_k=TOP_K)
    scores = _litert_scores(data, images)
    assert len(set(np.argmax(scores, -1))) >= 2, "the images should not all get one top-1"
    _assert_same_top_k(result, scores)
    # MediaPipe's own generated metadata reader sees what we wrote.
    assert result.metadata == {
        "name": f"ghostnet_050_{mode}",
        "description": "GhostNet 0.5 test model",
        "version": "test",
        "author": "ghostnet_keras tests",
        "license": "Apache-2.0",
        "min_parser_version": "1.0.0",
        "input": {"name": "image", "color_space": 1, "mean": [0.0], "std": [1.0]},
        "output": {"name": "logits", "associated_files": [{"name": "labels.txt", "type": 2}]},
    }


@pytest.mark.slow
def test_mediapipe_stretches_other_sizes_without_crop(client, exported, images, tmp_path) -> None:
    """A 128x64 image whose rows come in equal pairs: a bilinear stretch to 64x64 (no crop)
    gives back the 64x64 image exactly; a centre crop would not."""
    path = tmp_path / "ghostnet_fp32.tflite"
    path.write_bytes(exported["fp32"])
    tall = [np.repeat(image, 2, axis=0) for image in images[:2]]
    result = mediapipe_runner.classify(path, tall, top_k=TOP_K)
    _assert_same_top_k(result, _litert_scores(exported["fp32"], images[:2]))


@pytest.mark.slow
def test_mediapipe_accepts_qat_int8(client, ghostnet, images, tmp_path) -> None:
    require_module("tensorflow_model_optimization", "needs the `qat` extra")
    from ghostnet_keras.training.qat_export import convert_qat
    from ghostnet_keras.training.qat_model import build_qat_model

    qat_model = build_qat_model(ghostnet, width=0.5, num_classes=len(LABELS),
                                image_size=SIZE, dropout_rate=0.0)
    batch = np.stack(list(synthetic_images(8, SIZE, seed=2)()))
    for _ in range(3):  # training-mode passes set the fake-quant ranges
        qat_model(batch, training=True)
    data = _with_metadata(convert_qat(qat_model, io="uint8"), "ghostnet_050_qat_int8")
    assert verify.float_compute_ops(data, float_io=False) == []
    path = tmp_path / "ghostnet_qat_int8.tflite"
    path.write_bytes(data)
    result = mediapipe_runner.classify(path, list(images), top_k=TOP_K)
    _assert_same_top_k(result, _litert_scores(data, images))
    assert result.metadata["name"] == "ghostnet_050_qat_int8"


def test_mediapipe_refuses_int8_io_with_its_message(client, tmp_path) -> None:
    plain = conversion.convert(_tiny_model(), "int8", synthetic_images(4, 32), "int8")
    path = tmp_path / "int8_io.tflite"
    path.write_bytes(metadata.with_image_classifier_metadata(plain, list("abcde"), name="x"))
    with pytest.raises(mediapipe_runner.MediaPipeError, match="uint8/float32, got INT8"):
        mediapipe_runner.classify(path, [np.zeros((32, 32, 3), np.uint8)])
