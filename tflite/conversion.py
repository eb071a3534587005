"""Keras (3) and tf_keras models -> TFLite flatbuffers, in five modes.

- `fp32`: plain float conversion.
- `fp16`: float16 weights (dequantized to float32 at load time on CPU; the GPU accelerator runs
  them in half precision).
- `dynamic`: dynamic-range quantization (int8 weights, float activations; hybrid kernels).
- `int8`: full-integer post-training quantization calibrated on representative images
  (`tflite.calibration`), with float32, uint8 or int8 input/output; average pools become
  depthwise convs first (`tflite.integer_friendly`: XNNPACK has no int8 average pool). The
  result is checked by `tflite.verify`: a conversion with only `optimizations=[DEFAULT]`
  silently leaves float ops.
- `qat_int8`: full-integer conversion of a quantization-aware-trained tf_keras model or its
  SavedModel (the fake-quant ranges replace calibration). Same check.

Keras 3 models go through `tf.lite.TFLiteConverter.from_keras_model` (which exports them with
`keras.export.ExportArchive`); never `from_concrete_functions` with a Keras 3 model (it silently
produces NaN outputs with TF 2.21). By default the batch dimension is fixed to 1: with a dynamic
batch, `Flatten` lowers to SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE on int32 tensors, which the
GPU accelerator rejects; with batch 1 the converter folds them into one static RESHAPE.
"""

from __future__ import annotations

import contextlib
import functools
import io as _io
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ghostnet_keras.tflite import inventory
from ghostnet_keras.tflite.calibration import RepresentativeData, RepresentativeDataError
from ghostnet_keras.tflite.integer_friendly import pools_as_depthwise
from ghostnet_keras.tflite.verify import ConversionError, verify_full_integer

MODES = ("fp32", "fp16", "dynamic", "int8", "qat_int8")
INT8_MODES = ("int8", "qat_int8")
IO_TYPES = ("float", "uint8", "int8")


def convert(
    model: Any,
    mode: str,
    representative_data: RepresentativeData | None = None,
    io: str = "float",
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
        io: the input/output tensor type: `"float"` (float32, the default), or for `int8` /
            `qat_int8` `"uint8"` (what Android's Task Library and MediaPipe take: the input's
            quantization is scale 1, zero point 0, i.e. the RGB 0-255 values themselves) or
            `"int8"` (the scale and zero point are in the model's input/output details;
            MediaPipe and the Task Library refuse int8 tensors).
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
        BackendError: not on the TensorFlow Keras backend.
    """
    from ghostnet_keras.backends import require_tensorflow

    require_tensorflow("TFLite conversion (ghostnet_keras.tflite)")
    import tensorflow as tf

    if mode not in MODES:
        raise ValueError(f"Unknown mode {mode!r}; expected one of {', '.join(MODES)}.")
    if io not in IO_TYPES:
        raise ValueError(f"Unknown io {io!r}; expected one of {', '.join(IO_TYPES)}.")
    if io != "float" and mode not in INT8_MODES:
        raise ValueError(f"io={io!r} needs an integer model (modes {INT8_MODES}); "
                         f"mode={mode!r} keeps float32 input and output.")
    if mode == "int8" and representative_data is None:
        raise RepresentativeDataError(
            "mode='int8' (full-integer quantization) needs representative_data: a callable "
            "returning images in the model's input range (RGB 0-255 for GhostNet), e.g. "
            "ghostnet_keras.synthetic_images or tflite.calibration.folder_images. Without it the "
            "converter would fall back to dynamic-range quantization and leave float ops."
        )
    if mode in ("fp32", "fp16", "dynamic") and representative_data is not None:
        raise ValueError(f"mode={mode!r} takes no representative_data (it is not calibrated).")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None; received {batch_size}.")

    saved_model = isinstance(model, (str, os.PathLike))
    if mode == "qat_int8" and not saved_model and is_keras3_model(model):
        raise TypeError(
            "mode='qat_int8' takes a tf_keras model (tfmot's quantize_model only accepts "
            "tf_keras models) or a SavedModel path, not a Keras 3 model. Use mode='int8' for "
            "post-training quantization of a Keras 3 model."
        )

    if signature_key is not None and not saved_model:
        raise ValueError("signature_key applies to a SavedModel path only.")
    if saved_model and signature_key is None and batch_size is not None:
        signature_key = signature_with_batch(model, batch_size)
    if saved_model:
        converter = tf.lite.TFLiteConverter.from_saved_model(
            str(model), signature_keys=[signature_key] if signature_key else None)
    else:
        model = _tflite_layout(model, integer=mode == "int8")
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
        if io != "float":
            converter.inference_input_type = converter.inference_output_type = getattr(tf, io)

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
        verify_full_integer(result, float_io=io == "float")
        if io == "uint8":
            result = encode_rgb_input(result)
    return bytes(result)


def convert_modes(
    model: Any,
    modes: Sequence[str],
    representative_data: RepresentativeData | None = None,
    io: str = "float",
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
        io: input/output type of the `int8` / `qat_int8` modes (the others keep float).
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
                       io if mode in INT8_MODES else "float", batch_size=batch_size)

    if len(modes) < 2 or not is_keras3_model(model) or "qat_int8" in modes:
        return {mode: one(model, mode) for mode in modes}
    float_model = _tflite_layout(model, integer=False)
    integer_model = _tflite_layout(float_model, integer=True) if "int8" in modes else float_model
    with tempfile.TemporaryDirectory(prefix="tflite_export_") as scratch:
        float_export = export_for_conversion(float_model, Path(scratch, "float"), batch_size)
        integer_export = float_export if integer_model is float_model else (
            export_for_conversion(integer_model, Path(scratch, "integer"), batch_size))
        return {mode: one(str(integer_export if mode == "int8" else float_export), mode)
                for mode in modes}


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

    fixed = _with_batch_size(_tflite_layout(model, integer=False), batch_size)
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
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stdout(_io.StringIO()) as python:

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


def is_keras3_model(model: Any) -> bool:
    import keras

    return isinstance(model, keras.Model)


def _keras_module_of(model: Any) -> Any:
    if is_keras3_model(model):
        import keras

        return keras
    module = type(model).__module__.split(".")[0]
    if module in ("tf_keras", "keras") and module in sys.modules:
        return sys.modules[module]
    raise TypeError(
        f"Expected a Keras model or a SavedModel path; received {type(model).__name__}."
    )


def _tflite_layout(model: Any, *, integer: bool) -> Any:
    """A Keras 3 model as TFLite runs it (other models are returned unchanged).

    Channels-first is rebuilt channels-last with the same weights
    (`ghostnet_keras.to_channels_last`): TFLite models are NHWC. For full-integer conversion the
    average pools become depthwise convs (`tflite.integer_friendly`): XNNPACK has no int8
    AVERAGE_POOL_2D (the GhostNetV2/V3 DFC gates' pools). Each step returns the same object
    when it changes nothing.
    """
    if not is_keras3_model(model):
        return model
    from ghostnet_keras.data_format import to_channels_last  # imports Keras (and TensorFlow)

    model = to_channels_last(model)
    return pools_as_depthwise(model) if integer else model


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


def encode_rgb_input(tflite_bytes: bytes) -> bytes:
    """Gives a uint8-input model the input quantization scale 1, zero point 0.

    The converter derives the uint8 input's scale from the calibration range (e.g. 0.996 when no
    calibration pixel reached 255). The uint8 input only feeds QUANTIZE ops, which requantize
    from the input's parameters to their own calibrated int8 output, so setting the input to
    (1, 0) is exact: the model then takes the RGB 0-255 values themselves, as Android clients
    feed them.
    """
    import flatbuffers

    schema = inventory._schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(tflite_bytes), 0)
    graph = model.subgraphs[0]
    uint8 = schema.TensorType.UINT8
    quantize = {i for i, code in enumerate(model.operatorCodes)
                if max(code.builtinCode, code.deprecatedBuiltinCode)
                == schema.BuiltinOperator.QUANTIZE}
    for index in graph.inputs:
        tensor = graph.tensors[index]
        if tensor.type != uint8:
            continue
        readers = [op for op in graph.operators if index in op.inputs]
        if not readers or any(op.opcodeIndex not in quantize for op in readers):
            raise ConversionError(
                f"uint8 input {tensor.name!r} feeds {len(readers)} op(s) other than QUANTIZE; "
                "cannot set its quantization to RGB 0-255.")
        tensor.quantization.scale = [1.0]
        tensor.quantization.zeroPoint = [0]
    builder = flatbuffers.Builder(len(tflite_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def signature_with_batch(saved_model_dir: str | os.PathLike, batch_size: int) -> str:
    """The SavedModel signature whose image input has batch `batch_size`.

    `serving_default` when it has that batch, else the first other signature that has it (the
    QAT export carries a batch-1 signature for conversion beside a dynamic-batch default).

    Raises:
        ConversionError: no signature has that batch (a dynamic batch would leave SHAPE /
            STRIDED_SLICE ops that the GPU refuses): re-export the model with a batch-1
            signature, or convert with `batch_size=None`.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    path = Path(saved_model_dir, "saved_model.pb")
    if not path.is_file():
        raise FileNotFoundError(f"No SavedModel at {saved_model_dir}.")
    proto = saved_model_pb2.SavedModel.FromString(path.read_bytes())
    batches = {}
    for key, signature in proto.meta_graphs[0].signature_def.items():
        if key.startswith("__") or not signature.inputs:  # e.g. __saved_model_init_op
            continue
        dims = next(iter(signature.inputs.values())).tensor_shape.dim
        batches[key] = int(dims[0].size) if dims else None
    for key in ("serving_default", *sorted(batches)):
        if batches.get(key) == batch_size:
            return key
    raise ConversionError(
        f"No signature of the SavedModel {saved_model_dir} has batch {batch_size} "
        f"(signatures and batches: {batches}; -1 is dynamic). Re-export it with a batch-"
        f"{batch_size} signature (ghostnet_keras.training.qat.save_qat_model does) or convert "
        "with batch_size=None."
    )
