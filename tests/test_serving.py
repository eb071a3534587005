"""TF Serving export: signatures, preprocessing parity, protos, REST JSON, warmup, CLI, atomicity.

No TF Serving binary is needed: the tests load the SavedModel with `tf.saved_model.load` and
turn `PredictRequest`s and REST JSON bodies into tensors the way the model server does.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import app

from tests.conftest import require_module

require_module("tensorflow_serving.apis", "needs the serving extra (tensorflow-serving-api)")
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from ghostnet_keras import imagenet, preprocessing
from ghostnet_keras.cli import export_serving as serving_cli
from ghostnet_keras.export import contract as heads
from ghostnet_keras.export import serving
from ghostnet_keras.models.ghostnet import GhostNet
from ghostnet_keras.synthetic_images import synthetic_image

REPO_DIR = Path(__file__).resolve().parents[1]
IMAGE_SIZE = 224
TOP_K = 5


# ----------------------------------------------------------------------------- helpers


def _png(image: np.ndarray) -> bytes:
    return tf.io.encode_png(image).numpy()


def _jpeg(image: np.ndarray) -> bytes:
    return tf.io.encode_jpeg(image, quality=90).numpy()


def _keras_reference(model: keras.Model, encoded: list[bytes], decoder) -> np.ndarray:
    """The Keras model on the pixels decoded by TF's `decoder` and preprocessed the same way.

    `preprocessing.eval_preprocess` is unit-tested in test_preprocessing.py; the tests below
    check that the `image_bytes` signature applies it.
    """
    crops = [
        preprocessing.eval_preprocess(decoder(data, channels=3), IMAGE_SIZE) for data in encoded
    ]
    return keras.ops.convert_to_numpy(model(tf.stack(crops), training=False))


def _tiny_classifier(activation: str | None = "softmax", classes: int = 3, seed: int = 0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1.0 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(classes, activation=activation, name="predictions")(x)
    return keras.Model(inputs, outputs, name="tiny")


def _leftovers(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir() if p.name.startswith("."))


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def ghostnet() -> keras.Model:
    """GhostNet 0.5 with a recalibrated classifier.

    With random weights the pooled features are tiny (~1e-4) and almost image-independent, so
    the probabilities would be ~uniform and every image would get the same top-k. The
    classifier is rescaled on the features of a few calibration images (centred on their
    mean), so that the outputs are peaked and depend on the image.
    """
    keras.utils.set_random_seed(1234)
    return peaked_classifier(GhostNet(width=0.5, input_shape=(None, None, 3)), 224)


def peaked_classifier(model: keras.Model, size: int) -> keras.Model:
    """Rescales `model`'s `predictions` layer on calibration images of `size` (see above)."""
    features = keras.Model(model.input, model.get_layer("flatten").output)
    calibration = np.stack([synthetic_image(size, size, seed) for seed in range(10, 16)])
    f = keras.ops.convert_to_numpy(features(calibration.astype(np.float32))).astype(np.float64)
    mean = f.mean(axis=0)
    spread = np.linalg.norm(f - mean, axis=1).mean()
    dense = model.get_layer("predictions")
    kernel = np.random.default_rng(0).normal(0.0, 4.0 / spread, dense.kernel.shape)
    bias = -mean @ kernel
    dense.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return model


@pytest.fixture(scope="module")
def export_dir(ghostnet, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("serving") / "ghostnet"
    return serving.export_serving_model(ghostnet, base, version=1, top_k=TOP_K)


@pytest.fixture(scope="module")
def loaded(export_dir):
    return tf.saved_model.load(os.fspath(export_dir))


class SessionServer:
    """Loads the export the way TF Serving's C++ loader does: a TF1 session over the MetaGraph,
    variables restored from the checkpoint, signatures run by tensor name (no Python objects).
    """

    def __init__(self, export_dir: Path) -> None:
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.load(
                self.session, [tf.saved_model.SERVING], os.fspath(export_dir)
            )
        self.signatures = dict(meta_graph.signature_def)

    def run(self, signature_name: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        signature = self.signatures[signature_name]
        feed_dict = {signature.inputs[name].name: value for name, value in feeds.items()}
        fetches = {name: info.name for name, info in signature.outputs.items()}
        return self.session.run(fetches, feed_dict=feed_dict)

    def close(self) -> None:
        self.session.close()


@pytest.fixture(scope="module")
def server(export_dir):
    server = SessionServer(export_dir)
    yield server
    server.close()


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    return {
        "landscape": synthetic_image(300, 500, seed=1),
        "portrait": synthetic_image(451, 257, seed=2),
        "small": synthetic_image(97, 131, seed=3),
        "square": synthetic_image(256, 256, seed=4),
    }


# ----------------------------------------------------------------------------- export + signatures


def test_export_layout(export_dir):
    assert export_dir.name == "1"
    assert sorted(p.name for p in export_dir.parent.iterdir()) == ["1"]  # no temp folders
    for name in ("saved_model.pb", "variables", "assets.extra"):
        assert (export_dir / name).exists(), name
    extra = export_dir / serving.WARMUP_DIR
    assert (extra / serving.WARMUP_FILE).stat().st_size > 0
    labels = (extra / serving.LABELS_FILE).read_text(encoding="utf-8").splitlines()
    assert labels == [name for _, name in imagenet.class_index()]


def test_signatures_and_pinned_names(loaded):
    assert set(serving.SIGNATURE_NAMES) <= set(loaded.signatures)
    inputs = {
        serving.SERVING_SIGNATURE: (serving.IMAGE_BYTES_INPUT, tf.string, [None]),
        serving.IMAGES_SIGNATURE: (serving.IMAGES_INPUT, tf.float32, [None, None, None, 3]),
    }
    for name, (input_name, dtype, shape) in inputs.items():
        signature = loaded.signatures[name]
        _, specs = signature.structured_input_signature
        assert list(specs) == [input_name]
        assert specs[input_name].dtype == dtype
        assert specs[input_name].shape.as_list() == shape
        outputs = signature.structured_outputs
        assert set(outputs) == set(serving.OUTPUT_NAMES)
        assert outputs["probabilities"].dtype == tf.float32
        assert outputs["probabilities"].shape.as_list() == [None, 1000]
        assert outputs["top_k_indices"].dtype == tf.int32
        assert outputs["top_k_scores"].dtype == tf.float32
        assert outputs["top_k_labels"].dtype == tf.string
        assert outputs["top_k_labels"].shape.as_list() == [None, TOP_K]


def _check_against_reference(result: dict, reference: np.ndarray) -> None:
    probabilities = result["probabilities"].numpy()
    np.testing.assert_allclose(probabilities, reference, atol=1e-4, rtol=1e-3)
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    expected_top = np.argsort(-reference, axis=-1)[:, :TOP_K]
    indices = result["top_k_indices"].numpy()
    np.testing.assert_array_equal(indices, expected_top)
    np.testing.assert_allclose(
        result["top_k_scores"].numpy(), np.take_along_axis(probabilities, indices, -1)
    )
    names = np.array([name for _, name in imagenet.class_index()])
    labels = result["top_k_labels"].numpy().astype(str)
    np.testing.assert_array_equal(labels, names[indices])


def test_png_bytes_match_keras_model(ghostnet, loaded, images):
    serve = loaded.signatures[serving.SERVING_SIGNATURE]
    tops = set()
    for image in images.values():
        data = _png(image)
        result = serve(image_bytes=tf.constant([data]))
        _check_against_reference(result, _keras_reference(ghostnet, [data], tf.io.decode_png))
        tops.add(int(result["top_k_indices"][0, 0]))
    assert len(tops) > 1  # the outputs depend on the image


def test_jpeg_bytes_match_keras_model_on_tf_decoded_pixels(ghostnet, loaded, images):
    serve = loaded.signatures[serving.SERVING_SIGNATURE]
    encoded = [_jpeg(image) for image in images.values()]
    for data in encoded:
        result = serve(image_bytes=tf.constant([data]))
        _check_against_reference(result, _keras_reference(ghostnet, [data], tf.io.decode_jpeg))


def test_mixed_sizes_and_formats_in_one_batch(ghostnet, loaded, images):
    serve = loaded.signatures[serving.SERVING_SIGNATURE]
    batch = [_png(images["landscape"]), _jpeg(images["portrait"]), _png(images["small"])]
    result = serve(image_bytes=tf.constant(batch))
    assert result["probabilities"].shape == (3, 1000)
    singles = np.concatenate([
        serve(image_bytes=tf.constant([data]))["probabilities"].numpy() for data in batch
    ])
    np.testing.assert_allclose(result["probabilities"].numpy(), singles, atol=1e-5, rtol=1e-4)
    reference = np.concatenate([
        _keras_reference(ghostnet, [batch[0]], tf.io.decode_png),
        _keras_reference(ghostnet, [batch[1]], tf.io.decode_jpeg),
        _keras_reference(ghostnet, [batch[2]], tf.io.decode_png),
    ])
    _check_against_reference(result, reference)


def test_predict_images_matches_keras_model(ghostnet, loaded, images):
    crops = tf.stack([
        preprocessing.eval_preprocess(tf.constant(images[k]), IMAGE_SIZE)
        for k in ("square", "small")
    ])
    result = loaded.signatures[serving.IMAGES_SIGNATURE](images=crops)
    _check_against_reference(result, keras.ops.convert_to_numpy(ghostnet(crops)))
    # Other (already cropped) sizes are accepted too: the network is fully convolutional.
    other = tf.random.stateless_uniform([1, 160, 192, 3], seed=[1, 2], maxval=255.0)
    result = loaded.signatures[serving.IMAGES_SIGNATURE](images=other)
    _check_against_reference(result, keras.ops.convert_to_numpy(ghostnet(other)))


@pytest.mark.parametrize(
    "kind, message",
    [
        ("empty", "empty string (no image data) at batch index] [1]"),
        ("garbage", "Unknown image file format"),
        ("truncated_jpeg", "Invalid JPEG data"),
        ("truncated_png", "Invalid PNG data"),
    ],
)
def test_bad_image_bytes_fail_with_invalid_argument(loaded, images, kind, message):
    good = _png(images["small"])
    jpeg = _jpeg(images["small"])
    bad = {
        "empty": b"",
        "garbage": b"this is not an image",
        "truncated_jpeg": jpeg[: len(jpeg) // 2],
        "truncated_png": good[: len(good) // 2],
    }[kind]
    with pytest.raises(tf.errors.InvalidArgumentError, match=re.escape(message)):
        loaded.signatures[serving.SERVING_SIGNATURE](image_bytes=tf.constant([good, bad]))


# ----------------------------------------------------------------------------- client formats


def _serve_predict_request(server: SessionServer, request: predict_pb2.PredictRequest):
    """What the model server does with a PredictRequest: protos -> session run -> protos."""
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    feeds = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
    outputs = server.run(request.model_spec.signature_name or "serving_default", feeds)
    response = predict_pb2.PredictResponse(model_spec=request.model_spec)
    for name, value in outputs.items():
        response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
    return predict_pb2.PredictResponse.FromString(response.SerializeToString())


def test_grpc_predict_request(server, loaded, images):
    data = [_jpeg(images["landscape"]), _png(images["portrait"])]
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "ghostnet"
    request.model_spec.signature_name = serving.SERVING_SIGNATURE
    request.inputs[serving.IMAGE_BYTES_INPUT].CopyFrom(tf.make_tensor_proto(data))
    response = _serve_predict_request(server, request)
    assert set(response.outputs) == set(serving.OUTPUT_NAMES)
    labels = tf.make_ndarray(response.outputs["top_k_labels"])
    scores = tf.make_ndarray(response.outputs["top_k_scores"])
    assert labels.shape == scores.shape == (2, TOP_K)
    expected = loaded.signatures[serving.SERVING_SIGNATURE](image_bytes=tf.constant(data))
    np.testing.assert_array_equal(labels, expected["top_k_labels"].numpy())
    np.testing.assert_allclose(scores, expected["top_k_scores"].numpy(), atol=1e-6)

    crops = tf.stack([preprocessing.eval_preprocess(tf.constant(images["small"]), IMAGE_SIZE)])
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "ghostnet"
    request.model_spec.signature_name = serving.IMAGES_SIGNATURE
    request.inputs[serving.IMAGES_INPUT].CopyFrom(tf.make_tensor_proto(crops.numpy()))
    response = _serve_predict_request(server, request)
    expected = loaded.signatures[serving.IMAGES_SIGNATURE](images=crops)["probabilities"]
    np.testing.assert_allclose(
        tf.make_ndarray(response.outputs["probabilities"]), expected.numpy(), atol=1e-6
    )


def _json_value(value):
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def _rest_predict(loaded, body: str) -> dict:
    """TF Serving's REST `:predict` JSON mapping, row ("instances") and columnar ("inputs")."""
    request = json.loads(body)
    signature = loaded.signatures[request.get("signature_name", "serving_default")]
    if "instances" in request:
        names = list(request["instances"][0])
        feeds = {n: [_json_value(row[n]) for row in request["instances"]] for n in names}
    else:
        feeds = {n: _json_value(v) for n, v in request["inputs"].items()}
    tensors = {name: tf.constant(value) for name, value in feeds.items()}
    outputs = {name: value.numpy() for name, value in signature(**tensors).items()}

    def jsonable(array):
        return array.astype(str).tolist() if array.dtype == object else array.tolist()

    if "instances" in request:
        rows = len(next(iter(outputs.values())))
        answer = {
            "predictions": [{k: jsonable(v[i]) for k, v in outputs.items()} for i in range(rows)]
        }
    else:
        answer = {"outputs": {k: jsonable(v) for k, v in outputs.items()}}
    return json.loads(json.dumps(answer))


def test_rest_json_body_with_b64_images(loaded, images):
    data = [_jpeg(images["square"]), _png(images["small"])]
    row_body = json.dumps({
        "signature_name": "serving_default",
        "instances": [{"image_bytes": {"b64": base64.b64encode(d).decode()}} for d in data],
    })
    answer = _rest_predict(loaded, row_body)
    predictions = answer["predictions"]
    assert len(predictions) == 2
    assert set(predictions[0]) == set(serving.OUTPUT_NAMES)
    expected = loaded.signatures[serving.SERVING_SIGNATURE](image_bytes=tf.constant(data))
    for i, prediction in enumerate(predictions):
        assert prediction["top_k_indices"] == expected["top_k_indices"].numpy()[i].tolist()
        labels = expected["top_k_labels"].numpy()[i].astype(str).tolist()
        assert prediction["top_k_labels"] == labels
        assert len(prediction["probabilities"]) == 1000
    column_body = json.dumps({
        "signature_name": "serving_default",
        "inputs": {"image_bytes": [{"b64": base64.b64encode(d).decode()} for d in data]},
    })
    outputs = _rest_predict(loaded, column_body)["outputs"]
    assert outputs["top_k_labels"] == [p["top_k_labels"] for p in predictions]


def test_warmup_records_replay(export_dir, server):
    path = export_dir / serving.WARMUP_DIR / serving.WARMUP_FILE
    records = [r.numpy() for r in tf.data.TFRecordDataset(os.fspath(path))]
    assert 1 <= len(records) <= 1000  # TF Serving reads at most 1000 warmup records.
    seen = set()
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record)
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        assert request.model_spec.name == serving.DEFAULT_MODEL_NAME
        seen.add(request.model_spec.signature_name)
        response = _serve_predict_request(server, request)
        probabilities = tf.make_ndarray(response.outputs["probabilities"])
        np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    assert seen == set(serving.SIGNATURE_NAMES)


def test_session_loader_like_tf_serving(server, loaded, images):
    """Regression: tracking Keras variables instead of the captured tf.Variables gave an
    export that `tf.saved_model.load` runs but a session (TF Serving) fails on."""
    data = np.array([_png(images["landscape"]), _jpeg(images["small"])], dtype=object)
    outputs = server.run(serving.SERVING_SIGNATURE, {serving.IMAGE_BYTES_INPUT: data})
    expected = loaded.signatures[serving.SERVING_SIGNATURE](image_bytes=tf.constant(data))
    np.testing.assert_allclose(
        outputs["probabilities"], expected["probabilities"].numpy(), atol=1e-6
    )
    np.testing.assert_array_equal(outputs["top_k_labels"], expected["top_k_labels"].numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match="Unknown image file format"):
        server.run(serving.SERVING_SIGNATURE, {serving.IMAGE_BYTES_INPUT: [b"not an image"]})
    crops = np.zeros([1, 64, 64, 3], np.float32)
    outputs = server.run(serving.IMAGES_SIGNATURE, {serving.IMAGES_INPUT: crops})
    assert outputs["top_k_indices"].dtype == np.int32 and outputs["top_k_scores"].shape == (1, 5)


def test_variables_are_stored_once(ghostnet, export_dir):
    stored = tf.train.list_variables(os.fspath(export_dir / "variables" / "variables"))
    values = sum(int(np.prod(shape)) for name, shape in stored if "VARIABLE_VALUE" in name)
    assert values == ghostnet.count_params()


@pytest.mark.slow
def test_saved_model_cli_show(export_dir):
    cli = Path(sys.executable).with_name("saved_model_cli")
    if not cli.exists():
        pytest.skip("saved_model_cli is not installed beside the interpreter")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [os.fspath(cli), "show", "--dir", os.fspath(export_dir), "--all"],
        capture_output=True, text=True, env=env, check=True, timeout=300,
    )
    out = proc.stdout
    for name in serving.SIGNATURE_NAMES:
        assert f"signature_def['{name}']" in out
    info = "tensor_info:\n        dtype: {}\n        shape: {}"
    assert "inputs['image_bytes'] " + info.format("DT_STRING", "(-1)") in out
    assert "inputs['images'] " + info.format("DT_FLOAT", "(-1, -1, -1, 3)") in out
    for name, dtype in zip(
        serving.OUTPUT_NAMES, ("DT_FLOAT", "DT_INT32", "DT_FLOAT", "DT_STRING"), strict=True
    ):
        assert out.count(f"outputs['{name}'] tensor_info:\n        dtype: {dtype}") == 2
    assert out.count("Method name is: tensorflow/serving/predict") == 2


# ----------------------------------------------------------------------------- small models


@pytest.mark.parametrize("activation, is_logits", [("softmax", False), (None, True)])
def test_logits_and_labels(tmp_path, activation, is_logits):
    model = _tiny_classifier(activation)
    assert heads.detect_outputs_are_logits(model) is is_logits
    exported = serving.export_serving_model(
        model, tmp_path / "m", version=3, image_size=32, top_k=2, labels=["cat", "dog", "bird"]
    )
    assert exported == tmp_path / "m" / "3"
    loaded = tf.saved_model.load(os.fspath(exported))
    crops = tf.random.stateless_uniform([4, 32, 32, 3], seed=[3, 4], maxval=255.0)
    result = loaded.signatures[serving.IMAGES_SIGNATURE](images=crops)
    raw = keras.ops.convert_to_numpy(model(crops))
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(raw)) if is_logits else raw
    np.testing.assert_allclose(result["probabilities"].numpy(), expected, atol=1e-6)
    indices = result["top_k_indices"].numpy()
    assert indices.shape == (4, 2)
    np.testing.assert_array_equal(
        result["top_k_labels"].numpy().astype(str), np.array(["cat", "dog", "bird"])[indices]
    )
    png = _png(synthetic_image(40, 50, seed=5))
    assert loaded.signatures["serving_default"](image_bytes=[png])["probabilities"].shape == (1, 3)


def test_outputs_are_logits_flag_overrides_detection(tmp_path):
    model = _tiny_classifier("sigmoid")
    with pytest.raises(ValueError, match="sigmoid"):
        heads.detect_outputs_are_logits(model)
    with pytest.raises(ValueError, match="outputs_are_logits"):
        serving.export_serving_model(model, tmp_path / "m", image_size=32)
    assert not (tmp_path / "m").exists()
    exported = serving.export_serving_model(
        model, tmp_path / "m", image_size=32, outputs_are_logits=True, warmup=False
    )
    assert not (exported / serving.WARMUP_DIR / serving.WARMUP_FILE).exists()
    loaded = tf.saved_model.load(os.fspath(exported))
    crops = tf.random.stateless_uniform([2, 32, 32, 3], seed=[5, 6], maxval=255.0)
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(model(crops)))
    result = loaded.signatures[serving.IMAGES_SIGNATURE](images=crops)
    np.testing.assert_allclose(result["probabilities"].numpy(), expected, atol=1e-6)
    labels = result["top_k_labels"].numpy().astype(str)
    assert set(labels.ravel()) <= {"class_0", "class_1", "class_2"}


def test_detect_outputs_by_probing_unknown_output_layers():
    class Plain(keras.layers.Layer):
        def __init__(self, softmax: bool, **kwargs):
            super().__init__(**kwargs)
            self.softmax = softmax

        def call(self, x):
            return keras.ops.softmax(x) if self.softmax else x

    for softmax in (True, False):
        inputs = keras.Input((None, None, 3))
        x = keras.layers.GlobalAveragePooling2D()(inputs)
        x = keras.layers.Dense(4)(x)
        model = keras.Model(inputs, Plain(softmax)(x))
        assert heads.detect_outputs_are_logits(model) is (not softmax)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(inputs))
    softmax_layer_model = keras.Model(inputs, keras.layers.Softmax()(x))
    assert heads.detect_outputs_are_logits(softmax_layer_model) is False


def test_invalid_arguments_write_nothing(tmp_path):
    model = _tiny_classifier()
    base = tmp_path / "m"
    cases = [
        (dict(labels=["a", "b"]), "2 labels; the model has 3 classes"),
        (dict(top_k=4), "top_k"),
        (dict(version=-1), "version"),
        (dict(image_size=0), "image_size"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            serving.export_serving_model(model, base, **kwargs)
    inputs = keras.Input((64, 64, 3))
    fixed = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(inputs)))
    with pytest.raises(ValueError, match="fixed input size 64"):
        serving.export_serving_model(fixed, base, image_size=224)
    inputs = keras.Input((None, None, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)
    two_heads = keras.Model(inputs, [keras.layers.Dense(2)(pooled), keras.layers.Dense(3)(pooled)])
    with pytest.raises(ValueError, match="one output"):
        serving.export_serving_model(two_heads, base)
    assert not base.exists()


def test_labels_file(tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("chat\nchien\noiseau\n\n", encoding="utf-8")
    assert heads.read_labels(labels) == ("chat", "chien", "oiseau")
    exported = serving.export_serving_model(
        _tiny_classifier(), tmp_path / "m", image_size=32, top_k=3, labels=labels, warmup=False
    )
    written = (exported / serving.WARMUP_DIR / serving.LABELS_FILE).read_text(encoding="utf-8")
    assert written == "chat\nchien\noiseau\n"
    assert heads.default_labels(3) == ("class_0", "class_1", "class_2")
    assert heads.default_labels(1000)[0] == imagenet.class_index()[0][1]


def test_refuses_to_overwrite_unless_asked(tmp_path):
    model = _tiny_classifier()
    base = tmp_path / "m"
    first = serving.export_serving_model(model, base, image_size=32, warmup=False)
    marker = first / "marker"
    marker.write_text("first export")
    with pytest.raises(FileExistsError, match="overwrite"):
        serving.export_serving_model(model, base, image_size=32, warmup=False)
    assert marker.exists() and _leftovers(base) == []
    again = serving.export_serving_model(model, base, image_size=32, overwrite=True)
    assert again == first and not marker.exists()
    assert (again / "saved_model.pb").exists()
    assert sorted(p.name for p in base.iterdir()) == ["1"]


def test_failed_export_leaves_nothing(tmp_path, monkeypatch):
    model = _tiny_classifier()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(serving, "_write_extras", broken)
    base = tmp_path / "new_base"
    with pytest.raises(RuntimeError, match="disk full"):
        serving.export_serving_model(model, base, image_size=32)
    assert not base.exists()  # created by the call, removed again
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "7").mkdir()
    with pytest.raises(RuntimeError, match="disk full"):
        serving.export_serving_model(model, existing, version=7, image_size=32, overwrite=True)
    assert sorted(p.name for p in existing.iterdir()) == ["7"]  # the old version is kept


# ----------------------------------------------------------------------------- command line


def test_command_exports_keras_file(tmp_path):
    model_path = tmp_path / "tiny.keras"
    _tiny_classifier(None).save(model_path)
    base = tmp_path / "export"
    arguments = {"model": model_path, "export_base": base, "image_size": 32, "top_k": 2}
    assert serving_cli.export(**arguments, version=4) == base / "4"
    loaded = tf.saved_model.load(os.fspath(base / "4"))
    png = _png(synthetic_image(50, 40, seed=6))
    result = loaded.signatures["serving_default"](image_bytes=[png])
    assert result["top_k_labels"].shape == (1, 2)
    np.testing.assert_allclose(result["probabilities"].numpy().sum(), 1.0, atol=1e-5)
    with pytest.raises(app.UsageError, match="already exists"):
        serving_cli.export(**arguments, version=4)
    serving_cli.export(**arguments, version=4, overwrite=True, warmup=False)
    assert not (base / "4" / serving.WARMUP_DIR / serving.WARMUP_FILE).exists()


def test_command_errors_write_nothing(tmp_path):
    base = tmp_path / "export"
    with pytest.raises(app.UsageError, match="export_base"):
        serving_cli.export(model=tmp_path / "m.keras", export_base=None)
    with pytest.raises(app.UsageError, match="No such model file"):
        serving_cli.export(model=tmp_path / "missing.keras", export_base=base)
    with pytest.raises(app.UsageError, match="No such weights file"):
        serving_cli.export(width=0.5, weights=tmp_path / "x.weights.h5", export_base=base)
    with pytest.raises(app.UsageError, match="not both"):
        serving_cli.export(model=tmp_path / "m.keras", width=0.5, export_base=base)
    with pytest.raises(app.UsageError, match="--width and --weights"):
        serving_cli.export(export_base=base)
    assert not base.exists()


def test_ghostnet_from_width_and_weights(ghostnet, tmp_path):
    weights = tmp_path / "ghostnet_050.weights.h5"
    ghostnet.save_weights(weights)
    rebuilt = serving_cli.load_model_for_export(width=0.5, weights=weights)
    assert rebuilt.input_shape == (None, None, None, 3)
    crops = tf.random.stateless_uniform([1, 96, 128, 3], seed=[7, 8], maxval=255.0)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(rebuilt(crops)), keras.ops.convert_to_numpy(ghostnet(crops)),
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="either"):
        serving_cli.load_model_for_export(tmp_path / "m.keras", width=0.5, weights=weights)
    with pytest.raises(ValueError, match="both a width and weights"):
        serving_cli.load_model_for_export(weights=weights)


@pytest.mark.slow
def test_cli_subprocess_exports_ghostnet_keras_file(ghostnet, loaded, tmp_path, images):
    crops = tf.stack([preprocessing.eval_preprocess(tf.constant(images["portrait"]), IMAGE_SIZE)])
    expected = loaded.signatures[serving.IMAGES_SIGNATURE](images=crops)["probabilities"].numpy()
    model_path = tmp_path / "ghostnet_050.keras"
    ghostnet.save(model_path)
    base = tmp_path / "export"
    env = {**os.environ, "PYTHONPATH": os.fspath(REPO_DIR), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-m", "ghostnet_keras.cli.export_serving", f"--model={model_path}",
         f"--export_base={base}", "--version=2", "--top_k=3"],
        capture_output=True, text=True, env=env, cwd=REPO_DIR, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"wrote {base / '2'}" in proc.stdout
    signature = tf.saved_model.load(os.fspath(base / "2")).signatures[serving.IMAGES_SIGNATURE]
    result = signature(images=crops)
    np.testing.assert_allclose(result["probabilities"].numpy(), expected, atol=1e-6)
    assert result["top_k_labels"].shape == (1, 3)
    again = subprocess.run([*proc.args, "extra"], capture_output=True, text=True, env=env,
                           cwd=REPO_DIR, timeout=600)
    assert again.returncode != 0 and "Unexpected arguments: extra" in again.stderr
