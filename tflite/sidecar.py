"""What travels with a `.tflite`: the JSON sidecar (input contract, cost, ops) and labels."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ghostnet_keras.atomic_write import write_atomically
from ghostnet_keras.export import contract as heads
from ghostnet_keras.tflite import inventory, metadata
from ghostnet_keras.tflite.conversion import is_keras3_model

NORMALISES_INTERNALLY = "model normalises internally, feed RGB 0-255"


def describe(
    tflite_bytes: bytes,
    mode: str,
    model: Any = None,
    *,
    file_name: str | None = None,
    labels_file: str | None = "labels.txt",
    gpu: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON sidecar: input/output contract, mode, cost, ops.

    Args:
        tflite_bytes: the converted model.
        mode: the conversion mode.
        model: the source model (Keras 3 for MACs/params; anything else leaves them `None`).
        file_name: the `.tflite` file name to record.
        labels_file: the labels file name to record.
        gpu: the GPU accelerator's verdict (`tflite.gpu.check(...).as_dict()`), if checked.

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
    if outputs and model is not None and is_keras3_model(model):
        logits = heads.detect_outputs_are_logits(model)
        outputs[0]["kind"] = "logits" if logits else "probabilities (softmax)"
    macs = params = params_without_bn = None
    if model is not None and is_keras3_model(model):
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
        "metadata": _metadata_summary(tflite_bytes),
        "gpu": gpu,
        "converter": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }


def _normalises_internally(model: Any) -> bool:
    """Whether the first layer after the input is a Rescaling / Normalization layer."""
    layers = [
        layer for layer in getattr(model, "layers", []) if type(layer).__name__ != "InputLayer"
    ]
    return bool(layers) and type(layers[0]).__name__ in ("Rescaling", "Normalization")


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
