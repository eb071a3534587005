"""Saving, loading and converting QAT models: the SavedModel `train_qat` writes, and int8 TFLite."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ghostnet_keras.tflite.conversion import convert, signature_with_batch
from ghostnet_keras.tflite.verify import ConversionError
from ghostnet_keras.training.qat_model import qat_modules, quantize_scope

if TYPE_CHECKING:
    import tf_keras

TFLITE_SIGNATURE = "tflite_batch_1"  # the batch-1 signature save_qat_model adds


def save_qat_model(
    model: tf_keras.Model, target: str | os.PathLike, *, batch_size: int | None = None
) -> Path:
    """Saves a QAT model as a SavedModel; `target` appears (or is replaced) only when complete.

    The signature `serving_default` takes `images` of shape `(batch_size, H, W, 3)` (`None`:
    any batch), RGB in [0, 255] like the float model; unless `batch_size` is 1, the signature
    `TFLITE_SIGNATURE` takes a batch of exactly 1, so that `convert_qat` converts the SavedModel
    to a static-shape TFLite model without loading and re-saving it. It is saved without
    per-layer traces (`save_traces=False`: about 10x faster for GhostNet's ~300 layers);
    `tf_keras.models.load_model` still restores it inside `quantize_scope()`.

    Returns:
        The SavedModel directory.
    """
    import tensorflow as tf

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    spec = model.inputs[0]

    def serve(batch: int | None) -> Any:
        return tf.function(
            lambda images: model(images, training=False),
            input_signature=[tf.TensorSpec((batch, *spec.shape[1:]), spec.dtype, name="images")],
        )

    # tf.functions, not concrete functions: under MultiWorkerMirroredStrategy a concrete
    # function over distributed variables cannot be saved.
    signatures = {"serving_default": serve(batch_size)}
    if batch_size != 1:
        signatures[TFLITE_SIGNATURE] = serve(1)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    old = None
    try:
        model.save(
            str(tmp), save_format="tf", include_optimizer=False, save_traces=False,
            signatures=signatures,
        )
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not target.exists():
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_qat_model(saved_model_dir: str | os.PathLike) -> tf_keras.Model:
    """Loads a QAT SavedModel written by `save_qat_model` / `train_qat` as a tf_keras model."""
    tf_keras, _ = qat_modules()
    if not Path(saved_model_dir, "saved_model.pb").is_file():
        raise FileNotFoundError(f"No SavedModel at {saved_model_dir}.")
    with quantize_scope():
        return tf_keras.models.load_model(str(saved_model_dir), compile=False)


def convert_qat(
    qat_model_or_saved_model_dir: tf_keras.Model | str | os.PathLike,
    io: str = "float",
    *,
    batch_size: int | None = 1,
) -> bytes:
    """The full-integer (int8) TFLite model of a QAT model (mode `qat_int8`).

    The fake-quantization ranges learned in training give the quantization parameters (no
    calibration), and `ghostnet_keras.tflite.verify` checks that no compute op reads or writes
    float tensors. A model is first saved as a temporary SavedModel (`save_qat_model`, without
    layer traces): several times faster than `TFLiteConverter.from_keras_model`, which traces
    every layer. A SavedModel is converted through its signature with the requested batch; one
    without such a signature is loaded and re-saved.

    Args:
        qat_model_or_saved_model_dir: a QAT model (`build_qat_model`, trained) or the SavedModel
            directory `train_qat` writes (`model_dir/qat_saved_model`).
        io: `"float"`, `"uint8"` or `"int8"` input and output tensors
            (`ghostnet_keras.tflite.conversion.convert`).
        batch_size: the batch dimension of the converted model (1: static shapes; `None`: the
            SavedModel's or a dynamic one).

    Returns:
        The `.tflite` bytes.
    """
    source = qat_model_or_saved_model_dir
    with tempfile.TemporaryDirectory(prefix="qat_convert_") as scratch:
        if isinstance(source, (str, os.PathLike)) and batch_size is not None:
            try:
                signature_with_batch(source, batch_size)
            except ConversionError:
                source = load_qat_model(source)
        if not isinstance(source, (str, os.PathLike)):
            source = save_qat_model(source, Path(scratch, "model"), batch_size=batch_size)
        return convert(str(source), "qat_int8", io=io, batch_size=batch_size)
