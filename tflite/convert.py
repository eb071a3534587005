"""Keras (3) -> TFLite conversion in five modes, with an integer-only check for the int8 ones.

Modes:

- `fp32`: plain float conversion.
- `fp16`: float16 weights (dequantized to float32 at load time on CPU; the GPU delegate runs
  them in half precision).
- `dynamic`: dynamic-range quantization (int8 weights, float activations; hybrid kernels).
- `int8`: full-integer post-training quantization (`TFLITE_BUILTINS_INT8` only), calibrated on
  representative images, optionally with int8 input/output. The result is checked: any compute
  op that reads or writes a float tensor (other than the QUANTIZE/DEQUANTIZE pair at the model
  boundary with float io) raises `FloatOpError`. A conversion with only
  `optimizations=[DEFAULT]` silently leaves float ops in an "int8" model; this check catches it.
- `qat_int8`: full-integer conversion of a quantization-aware-trained model. tfmot only
  quantizes tf_keras models, so this mode takes a tf_keras model (e.g. from
  `tfmot.quantization.keras.quantize_model`) or the path of a SavedModel exported from one; the
  fake-quant ranges replace calibration (no representative data needed). Same check as `int8`.
  The CLI converts a QAT SavedModel through `training.qat.convert_qat`, which fixes its batch.

Keras 3 models go through `tf.lite.TFLiteConverter.from_keras_model` (which exports them with
`keras.export.ExportArchive`); never `from_concrete_functions` with a Keras 3 model (it silently
produces NaN outputs with TF 2.21). By default the batch dimension is fixed to 1
(`batch_size=1`): with a dynamic batch, `Flatten` lowers to SHAPE -> STRIDED_SLICE -> PACK ->
RESHAPE on int32 tensors, which the GPU delegate rejects (the graph would split); with batch 1 the
converter folds them into one static RESHAPE.

TFLite Metadata (the `TFLITE_METADATA` flatbuffer with normalisation and labels) is NOT embedded:
the only writer is `tflite-support`, unmaintained since 0.4.4 (July 2023); that release pins
`protobuf<4` and would downgrade protobuf under TensorFlow 2.21, so it cannot share an
environment with it. The CLI writes the same information to a JSON sidecar and `labels.txt`.

Command line (writes `x.tflite`, `labels.txt` beside it and the sidecar `x.json`, each through a
temporary file, the JSON last):

```
python -m tflite.convert --width=1.0 --weights=imagenet --mode=fp32 --output=out/ghostnet_100.tflite
python -m tflite.convert --model=ghostnet.keras --mode=int8 --int8_io \
    --representative=/data/val_images --num_calibration=200 --output=out/ghostnet_int8.tflite
python -m tflite.convert --model=/path/qat_savedmodel --mode=qat_int8 --output=out/qat.tflite
```
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import math
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ghostnet_keras.backends import require_tensorflow

require_tensorflow("TFLite conversion (tflite.convert)")

from tflite import inventory  # noqa: E402

MODES = ("fp32", "fp16", "dynamic", "int8", "qat_int8")
INT8_MODES = ("int8", "qat_int8")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# Eval-style crop: resize the shorter side to size / 0.875 (256 for 224), centre-crop `size`.
NORMALISES_INTERNALLY = "model normalises internally, feed RGB 0-255"
METADATA_NOTE = (
    "TFLite Metadata not embedded: tflite-support (the only writer) is unmaintained since 0.4.4 "
    "(2023) and pins protobuf<4, incompatible with TensorFlow 2.21; see this JSON and labels.txt."
)

RepresentativeData = Callable[[], Iterable[np.ndarray]]


class ConversionError(RuntimeError):
    """The converter failed or produced a model that does not meet the mode's contract."""


class FloatOpError(ConversionError):
    """An int8 model still contains float compute ops.

    Attributes:
        ops: one description per offending op, e.g. `"#12 CONV_2D (float32 in/out)"`.
    """

    def __init__(self, ops: Sequence[str]) -> None:
        self.ops = list(ops)
        shown = "\n  ".join(self.ops[:20])
        more = f"\n  ... and {len(self.ops) - 20} more" if len(self.ops) > 20 else ""
        super().__init__(
            f"The model is not fully integer: {len(self.ops)} compute op(s) read or write float "
            f"tensors:\n  {shown}{more}"
        )


class RepresentativeDataError(ValueError):
    """Representative (calibration) data is missing or unusable."""


# --------------------------------------------------------------------------------------------
# Conversion


def convert(
    model: Any,
    mode: str,
    representative_data: RepresentativeData | None = None,
    int8_io: bool = False,
    *,
    batch_size: int | None = 1,
    signature_key: str | None = None,
) -> bytes:
    """Converts a model to a TFLite flatbuffer.

    Args:
        model: a Keras 3 `keras.Model`; for `qat_int8`, a tf_keras model or the path of a
            SavedModel (a SavedModel path is accepted by every mode).
        mode: one of `"fp32"`, `"fp16"`, `"dynamic"`, `"int8"`, `"qat_int8"`.
        representative_data: a callable returning an iterable of input images (each
            `(H, W, C)` or a batch `(N, H, W, C)`, in the model's input range: RGB 0-255 for
            GhostNet). Required for `int8`, optional for `qat_int8`, rejected otherwise.
        int8_io: `int8` / `qat_int8` only: int8 input and output tensors instead of float32
            (the quantization parameters are in the model's input/output details).
        batch_size: batch dimension to fix in the converted model (1, the default, gives static
            shapes: no SHAPE/STRIDED_SLICE/PACK ops, GPU-delegate friendly). `None` keeps the
            model's own (usually dynamic) batch. Ignored for SavedModel paths.
        signature_key: SavedModel paths only: the signature to convert (default
            `serving_default`).

    Returns:
        The `.tflite` model bytes.

    Raises:
        ValueError: for an unknown mode or arguments that do not fit the mode.
        RepresentativeDataError: `int8` without representative data.
        TypeError: `qat_int8` with a Keras 3 model.
        FloatOpError: an `int8` / `qat_int8` result still contains float compute ops.
    """
    import tensorflow as tf

    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; expected one of {', '.join(MODES)}.")
    if int8_io and mode not in INT8_MODES:
        raise ValueError(f"int8_io is only meaningful for modes {INT8_MODES}; mode={mode!r}.")
    if mode == "int8" and representative_data is None:
        raise RepresentativeDataError(
            "mode='int8' (full-integer quantization) needs representative_data: a callable "
            "returning images in the model's input range (RGB 0-255 for GhostNet), e.g. "
            "tflite.convert.synthetic_images or folder_images. Without it the converter would "
            "fall back to dynamic-range quantization and leave float ops."
        )
    if mode in ("fp32", "fp16", "dynamic") and representative_data is not None:
        raise ValueError(f"mode={mode!r} takes no representative_data (it is not calibrated).")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None; received {batch_size}.")

    saved_model = isinstance(model, (str, os.PathLike))
    if mode == "qat_int8" and not saved_model and _is_keras3_model(model):
        raise TypeError(
            "mode='qat_int8' takes a tf_keras model (tfmot's quantize_model only accepts "
            "tf_keras models) or a SavedModel path, not a Keras 3 model. Use mode='int8' for "
            "post-training quantization of a Keras 3 model."
        )

    if signature_key is not None and not saved_model:
        raise ValueError("signature_key applies to a SavedModel path only.")
    if saved_model:
        converter = tf.lite.TFLiteConverter.from_saved_model(
            str(model), signature_keys=[signature_key] if signature_key else None)
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(_with_batch_size(model, batch_size))

    if mode == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode in INT8_MODES:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if representative_data is not None:
            # Calibrated: ask for integer-only kernels. Without calibration (a QAT model, whose
            # fake-quant ranges are the parameters) TF 2.21 refuses TFLITE_BUILTINS_INT8, so the
            # default op set is kept and verify_full_integer below enforces integer-only.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.representative_dataset = _converter_dataset(representative_data)
        if int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8

    # The Keras 3 export prints the SavedModel endpoints and the quantizer prints its settings
    # on stdout (from C++): keep stdout clean for the CLIs' tables.
    with _quiet_stdout() as captured, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        try:
            result = converter.convert()
        except RepresentativeDataError:
            raise
        except Exception as error:  # the converter raises assorted internal types
            details = captured()
            raise ConversionError(
                f"TFLite conversion (mode={mode!r}) failed: {error}"
                + (f"\nconverter output:\n{details}" if details else "")
            ) from error

    if mode in INT8_MODES:
        verify_full_integer(result, float_io=not int8_io)
    return bytes(result)


def convert_modes(
    model: Any,
    modes: Sequence[str],
    representative_data: RepresentativeData | None = None,
    int8_io: bool = False,
    *,
    batch_size: int | None = 1,
) -> dict[str, bytes]:
    """Converts one model in several modes; a Keras 3 model is exported only once.

    `convert` exports a Keras 3 model to a SavedModel on every call (what
    `TFLiteConverter.from_keras_model` does, about half of a GhostNet conversion's time); this
    exports it once (`export_for_conversion`) and converts that SavedModel in each mode, with
    the same result as separate `convert` calls.

    Args:
        model: as for `convert`.
        modes: conversion modes (see `MODES`), each at most once.
        representative_data: calibration images, used by the `int8` mode only.
        int8_io: int8 input/output for the `int8` / `qat_int8` modes (ignored by the others).
        batch_size: as for `convert`.

    Returns:
        `{mode: .tflite bytes}` in the order of `modes`.

    Raises:
        As `convert`, for the first mode that fails.
    """
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown or len(set(modes)) != len(modes):
        raise ValueError(f"modes must be distinct values of {MODES}; received {list(modes)}.")

    def one(source: Any, mode: str) -> bytes:
        return convert(source, mode, representative_data if mode == "int8" else None,
                       int8_io and mode in INT8_MODES, batch_size=batch_size)

    if len(modes) < 2 or not _is_keras3_model(model) or "qat_int8" in modes:
        return {mode: one(model, mode) for mode in modes}
    with tempfile.TemporaryDirectory(prefix="tflite_export_") as scratch:
        saved_model = export_for_conversion(model, Path(scratch, "saved_model"), batch_size)
        return {mode: one(str(saved_model), mode) for mode in modes}


def export_for_conversion(model: Any, directory: str | os.PathLike,
                          batch_size: int | None = 1) -> Path:
    """Writes the inference SavedModel that `TFLiteConverter.from_keras_model` would convert.

    A `keras.export.ExportArchive` with one endpoint, the model called with `training=False`,
    inputs named as the model's (batch fixed to `batch_size` as in `convert`).

    Returns:
        `directory`, for `convert(str(directory), mode)`.
    """
    import keras
    import tensorflow as tf

    fixed = _with_batch_size(model, batch_size)
    signature = [tf.TensorSpec(x.shape, x.dtype, name=x.name) for x in fixed.inputs]
    archive = keras.export.ExportArchive()
    archive.track(fixed)
    archive.add_endpoint("serve", functools.partial(fixed.__call__, training=False),
                         signature if len(signature) == 1 else [signature])
    with _quiet_stdout():
        archive.write_out(str(directory), verbose=False)
    return Path(directory)


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[Callable[[], str]]:
    """Captures what Python and native code write to stdout; yields a getter for the text."""
    sys.stdout.flush()
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stdout(io.StringIO()) as python:

        def read() -> str:
            size = os.fstat(sink.fileno()).st_size
            native = os.pread(sink.fileno(), size, 0) if size else b""
            return python.getvalue() + native.decode(errors="replace")

        try:
            saved = os.dup(1)
        except OSError:  # no fd 1 (embedded interpreters)
            saved = None
        if saved is not None:
            os.dup2(sink.fileno(), 1)
        try:
            yield read
        finally:
            if saved is not None:
                _flush_c_stdio()
                os.dup2(saved, 1)
                os.close(saved)


def _flush_c_stdio() -> None:
    """Flushes the C library's stdio buffers (native prints sit there when stdout is a pipe)."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no libc symbols (unusual platforms)
        pass


def _is_keras3_model(model: Any) -> bool:
    import keras

    return isinstance(model, keras.Model)


def _keras_module_of(model: Any) -> Any:
    if _is_keras3_model(model):
        import keras

        return keras
    module = type(model).__module__.split(".")[0]
    if module in ("tf_keras", "keras") and module in sys.modules:
        return sys.modules[module]
    raise TypeError(
        f"Expected a Keras model or a SavedModel path; received {type(model).__name__}."
    )


def _with_batch_size(model: Any, batch_size: int | None) -> Any:
    """Wraps `model` so that its inputs have a fixed batch dimension (shares the weights)."""
    if batch_size is None:
        return model
    keras_module = _keras_module_of(model)
    inputs = list(model.inputs)
    if all(x.shape[0] == batch_size for x in inputs):
        return model
    names = ["images"] if len(inputs) == 1 else [_input_name(x, i) for i, x in enumerate(inputs)]
    new_inputs = [
        keras_module.Input(batch_shape=(batch_size, *tuple(x.shape)[1:]), dtype=x.dtype, name=n)
        for x, n in zip(inputs, names, strict=True)
    ]
    outputs = model(new_inputs[0] if len(new_inputs) == 1 else new_inputs, training=False)
    return keras_module.Model(new_inputs, outputs, name=model.name)


def _input_name(tensor: Any, index: int) -> str:
    name = str(getattr(tensor, "name", "") or f"input_{index}")
    return name.split(":")[0].replace("/", "_")


def _converter_dataset(representative_data: RepresentativeData) -> Callable[[], Iterator[list]]:
    def dataset() -> Iterator[list]:
        count = 0
        for batch in representative_data():
            array = np.asarray(batch, dtype=np.float32)
            if array.ndim == 3:
                array = array[None]
            if array.ndim != 4:
                raise RepresentativeDataError(
                    f"Representative data must yield images (H, W, C) or batches (N, H, W, C); "
                    f"got shape {array.shape}."
                )
            for i in range(array.shape[0]):
                count += 1
                yield [array[i : i + 1]]
        if not count:
            raise RepresentativeDataError("Representative data yielded no images.")

    return dataset


# --------------------------------------------------------------------------------------------
# Verification


def float_compute_ops(tflite_bytes: bytes, *, float_io: bool = True) -> list[str]:
    """Lists the ops of a supposedly integer model that read or write float tensors.

    With `float_io`, the model's float32 input may only feed QUANTIZE ops and its float32 output
    may only come from DEQUANTIZE ops; those boundary ops are allowed. Every other op must see
    integer tensors only (inputs, constants and outputs).

    Args:
        tflite_bytes: the model.
        float_io: whether the model is expected to keep float32 input/output.

    Returns:
        One description per offending op; empty for a fully integer model.
    """
    info = inventory.read_model(tflite_bytes)
    model_inputs = {t.index for t in info.inputs}
    model_outputs = {t.index for t in info.outputs}
    problems = []
    for op in info.ops:
        float_in = [t for t in op.inputs if t.dtype in inventory.FLOAT_DTYPES]
        float_out = [t for t in op.outputs if t.dtype in inventory.FLOAT_DTYPES]
        if not float_in and not float_out:
            continue
        if float_io:
            if (
                op.name == "QUANTIZE"
                and not float_out
                and all(t.index in model_inputs for t in float_in)
            ):
                continue
            if (
                op.name == "DEQUANTIZE"
                and not float_in
                and all(t.index in model_outputs for t in float_out)
            ):
                continue
        dtypes = sorted({t.dtype for t in (*float_in, *float_out)})
        where = "in" if float_in and not float_out else "out" if not float_in else "in/out"
        problems.append(f"#{op.index} {op.name} ({','.join(dtypes)} {where})")
    if not float_io:
        for t in (*info.inputs, *info.outputs):
            if t.dtype in inventory.FLOAT_DTYPES:
                problems.append(f"model input/output {t.name!r} is {t.dtype}, expected int8")
    return problems


def verify_full_integer(tflite_bytes: bytes, *, float_io: bool = True) -> None:
    """Raises `FloatOpError` unless every compute op of the model is integer-only.

    See `float_compute_ops` for the rule.
    """
    problems = float_compute_ops(tflite_bytes, float_io=float_io)
    if problems:
        raise FloatOpError(problems)


# --------------------------------------------------------------------------------------------
# Representative data


def synthetic_images(
    num_images: int = 100, size: int | tuple[int, int] = 224, seed: int = 0
) -> RepresentativeData:
    """Deterministic "real-ish" RGB images in [0, 255]: smooth colour fields with edges.

    Each image is a sum of a few random low-frequency colour gratings, a couple of flat shapes
    and a little noise, stretched to a random contrast range (every fourth image to the full
    0-255 range, so that a calibrated int8 input covers it), so activations cover ranges
    similar to photographs (unlike uniform noise). Good for tests and smoke runs; calibrate real
    deployments on real images (`folder_images`).

    Args:
        num_images: how many images each call yields.
        size: output height and width (an int for square images).
        seed: random seed; the same seed gives the same images.

    Returns:
        A callable yielding float32 arrays of shape `(H, W, 3)`.
    """
    height, width = (size, size) if isinstance(size, int) else size

    def generate() -> Iterator[np.ndarray]:
        rng = np.random.default_rng(seed)
        yy, xx = np.meshgrid(
            np.linspace(0.0, 1.0, height, dtype=np.float32),
            np.linspace(0.0, 1.0, width, dtype=np.float32),
            indexing="ij",
        )
        for index in range(num_images):
            image = np.zeros((height, width, 3), np.float32)
            for _ in range(4):
                fx, fy = rng.uniform(-4.0, 4.0, size=2)
                phase = rng.uniform(0.0, 2.0 * math.pi)
                grating = np.cos(2.0 * math.pi * (fx * xx + fy * yy) + phase)
                image += grating[..., None] * rng.uniform(-1.0, 1.0, size=3).astype(np.float32)
            for _ in range(2):
                cy, cx = rng.uniform(0.0, 1.0, size=2)
                ry, rx = rng.uniform(0.1, 0.4, size=2)
                mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1.0
                image[mask] += rng.uniform(-1.5, 1.5, size=3).astype(np.float32)
            image += rng.normal(0.0, 0.05, size=image.shape).astype(np.float32)
            low, high = image.min(), image.max()
            lo, hi = rng.uniform(0.0, 60.0), rng.uniform(190.0, 255.0)
            if index % 4 == 0:  # full range, so that calibrated input ranges span 0-255
                lo, hi = 0.0, 255.0
            image = (image - low) / max(float(high - low), 1e-6) * (hi - lo) + lo
            yield np.clip(image, 0.0, 255.0).astype(np.float32)

    return generate


def eval_crop(image: Any, size: tuple[int, int]) -> np.ndarray:
    """The reference evaluation resize + centre crop (`ghostnet_keras.preprocessing`).

    Only square sizes: the reference preprocessing crops a square.
    """
    from ghostnet_keras.preprocessing import eval_preprocess

    height, width = size
    if height != width:
        raise RepresentativeDataError(
            f"Representative images need a square input size; the model takes {size}."
        )
    return np.asarray(eval_preprocess(image, height), dtype=np.float32)


def folder_images(
    folder: str | os.PathLike, num_images: int = 100, size: int | tuple[int, int] = 224
) -> RepresentativeData:
    """Images from a folder (searched recursively), eval-preprocessed, RGB in [0, 255].

    Files are taken in sorted order (the first `num_images`); each is decoded to RGB, its
    shorter side resized to `size / 0.875` (bilinear) and centre-cropped to `size`.

    Raises:
        RepresentativeDataError: when the folder has no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RepresentativeDataError(f"Representative image folder {folder} does not exist.")
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )[:num_images]
    if not files:
        raise RepresentativeDataError(
            f"No image ({', '.join(IMAGE_EXTENSIONS)}) found under {folder}."
        )
    height, width = (size, size) if isinstance(size, int) else size

    def generate() -> Iterator[np.ndarray]:
        import tensorflow as tf

        for path in files:
            image = tf.io.decode_image(
                tf.io.read_file(str(path)), channels=3, expand_animations=False
            )
            yield eval_crop(image, (height, width))

    return generate


def quickstart_images(
    num_images: int = 100, size: int | tuple[int, int] = 224
) -> RepresentativeData:
    """Calibration images from the project's data pipeline (`training.data.build_dataset`).

    Imported lazily: the pipeline is optional. Reads the evaluation split of the `quickstart`
    dataset (`training.data.dataset_info("quickstart").eval_split`) with
    `build_dataset("quickstart", split, image_size=..., batch_size=1, training=False)`, whose
    images are float32 RGB in [0, 255] (what GhostNet takes: it normalises internally).

    Raises:
        RepresentativeDataError: when the pipeline is not available or yields unusable images.
    """
    try:
        from training import data as training_data
    except ImportError as error:
        raise RepresentativeDataError(
            "--representative=quickstart needs the project's data pipeline "
            f"`training.data.build_dataset`, which cannot be imported ({error}). Use "
            "--representative=<image folder> (real images) or --representative=random "
            "(synthetic images, smoke tests only)."
        ) from error
    build_dataset = getattr(training_data, "build_dataset", None)
    if build_dataset is None:
        raise RepresentativeDataError("training.data has no build_dataset().")
    height, width = (size, size) if isinstance(size, int) else size

    def generate() -> Iterator[np.ndarray]:
        try:
            info = getattr(training_data, "dataset_info", None)
            split = info("quickstart").eval_split if info else "test"
            dataset = build_dataset(
                "quickstart", split, image_size=max(height, width), batch_size=1, training=False
            )
        except Exception as error:
            raise RepresentativeDataError(
                f"training.data.build_dataset('quickstart', ...) failed: {error}"
            ) from error
        count = 0
        for element in dataset:
            images = _images_of(element)
            for image in images.reshape((-1, *images.shape[-3:])):
                if image.shape[:2] != (height, width):
                    image = eval_crop(image, (height, width))
                if count == 0 and (image.max() <= 1.5 or image.min() < -1e-3):
                    raise RepresentativeDataError(
                        "The quickstart pipeline yields images in "
                        f"[{image.min():.3g}, {image.max():.3g}], not RGB 0-255: the model "
                        "normalises internally, calibrating on normalised images would be wrong."
                    )
                yield image
                count += 1
                if count >= num_images:
                    return

    return generate


def _images_of(element: Any) -> np.ndarray:
    if isinstance(element, dict):
        for key in ("image", "images", "input", "inputs"):
            if key in element:
                return np.asarray(element[key], np.float32)
        raise RepresentativeDataError(f"Dataset element has no image key: {sorted(element)}.")
    if isinstance(element, (tuple, list)):
        element = element[0]
    return np.asarray(element, np.float32)


def representative_source(
    spec: str, num_images: int = 100, size: int | tuple[int, int] = 224
) -> RepresentativeData:
    """`quickstart`, `random` (synthetic images) or an image folder path -> representative data."""
    if spec == "quickstart":
        return quickstart_images(num_images, size)
    if spec == "random":
        return synthetic_images(num_images, size)
    return folder_images(spec, num_images, size)


# --------------------------------------------------------------------------------------------
# Sidecar, labels and atomic writes


def describe(
    tflite_bytes: bytes,
    mode: str,
    model: Any = None,
    *,
    file_name: str | None = None,
    labels_file: str | None = "labels.txt",
) -> dict[str, Any]:
    """The JSON sidecar: input/output contract, mode, cost, ops.

    Args:
        tflite_bytes: the converted model.
        mode: the conversion mode.
        model: the source model (Keras 3 for MACs/params; anything else leaves them `None`).
        file_name: the `.tflite` file name to record.
        labels_file: the labels file name to record.

    Returns:
        A JSON-serialisable dict.
    """
    import keras
    import tensorflow as tf

    info = inventory.read_model(tflite_bytes)
    ops = inventory.op_inventory(info)
    internal = model is not None and _normalises_internally(model)

    def tensor_entry(t: inventory.TensorInfo, is_input: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": t.name,
            "shape": list(t.shape_signature),
            "dtype": t.dtype,
        }
        if t.scale:
            entry["quantization"] = {
                "scale": t.scale[0] if len(t.scale) == 1 else list(t.scale),
                "zero_point": t.zero_point[0] if len(t.zero_point) == 1 else list(t.zero_point),
                "formula": (
                    "q = round(x / scale) + zero_point, x = RGB value in [0, 255]"
                    if is_input
                    else "y = (q - zero_point) * scale"
                ),
            }
        return entry

    inputs = [tensor_entry(t, True) for t in info.inputs]
    outputs = [tensor_entry(t, False) for t in info.outputs]
    if inputs:
        first = inputs[0]
        first["layout"] = "NHWC"
        first["color"] = "RGB"
        if internal:
            first["normalisation"] = NORMALISES_INTERNALLY
        else:
            first["normalisation"] = "unknown: the model has no preprocessing layer"
        if len(info.inputs[0].shape) == 4:
            first["height"], first["width"] = info.inputs[0].shape[1:3]
    if outputs and model is not None and _is_keras3_model(model):
        activation = getattr(model.layers[-1], "activation", None)
        outputs[0]["kind"] = (
            "probabilities (softmax)"
            if getattr(activation, "__name__", "") == "softmax"
            else "logits"
        )
    macs = params = params_without_bn = None
    if model is not None and _is_keras3_model(model):
        from ghostnet_keras import profile

        shape = info.inputs[0].shape[1:] if info.inputs else None
        try:
            result = profile(model, input_shape=tuple(shape) if shape else None)
            macs, params = result.macs, result.params
            params_without_bn = result.params_without_bn_stats
        except (TypeError, ValueError):
            pass
    return {
        "format": "ghostnet_keras.tflite.sidecar/1",
        "model": getattr(model, "name", None) or (str(model) if model is not None else None),
        "file": file_name,
        "bytes": len(tflite_bytes),
        "sha256": hashlib.sha256(tflite_bytes).hexdigest(),
        "mode": mode,
        "inputs": inputs,
        "outputs": outputs,
        "labels": labels_file,
        "macs": macs,
        "params": params,
        "params_without_bn_stats": params_without_bn,
        "ops": {name: row["count"] for name, row in ops.items()},
        "gpu_unsupported_ops": inventory.gpu_unsupported_ops(
            info, allow_quantized=mode in INT8_MODES
        ),
        "converter": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "metadata": METADATA_NOTE,
    }


def _normalises_internally(model: Any) -> bool:
    """Whether the first layer after the input is a Rescaling / Normalization layer."""
    layers = [
        layer for layer in getattr(model, "layers", []) if type(layer).__name__ != "InputLayer"
    ]
    return bool(layers) and type(layers[0]).__name__ in ("Rescaling", "Normalization")


def default_labels(num_classes: int) -> list[str]:
    """ImageNet class names for 1000 classes, `class_{i}` otherwise."""
    if num_classes == 1000:
        from ghostnet_keras import imagenet

        return [name for _, name in imagenet.class_index()]
    return [f"class_{i}" for i in range(num_classes)]


def write_atomically(files: dict[Path, bytes]) -> list[Path]:
    """Writes each file through a temporary file in its directory, then renames them in order.

    Nothing is renamed until every temporary file is complete; on failure the temporary files
    are removed and no destination is touched.
    """
    temps: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            temps.append((tmp, path))
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            Path(tmp).unlink(missing_ok=True)
    return list(files)


def write_outputs(
    tflite_bytes: bytes, output: str | os.PathLike, sidecar: dict[str, Any], labels: Sequence[str]
) -> list[Path]:
    """Writes `output` (.tflite), `labels.txt` beside it and the sidecar `output` with `.json`."""
    output = Path(output)
    if output.suffix != ".tflite":
        raise ValueError(f"--output must end with .tflite; received {output}.")
    labels_path = output.parent / "labels.txt"
    sidecar = {**sidecar, "file": output.name, "labels": labels_path.name}
    return write_atomically(
        {
            output: bytes(tflite_bytes),
            labels_path: ("\n".join(labels) + "\n").encode(),
            output.with_suffix(".json"): (json.dumps(sidecar, indent=2) + "\n").encode(),
        }
    )


# --------------------------------------------------------------------------------------------
# Command line


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_string(
        "model", None, "A .keras model, or a SavedModel directory (e.g. a tf_keras QAT export)."
    )
    flags.DEFINE_float("width", None, "Build GhostNet with this width instead of --model.")
    flags.DEFINE_string(
        "weights", None, "With --width: 'imagenet' or a weights file (.weights.h5, .keras, ...)."
    )
    flags.DEFINE_integer("input_size", 224, "With --width: input height and width.")
    flags.DEFINE_enum("mode", "fp32", list(MODES), "Conversion mode.")
    flags.DEFINE_string("output", None, "Output .tflite path (labels.txt and .json beside it).")
    flags.DEFINE_bool("int8_io", False, "int8 input/output (modes int8 and qat_int8).")
    flags.DEFINE_string(
        "representative",
        None,
        "Calibration images for int8: 'quickstart' (training.data pipeline), 'random' "
        "(synthetic, smoke tests only) or an image folder.",
    )
    flags.DEFINE_integer("num_calibration", 100, "Number of calibration images.")
    flags.DEFINE_integer(
        "batch_size", 1, "Batch dimension of the converted model; 0 keeps it dynamic."
    )
    flags.DEFINE_string("labels", None, "Labels file (one per line); default ImageNet names.")


def _load_model(flags_values: Any) -> Any:
    if (flags_values.model is None) == (flags_values.width is None):
        raise ValueError("Give exactly one of --model and --width.")
    if flags_values.width is not None:
        from ghostnet_keras import GhostNet

        size = flags_values.input_size
        return GhostNet(
            width=flags_values.width, weights=flags_values.weights, input_shape=(size, size, 3)
        )
    path = Path(flags_values.model)
    if path.is_dir():
        return str(path)
    import keras

    import ghostnet_keras  # noqa: F401  (registers ChannelSlice for load_model)

    return keras.models.load_model(path, compile=False)


def main(argv: Sequence[str]) -> None:
    from absl import flags

    del argv
    values = flags.FLAGS
    if not values.output:
        raise SystemExit("--output is required.")
    model = _load_model(values)
    representative = None
    if values.representative:
        if isinstance(model, str):
            size: Any = values.input_size
        else:
            height, width = tuple(model.inputs[0].shape)[1:3]
            size = (height or values.input_size, width or values.input_size)
        representative = representative_source(values.representative, values.num_calibration, size)
    batch_size = values.batch_size or None
    try:
        if values.mode == "qat_int8" and isinstance(model, str):
            if representative is not None:
                raise ValueError("--mode=qat_int8 takes no --representative: the QAT model's "
                                 "fake-quantization ranges are its calibration.")
            # convert_qat converts the SavedModel's signature with --batch_size (re-exporting
            # it if it has none: a dynamic batch would leave SHAPE/STRIDED_SLICE ops).
            from training.qat import convert_qat

            data = convert_qat(model, values.int8_io, batch_size=batch_size)
        else:
            data = convert(model, values.mode, representative, values.int8_io,
                           batch_size=batch_size)
    except (ConversionError, ValueError, TypeError, OSError, ImportError) as error:
        raise SystemExit(f"error: {error}") from error
    sidecar = describe(data, values.mode, model)
    if values.labels:
        labels = Path(values.labels).read_text().splitlines()
    else:
        num_classes = math.prod(inventory.read_model(data).outputs[0].shape[1:])
        labels = default_labels(int(num_classes))
    written = write_outputs(data, values.output, sidecar, labels)
    print(f"mode={values.mode} size={len(data):,} bytes macs={sidecar['macs']}")
    for path in written:
        print(f"wrote {path}")


def main_entry() -> None:
    """Console-script entry point."""
    from absl import app

    _define_flags()
    app.run(main)


if __name__ == "__main__":
    main_entry()
