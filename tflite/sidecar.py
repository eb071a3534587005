"""What travels with a `.tflite`: the JSON sidecar (input contract, cost, ops) and labels.

The labels file and the sidecar are named after the `.tflite` (`x.labels.txt`, `x.json`) and
written by the writer every export shares (`ghostnet_keras.export.sidecar`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ghostnet_keras.export import sidecar as export_sidecar
from ghostnet_keras.export.sidecar import NORMALISES_INTERNALLY
from ghostnet_keras.tflite import inventory, metadata
from ghostnet_keras.tflite.conversion import is_keras3_model

__all__ = ["NORMALISES_INTERNALLY", "describe", "write_outputs"]


def describe(
    tflite_bytes: bytes,
    mode: str,
    model: Any = None,
    *,
    file_name: str | None = None,
    labels_file: str | None = None,
    gpu: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON sidecar: input/output contract, mode, cost, ops.

    Args:
        tflite_bytes: the converted model.
        mode: the conversion mode.
        model: the source model (Keras 3 for MACs/params; anything else leaves them `None`).
        file_name: the `.tflite` file name to record.
        labels_file: the labels file name to record (`write_outputs` sets it).
        gpu: the GPU accelerator's verdict (`tflite.gpu.check(...).as_dict()`), if checked.

    Returns:
        A JSON-serialisable dict.
    """
    import keras
    import tensorflow as tf

    info = inventory.read_model(tflite_bytes)
    ops = inventory.op_inventory(info)

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
        first["normalisation"] = export_sidecar.input_normalisation(model)
        if len(info.inputs[0].shape) == 4:
            first["height"], first["width"] = info.inputs[0].shape[1:3]
    keras3 = model is not None and is_keras3_model(model)
    if outputs and keras3:
        outputs[0]["kind"] = export_sidecar.output_kind(model)
    shape = tuple(info.inputs[0].shape[1:]) if info.inputs else None
    cost = export_sidecar.cost(model, shape or None) if keras3 else {}
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
        "macs": cost.get("macs"),
        "params": cost.get("params"),
        "params_without_bn_stats": cost.get("params_without_bn_stats"),
        "ops": {name: row["count"] for name, row in ops.items()},
        "metadata": _metadata_summary(tflite_bytes),
        "gpu": gpu,
        "converter": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }


def write_outputs(
    tflite_bytes: bytes, output: str | os.PathLike, sidecar: dict[str, Any], labels: Sequence[str]
) -> list[Path]:
    """Writes `output` (.tflite), `x.labels.txt` beside it and the sidecar `x.json`.

    Raises:
        ValueError: `output` does not end with `.tflite`.
        FileExistsError: `x.json` is the sidecar of another export (e.g. `x.onnx`).
    """
    output = Path(output)
    if output.suffix != ".tflite":
        raise ValueError(f"--output must end with .tflite; received {output}.")
    return export_sidecar.write_export(output, tflite_bytes, sidecar, labels)


def _metadata_summary(tflite_bytes: bytes) -> dict[str, Any] | None:
    """What the embedded TFLite Model Metadata says, in brief (None when there is none)."""
    found = metadata.read_metadata(tflite_bytes)
    if found is None:
        return None
    return {
        "name": found.get("name"),
        "version": found.get("version"),
        "min_parser_version": found.get("min_parser_version"),
        "associated_files": sorted(metadata.associated_files(tflite_bytes)),
    }
