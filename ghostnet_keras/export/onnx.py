"""ONNX export of a Keras model on the active Keras backend, checked with ONNX Runtime.

`export_onnx(model, output)` exports through Keras' own `model.export(format="onnx")` route of
the active backend (TensorFlow: tf2onnx; JAX: jax2onnx; torch: `torch.onnx`), into a temporary
file beside `output`. ONNX Runtime then runs that file on test images and its outputs are
compared with the Keras model's: only a file within `atol` (default 1e-4, max abs difference)
is moved into place, with its labels (`x.labels.txt` for `x.onnx`) and a JSON sidecar (`x.json`,
written last; `ghostnet_keras.export.sidecar`, shared with the TFLite export) recording the
input/output contract, the opset, the exporter versions and the measured
difference. A file that does not match raises `OnnxMismatchError` and nothing is written.

The batch dimension is dynamic by default on every backend (torch then uses its TorchScript
exporter, as Keras does for dynamic shapes); the check runs batch 1 and batch 2 through it.
The export always passes an explicit input signature and calls the model eagerly first, which
avoids Keras' "The model provided has never called." error on JAX (raised for a model that was
only used through `predict`).

Command line: `ghostnet_keras.cli.export_onnx` (`ghostnet-export-onnx`). Needs the `onnx` extra on
TensorFlow and torch, `jax-onnx` on JAX.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ghostnet_keras.data_format import reject_keras_hub_task

DEFAULT_ATOL = 1e-4
INPUT_NAME = "images"
SIDECAR_FORMAT = "ghostnet_keras.onnx.sidecar/1"
# The Python distribution that converts on each backend (Keras' routes).
EXPORTERS = {"tensorflow": "tf2onnx", "jax": "jax2onnx", "torch": "torch"}


class OnnxExportError(RuntimeError):
    """The export could not be done (backend, model or exporter problem)."""


class OnnxMismatchError(OnnxExportError):
    """The exported file's outputs differ from the Keras model's by more than the tolerance."""


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _require(distribution: str, module: str, extra: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise OnnxExportError(
            f"ONNX export on the {keras.backend.backend()} backend needs `{distribution}`: "
            f'pip install "ghostnet-keras[{extra}]"'
        )


def _check_requirements(backend: str) -> None:
    if backend not in EXPORTERS:
        raise OnnxExportError(
            f"ONNX export supports the tensorflow, jax and torch Keras backends, not {backend!r}."
        )
    extra = "jax-onnx" if backend == "jax" else "onnx"
    _require("onnxruntime", "onnxruntime", extra)
    _require("onnx", "onnx", extra)
    if backend == "tensorflow":
        _require("tf2onnx", "tf2onnx", extra)
    elif backend == "jax":
        _require("jax2onnx", "jax2onnx", extra)


def _image_shape(
    model: keras.Model, input_size: int | tuple[int, int] | None
) -> tuple[int, int, int]:
    if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4:
        raise OnnxExportError(
            f"expected a model with one image input (N, H, W, C); {model.name!r} has inputs "
            f"{[tuple(t.shape) for t in model.inputs]}."
        )
    height, width, channels = tuple(model.inputs[0].shape)[1:]
    if channels is None:
        raise OnnxExportError("the model's input has an undefined channel dimension.")
    if height is None or width is None:
        if input_size is None:
            raise OnnxExportError(
                f"the model takes any image size {tuple(model.inputs[0].shape)}; give "
                "input_size (--input_size) to fix it for the export."
            )
        size_h, size_w = (input_size, input_size) if isinstance(input_size, int) else input_size
        height, width = height or size_h, width or size_w
    return int(height), int(width), int(channels)


def check_images(batch: int, shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """Deterministic float32 RGB images in [0, 255] for the ONNX Runtime check."""
    return np.random.default_rng(seed).uniform(0.0, 255.0, (batch, *shape)).astype(np.float32)


def _keras_outputs(model: keras.Model, images: np.ndarray) -> list[np.ndarray]:
    outputs = model(images, training=False)  # eager: also marks the model as called
    return [keras.ops.convert_to_numpy(t) for t in keras.tree.flatten(outputs)]


def _onnx_outputs(path: Path, images: np.ndarray) -> list[np.ndarray]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(
        str(path), options, providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    return session.run(None, {name: images})


def _opset(model_proto: Any) -> int | None:
    for entry in model_proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def _tensor_entries(values: Any) -> list[dict[str, Any]]:
    entries = []
    for value in values:
        dims = value.type.tensor_type.shape.dim
        shape = [d.dim_param or None if not d.HasField("dim_value") else d.dim_value for d in dims]
        entries.append({"name": value.name, "shape": shape})
    return entries


def _export_to(model: keras.Model, path: Path, signature: list, opset: int | None) -> None:
    import contextlib
    import io
    import logging

    # tf2onnx logs non-fatal optimizer tracebacks (`optimize_transpose`) at ERROR level; the
    # result is checked below, so they are kept out of the user's terminal.
    tf2onnx_logger = logging.getLogger("tf2onnx")
    level = tf2onnx_logger.level
    tf2onnx_logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model.export(
                str(path), format="onnx", input_signature=signature, opset_version=opset,
                verbose=False,
            )
    finally:
        tf2onnx_logger.setLevel(level)


def export_onnx(
    model: keras.Model,
    output: str | os.PathLike,
    *,
    opset: int | None = None,
    dynamic_batch: bool = True,
    input_size: int | tuple[int, int] | None = None,
    atol: float = DEFAULT_ATOL,
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Exports `model` to ONNX on the active backend, checks it, writes it with its sidecar.

    Args:
        model: a Keras model with one NHWC image input (e.g. `GhostNet(...)`).
        output: the `.onnx` path; `x.labels.txt` and the sidecar `x.json` go beside it.
        opset: the ONNX opset; `None` lets the backend's exporter choose (recorded).
        dynamic_batch: export a dynamic batch dimension (checked at batch 1 and 2).
        input_size: size (or (height, width)) for a model that takes any image size.
        atol: the largest max-abs difference to Keras' outputs accepted.
        labels: one label per output class (default: ImageNet names for 1000 classes).

    Returns:
        The sidecar dict (also written as JSON).

    Raises:
        OnnxExportError: unsupported backend, missing package, bad model or output name.
        ValueError: `labels` do not match the model's classes.
        FileExistsError: `x.json` is the sidecar of another export (e.g. `x.tflite`).
        OnnxMismatchError: ONNX Runtime's outputs differ from Keras' by more than `atol`.
    """
    reject_keras_hub_task(model, "export_onnx")
    import onnx

    from ghostnet_keras.export import contract as heads
    from ghostnet_keras.export import sidecar as export_sidecar

    backend = keras.backend.backend()
    output = Path(output)
    if output.suffix != ".onnx":
        raise OnnxExportError(f"the output must end with .onnx; received {output}.")
    _check_requirements(backend)
    shape = _image_shape(model, input_size)
    signature = [
        keras.InputSpec(
            shape=(None if dynamic_batch else 1, *shape), dtype="float32", name=INPUT_NAME
        )
    ]
    batches = (1, 2) if dynamic_batch else (1,)
    images = {batch: check_images(batch, shape, seed=batch) for batch in batches}
    expected = {batch: _keras_outputs(model, images[batch]) for batch in batches}
    num_classes = int(np.prod(expected[1][0].shape[1:]))
    labels = export_sidecar.check_labels(
        heads.default_labels(num_classes) if labels is None else labels, num_classes)
    export_sidecar.check_output_free(output)

    output.parent.mkdir(parents=True, exist_ok=True)
    # A temporary folder beside `output`: some exporters (jax2onnx) write the weights to an
    # external-data file next to the graph; both are read back and written as one file.
    with tempfile.TemporaryDirectory(prefix=f".{output.name}.", dir=output.parent) as folder:
        exported = Path(folder) / "model.onnx"
        try:
            _export_to(model, exported, signature, opset)
        except Exception as error:  # the exporters raise many types; name the step
            raise OnnxExportError(
                f"{EXPORTERS[backend]} failed to export {model.name!r}: "
                f"{type(error).__name__}: {error}"
            ) from error
        proto = onnx.load_model(str(exported), load_external_data=True)
        data = proto.SerializeToString()
        tmp = Path(folder) / output.name
        tmp.write_bytes(data)
        differences = {}
        for batch in batches:
            got = _onnx_outputs(tmp, images[batch])
            if len(got) != len(expected[batch]):
                raise OnnxMismatchError(
                    f"the ONNX file has {len(got)} outputs, the Keras model "
                    f"{len(expected[batch])}."
                )
            differences[batch] = max(
                float(np.max(np.abs(np.asarray(g, np.float64) - e)))
                for g, e in zip(got, expected[batch], strict=True)
            )
            if not differences[batch] <= atol:
                raise OnnxMismatchError(
                    f"ONNX Runtime's outputs differ from Keras' by {differences[batch]:.3g} "
                    f"(max abs, batch {batch}) > {atol:g}; nothing was written."
                )
        sidecar = _describe(model, proto, data, output, backend, shape, differences, atol)
    written = export_sidecar.write_export(output, data, sidecar, labels)
    return {**sidecar, "file": written[0].name, "labels": written[1].name}


def _describe(
    model: keras.Model,
    proto: Any,
    data: bytes,
    output: Path,
    backend: str,
    shape: tuple[int, int, int],
    differences: dict[int, float],
    atol: float,
) -> dict[str, Any]:
    from ghostnet_keras.export import sidecar as export_sidecar

    inputs = _tensor_entries(proto.graph.input)
    outputs = _tensor_entries(proto.graph.output)
    for entry in inputs:
        entry.update(dtype="float32", layout="NHWC", color="RGB", height=shape[0],
                     width=shape[1])
        entry["normalisation"] = export_sidecar.input_normalisation(model)
    if outputs:
        outputs[0]["kind"] = export_sidecar.output_kind(model)
    cost = export_sidecar.cost(model, shape)
    exporter = EXPORTERS[backend]
    return {
        "format": SIDECAR_FORMAT,
        "model": model.name,
        "file": output.name,
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "opset": _opset(proto),
        "dynamic_batch": isinstance(inputs[0]["shape"][0], str) or inputs[0]["shape"][0] is None,
        "inputs": inputs,
        "outputs": outputs,
        "labels": export_sidecar.labels_path(output).name,
        "macs": cost["macs"],
        "params": cost["params"],
        "exported_with": {
            "keras_backend": backend,
            "keras": keras.__version__,
            backend: _version(backend),
            exporter: _version(exporter),
            "onnx": _version("onnx"),
        },
        "check": {
            "runtime": f"onnxruntime {_version('onnxruntime')} (CPUExecutionProvider)",
            "images": "uniform random RGB in [0, 255], seed = batch size",
            "max_abs_diff_by_batch": {str(b): d for b, d in differences.items()},
            "atol": atol,
        },
    }
