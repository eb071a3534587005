"""Exports a GhostNet (or any Keras image classifier) as a TensorFlow Serving model.

`export_serving_model(model, export_base, version)` writes a SavedModel to
`<export_base>/<version>/` through a hidden temporary folder renamed into place, with two
signatures of one pinned contract: `serving_default` takes JPEG/PNG/GIF/BMP bytes
(`image_bytes`, decoded and preprocessed in the graph by `ghostnet_keras.preprocessing`),
`predict_images` takes float32 RGB 0-255 images; both return `OUTPUT_NAMES`. Every request is
bounded by `RequestLimits` fixed at export (batch size, bytes of one image, and pixels, read
from the image header before decoding: `ghostnet_keras.export.image_header`); a request over them
fails with INVALID_ARGUMENT naming the limit. Warm-up requests, `labels.txt` and the limits
(`request_limits.json`) go to `assets.extra/`. Command line: `ghostnet-export-serving`. The
deployment guide (Docker, REST, gRPC, what is refused) is docs/serving.md.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ghostnet_keras.backends import require_tensorflow

require_tensorflow("The TF Serving export (ghostnet_keras.export.serving)")

import tensorflow as tf  # noqa: E402
from absl import logging  # noqa: E402

from ghostnet_keras import preprocessing  # noqa: E402
from ghostnet_keras.data_format import to_channels_last  # noqa: E402
from ghostnet_keras.export import contract as heads  # noqa: E402
from ghostnet_keras.export import image_header  # noqa: E402
from ghostnet_keras.export.request_limits import (  # noqa: E402
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_PIXELS,
    RequestLimits,
)
from ghostnet_keras.synthetic_images import synthetic_image  # noqa: E402

SERVING_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "predict_images"
SIGNATURE_NAMES = (SERVING_SIGNATURE, IMAGES_SIGNATURE)
IMAGE_BYTES_INPUT = "image_bytes"
IMAGES_INPUT = "images"
# The output contract, pinned: every export (float, QAT-trained, logits or softmax) has these.
OUTPUT_NAMES = ("probabilities", "top_k_indices", "top_k_scores", "top_k_labels")
DEFAULT_IMAGE_SIZE = 224
DEFAULT_TOP_K = 5
DEFAULT_MODEL_NAME = "ghostnet"
WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
LABELS_FILE = "labels.txt"
LIMITS_FILE = "request_limits.json"
def _decode_and_preprocess(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """JPEG/PNG/GIF/BMP bytes (scalar string) -> preprocessed `float32` crop."""
    image = tf.io.decode_image(
        image_bytes, channels=3, dtype=tf.uint8, expand_animations=False
    )
    crop = preprocessing.eval_preprocess(image, image_size)
    return tf.ensure_shape(crop, [image_size, image_size, 3])


def _num_classes(model: keras.Model) -> int:
    if len(model.outputs) != 1:
        raise ValueError(
            f"Expected a classifier with one output; the model has {len(model.outputs)}."
        )
    shape = tuple(model.outputs[0].shape)
    if len(shape) != 2 or shape[-1] is None:
        raise ValueError(
            f"Expected a classifier output of shape (batch, classes); got {shape}. Build the "
            "model with include_top=True."
        )
    return int(shape[-1])


def _resolve_image_size(model: keras.Model, image_size: int | None) -> int:
    height, width = heads.spatial_dims(model)
    fixed = None
    if height is not None or width is not None:
        if height != width:
            raise ValueError(
                f"The model's input is {height}x{width}; serving crops square images. Build "
                "it with input_shape=(None, None, 3) or a square size."
            )
        fixed = int(height)
    if image_size is None:
        return fixed or DEFAULT_IMAGE_SIZE
    if isinstance(image_size, bool) or int(image_size) != image_size or image_size < 1:
        raise ValueError(f"image_size must be a positive integer; received {image_size!r}.")
    if fixed is not None and int(image_size) != fixed:
        raise ValueError(
            f"image_size={image_size} does not match the model's fixed input size {fixed}."
        )
    return int(image_size)


def _resolve_labels(
    labels: Sequence[str] | str | os.PathLike[str] | None, num_classes: int
) -> tuple[str, ...]:
    if labels is None:
        return heads.default_labels(num_classes)
    if isinstance(labels, (str, os.PathLike)):
        names = heads.read_labels(labels)
        source = f"{os.fspath(labels)} has"
    else:
        names = tuple(str(name) for name in labels)
        source = "labels has"
    if len(names) != num_classes:
        raise ValueError(
            f"{source} {len(names)} labels; the model has {num_classes} classes."
        )
    return names


class _ServingModule:
    """The two signature functions around one shared classifier `tf.function`."""

    def __init__(
        self,
        model: keras.Model,
        image_size: int,
        top_k: int,
        labels: tuple[str, ...],
        outputs_are_logits: bool,
        limits: RequestLimits,
    ) -> None:
        self.model = model
        self.limits = limits
        self.image_size = image_size
        self.top_k = top_k
        self.labels = labels
        self.outputs_are_logits = outputs_are_logits
        height, width = heads.spatial_dims(model)
        self.images_spec = tf.TensorSpec([None, height, width, 3], tf.float32, name=IMAGES_INPUT)
        self.bytes_spec = tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_INPUT)
        # Traced once, called by both signatures.
        self.classify = tf.function(
            self._classify, input_signature=[self.images_spec], autograph=False
        )

    def _classify(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        outputs = tf.cast(self.model(images, training=False), tf.float32)
        probabilities = tf.nn.softmax(outputs, axis=-1) if self.outputs_are_logits else outputs
        scores, indices = tf.math.top_k(probabilities, k=self.top_k)
        labels = tf.gather(tf.constant(self.labels, dtype=tf.string), indices)
        values = (probabilities, tf.cast(indices, tf.int32), scores, labels)
        return dict(zip(OUTPUT_NAMES, values, strict=True))

    def predict_images(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """`images`: float32 [N, H, W, 3] RGB in [0, 255], already cropped."""
        shape = tf.shape(images, out_type=tf.int64)
        limits = self.limits
        checks = [
            _assert(shape[0] <= limits.max_batch_size, tf.strings.format(
                f"{IMAGES_INPUT} holds {{}} images; this model takes at most "
                f"{limits.max_batch_size} per request (max_batch_size, fixed at export)",
                shape[0]), "check_batch_size"),
            _assert(shape[1] * shape[2] <= limits.max_pixels, tf.strings.format(
                f"{IMAGES_INPUT} holds images of {{}} x {{}} pixels, over the pixel budget "
                f"of {limits.max_pixels} (max_pixels, fixed at export)", (shape[2], shape[1])),
                "check_pixels"),
        ]
        with tf.control_dependencies(checks):
            return self.classify(tf.identity(images))

    def _check_request(self, image_bytes: tf.Tensor) -> list[tf.Operation]:
        """Batch size, then empty and oversized strings (whole batch, before any header)."""
        limits = self.limits
        count = tf.size(image_bytes, out_type=tf.int64)
        lengths = tf.strings.length(image_bytes)
        over = lengths > limits.max_image_bytes
        indices = tf.range(count)
        first_over = tf.reduce_min(tf.where(over, indices, tf.int64.max))
        first_length = tf.reduce_max(tf.where(tf.equal(indices, first_over), lengths, 0))
        batch = _assert(count <= limits.max_batch_size, tf.strings.format(
            f"{IMAGE_BYTES_INPUT} holds {{}} images; this model takes at most "
            f"{limits.max_batch_size} per request (max_batch_size, fixed at export)", count),
            "check_batch_size")
        with tf.control_dependencies([batch]):
            empty = tf.debugging.Assert(
                tf.reduce_all(lengths > 0),
                [
                    f"{IMAGE_BYTES_INPUT} holds an empty string (no image data) at batch index",
                    tf.reshape(tf.where(tf.equal(lengths, 0)), [-1]),
                ],
                name="check_image_bytes_not_empty",
            )
            size = _assert(tf.logical_not(tf.reduce_any(over)), tf.strings.format(
                f"{IMAGE_BYTES_INPUT}[{{}}] holds {{}} bytes, over the {limits.max_image_bytes} "
                "bytes one image may have (max_image_bytes, fixed at export)",
                (first_over, first_length)), "check_image_bytes_size")
        return [batch, empty, size]

    def _check_header(self, data: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
        """Refuses `data` unless its header is readable and within the pixel budget."""
        max_pixels = self.limits.max_pixels
        header = image_header.read_header(data, max_pixels)
        kind = tf.gather(image_header.FORMATS, tf.maximum(header.format, 0))
        where = tf.strings.format(f"{IMAGE_BYTES_INPUT}[{{}}]: ", index)
        size = tf.strings.format("{} x {}", (header.width, header.height))
        resize = preprocessing.eval_resize_size(self.image_size)
        short = tf.cast(tf.minimum(header.width, header.height), tf.float64)
        long = tf.cast(tf.maximum(header.width, header.height), tf.float64)
        resized_long = tf.cast(resize * long / tf.maximum(short, 1.0), tf.int64)
        is_gif = tf.equal(header.format, image_header.FORMATS.index("GIF"))
        frames = tf.where(is_gif, tf.strings.format(
            " ({} frames: {} pixels decoded in all)", (header.frames, header.pixels)), "")
        budget = f" is over the pixel budget of {max_pixels} (max_pixels, fixed at export)"
        problems = [
            (tf.not_equal(header.problem, ""), header.problem),
            (tf.logical_or(header.width < 1, header.height < 1),
             tf.strings.join(["the ", kind, " declares an empty image (", size, " pixels)"])),
            (header.pixels > max_pixels,
             tf.strings.join(["a ", kind, " of ", size, " pixels", frames, budget])),
            (resize * resized_long > max_pixels,
             tf.strings.join(["a ", kind, " of ", size, " pixels would be resized to ",
                              tf.strings.format("{} x {}", (resize, resized_long)),
                              " pixels (shorter side ", str(resize), "), which", budget])),
        ]
        message = tf.constant("")
        for failed, text in reversed(problems):  # the first problem found is reported
            message = tf.where(failed, tf.strings.join([where, text]), message)
        check = _assert(tf.equal(message, ""), message, "check_image_header")
        with tf.control_dependencies([check]):
            return tf.identity(header.pixels)

    def serving_default(self, image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        """`image_bytes`: string [N] of encoded images, checked, then decoded and cropped.

        Every header of the batch is checked before the first image is decoded; images are
        decoded one at a time, so one request holds at most one decoded image.
        """
        with tf.control_dependencies(self._check_request(image_bytes)):
            image_bytes = tf.identity(image_bytes)
        checked = tf.map_fn(
            lambda item: self._check_header(*item),
            (image_bytes, tf.range(tf.size(image_bytes, out_type=tf.int64))),
            fn_output_signature=tf.int64, name="check_headers",
        )
        with tf.control_dependencies([checked]):
            image_bytes = tf.identity(image_bytes)
        images = tf.map_fn(
            lambda data: _decode_and_preprocess(data, self.image_size),
            image_bytes,
            fn_output_signature=tf.TensorSpec(
                [self.image_size, self.image_size, 3], tf.float32
            ),
            parallel_iterations=1,
            name="decode_and_crop",
        )
        return self.classify(images)


def _assert(condition: tf.Tensor, message: tf.Tensor, name: str) -> tf.Operation:
    """INVALID_ARGUMENT carrying `message` (a string tensor) unless `condition` holds."""
    return tf.debugging.Assert(condition, [message], name=name)


def _save_signatures(serving: _ServingModule, export_dir: Path) -> None:
    """Saves both signatures of `serving` as a SavedModel in `export_dir`.

    The root `tf.Module` holds the two signature `tf.function`s and the `tf.Variable`s their
    graphs capture (`ConcreteFunction.variables`). Tracking the captured variables, not the
    Keras 3 `keras.Variable` wrappers, matters: with the wrappers the export loads with
    `tf.saved_model.load` but not in a session (TF Serving's C++ loader, `saved_model_cli
    run`): "Could not find variable ...". `keras.export.ExportArchive` / `model.export()`
    track both, which works but stores every weight twice (keras-team/keras#23553).
    """
    root = tf.Module()
    root.serving_default = tf.function(
        serving.serving_default, input_signature=[serving.bytes_spec], autograph=False
    )
    root.predict_images = tf.function(
        serving.predict_images, input_signature=[serving.images_spec], autograph=False
    )
    signatures = {
        SERVING_SIGNATURE: root.serving_default.get_concrete_function(),
        IMAGES_SIGNATURE: root.predict_images.get_concrete_function(),
    }
    captured = {}
    for function in signatures.values():
        for variable in function.variables:
            captured.setdefault(variable.ref(), variable)
    root.model_variables = list(captured.values())
    tf.saved_model.save(root, os.fspath(export_dir), signatures=signatures)


def _serving_apis() -> Any:
    try:
        from tensorflow_serving import apis
        from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "Writing the warmup requests needs tensorflow-serving-api: pip install "
            "'ghostnet-keras[serving]' (or tensorflow-serving-api==2.21.0), or export with "
            "warmup=False (--nowarmup)."
        ) from error
    return apis


def _warmup_logs(
    model_name: str, image_size: int, model_hw: tuple[int | None, int | None],
    max_batch_size: int,
) -> list[Any]:
    """The `PredictionLog` records TF Serving replays when it loads the model."""
    apis = _serving_apis()
    model_pb2, predict_pb2 = apis.model_pb2, apis.predict_pb2
    prediction_log_pb2 = apis.prediction_log_pb2

    jpeg = tf.io.encode_jpeg(synthetic_image(240, 320, seed=1), quality=90).numpy()
    png = tf.io.encode_png(synthetic_image(180, 150, seed=2)).numpy()
    height, width = model_hw
    images = np.stack([
        synthetic_image(height or image_size, width or image_size, seed=3)
    ]).astype(np.float32)
    batches = [[jpeg], [png, jpeg]] if max_batch_size >= 2 else [[jpeg], [png]]
    requests = [
        *((SERVING_SIGNATURE, IMAGE_BYTES_INPUT, np.array(b, dtype=object)) for b in batches),
        (IMAGES_SIGNATURE, IMAGES_INPUT, images),
    ]
    logs = []
    for signature, input_name, value in requests:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature)
        )
        request.inputs[input_name].CopyFrom(tf.make_tensor_proto(value))
        logs.append(prediction_log_pb2.PredictionLog(
            predict_log=prediction_log_pb2.PredictLog(request=request)
        ))
    return logs


def _write_extras(
    export_dir: Path, labels: tuple[str, ...], warmup: bool, model_name: str,
    image_size: int, model_hw: tuple[int | None, int | None], limits: RequestLimits,
) -> None:
    extra = export_dir / WARMUP_DIR
    extra.mkdir(exist_ok=True)
    (extra / LABELS_FILE).write_text("".join(f"{name}\n" for name in labels), encoding="utf-8")
    record = {**dataclasses.asdict(limits), "image_size": image_size,
              "formats": list(image_header.FORMATS)}
    (extra / LIMITS_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if warmup:
        with tf.io.TFRecordWriter(os.fspath(extra / WARMUP_FILE)) as writer:
            for log in _warmup_logs(model_name, image_size, model_hw, limits.max_batch_size):
                writer.write(log.SerializeToString())


def _validate_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 0:
        raise ValueError(
            f"version must be a non-negative integer (TF Serving's version folder); "
            f"received {version!r}."
        )
    return int(version)


def export_serving_model(
    model: keras.Model,
    export_base: str | os.PathLike[str],
    version: int = 1,
    *,
    image_size: int | None = None,
    top_k: int | None = None,
    labels: Sequence[str] | str | os.PathLike[str] | None = None,
    outputs_are_logits: bool | None = None,
    overwrite: bool = False,
    warmup: bool = True,
    model_name: str = DEFAULT_MODEL_NAME,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
) -> Path:
    """Writes `model` as TF Serving model version `<export_base>/<version>/`, atomically.

    Args:
        model: a Keras classifier taking float RGB in [0, 255], `[N, H, W, 3]` (`H`, `W` may
            be `None`), and returning `[N, classes]` probabilities or logits.
        export_base: TF Serving's `--model_base_path`; created if missing.
        version: the version folder name (a non-negative integer).
        image_size: side of the centre crop of `serving_default`; defaults to the model's
            fixed input size, else 224.
        top_k: how many classes the `top_k_*` outputs hold; defaults to
            `min(5, classes)`.
        labels: class names in output order (a sequence, or a `labels.txt` path); defaults
            to the ImageNet names for 1000 classes, else `class_<i>`.
        outputs_are_logits: whether to apply a softmax to the model's outputs; `None`
            detects it (see `detect_outputs_are_logits`).
        overwrite: replace an existing version folder instead of refusing.
        warmup: write `assets.extra/tf_serving_warmup_requests`.
        model_name: the `model_spec.name` of the warmup requests.
        max_pixels: pixel budget of one image: what its header declares (a GIF: canvas and
            all frames), what the resize makes of it, and `predict_images`' height x width;
            at least `4 * eval_resize_size(image_size) ** 2`.
        max_batch_size: the most images one request may hold.
        max_image_bytes: the most bytes one encoded image may have.

    Returns:
        The version folder written.

    Raises:
        FileExistsError: when the version folder exists and `overwrite` is false.
        ValueError: for a model, label list or argument that does not fit the contract.
    """
    version = _validate_version(version)
    model = to_channels_last(model)  # the signatures take NHWC images
    num_classes = _num_classes(model)
    image_size = _resolve_image_size(model, image_size)
    if top_k is None:
        top_k = min(DEFAULT_TOP_K, num_classes)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not (
        1 <= top_k <= num_classes
    ):
        raise ValueError(f"top_k must be an integer in [1, {num_classes}]; received {top_k!r}.")
    labels = _resolve_labels(labels, num_classes)
    limits = RequestLimits(max_pixels, max_batch_size, max_image_bytes).checked(image_size)
    if warmup:
        _serving_apis()
    if outputs_are_logits is None:
        outputs_are_logits = heads.detect_outputs_are_logits(model, image_size)
    logging.info(
        "Exporting %s: %d classes, crop %d, top-%d, outputs are %s; %s.", model.name,
        num_classes, image_size, top_k,
        "logits (softmax added)" if outputs_are_logits else "probabilities", limits,
    )

    base = Path(export_base)
    target = base / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} already exists; pass overwrite=True (--overwrite) or another version."
        )
    created_base = not base.exists()
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=base))
    try:
        _save_signatures(
            _ServingModule(
                model, image_size, int(top_k), labels, bool(outputs_are_logits), limits
            ),
            tmp,
        )
        _write_extras(
            tmp, labels, warmup, model_name, image_size, heads.spatial_dims(model), limits
        )
        _move_into_place(tmp, target, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created_base and base.exists() and not any(base.iterdir()):
            base.rmdir()
        raise
    logging.info("Wrote %s", target)
    return target


def _move_into_place(tmp: Path, target: Path, overwrite: bool) -> None:
    if not target.exists():
        os.rename(tmp, target)
        return
    if not overwrite:
        raise FileExistsError(f"{target} appeared during the export; nothing was replaced.")
    old = Path(tempfile.mkdtemp(prefix=f".old-{target.name}-", dir=target.parent))
    os.rename(target, old / target.name)
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(old / target.name, target)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
