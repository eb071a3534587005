"""What travels beside every exported model file (`.tflite`, `.onnx`): labels and JSON sidecar.

An export `out/x.tflite` writes `out/x.labels.txt` (one class name per line, in output order)
and the sidecar `out/x.json`, whose `"file"` and `"labels"` name those two files: exports into
one folder never share (or overwrite) each other's labels. A sidecar that already describes
another file (`x.onnx` next to a new `x.tflite`) is refused rather than overwritten. The model
file, the labels and the sidecar (last) go through `files.write_atomically`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ghostnet_keras.atomic_write import write_atomically

LABELS_SUFFIX = ".labels.txt"
NORMALISES_INTERNALLY = "model normalises internally, feed RGB 0-255"
NO_PREPROCESSING = "unknown: the model has no preprocessing layer"


def labels_path(output: str | os.PathLike) -> Path:
    """`out/x.tflite` -> `out/x.labels.txt`."""
    output = Path(output)
    return output.with_name(output.stem + LABELS_SUFFIX)


def sidecar_path(output: str | os.PathLike) -> Path:
    """`out/x.tflite` -> `out/x.json`."""
    return Path(output).with_suffix(".json")


def check_labels(labels: Sequence[str], num_classes: int) -> list[str]:
    """`labels` as a list, one non-empty single-line name per class.

    Raises:
        ValueError: a count other than `num_classes`, or an empty or multi-line label.
    """
    labels = list(labels)
    if len(labels) != num_classes:
        raise ValueError(
            f"the model has {num_classes} classes but {len(labels)} labels were given.")
    bad = [i for i, label in enumerate(labels) if not label.strip() or "\n" in label
           or "\r" in label]
    if bad:
        raise ValueError(f"label {bad[0]} ({labels[bad[0]]!r}) is empty or spans lines.")
    return labels


def input_normalisation(model: Any) -> str:
    """What the input expects: whether the first layer is a Rescaling / Normalization layer."""
    layers = [layer for layer in getattr(model, "layers", [])
              if type(layer).__name__ != "InputLayer"]
    if layers and type(layers[0]).__name__ in ("Rescaling", "Normalization"):
        return NORMALISES_INTERNALLY
    return NO_PREPROCESSING


def output_kind(model: Any) -> str:
    """`"logits"`, `"probabilities (softmax)"`, or `"unknown"` (another activation)."""
    from ghostnet_keras.export import contract as heads

    try:
        return "logits" if heads.detect_outputs_are_logits(model) else "probabilities (softmax)"
    except ValueError:
        return "unknown"


def cost(model: Any, input_shape: tuple[int, ...] | None) -> dict[str, int | None]:
    """`macs`, `params`, `params_without_bn_stats` of a Keras model (`None` when unknown)."""
    from ghostnet_keras import profile

    try:
        result = profile(model, input_shape=input_shape)
    except (TypeError, ValueError):
        return {"macs": None, "params": None, "params_without_bn_stats": None}
    return {"macs": result.macs, "params": result.params,
            "params_without_bn_stats": result.params_without_bn_stats}


def check_output_free(output: str | os.PathLike) -> None:
    """Refuses an `output` whose sidecar name is taken by another export (`FileExistsError`)."""
    output = Path(output)
    path = sidecar_path(output)
    if not path.is_file():
        return
    try:
        described = json.loads(path.read_text(encoding="utf-8")).get("file")
    except (ValueError, AttributeError, UnicodeDecodeError):
        described = None
    if described is None:
        raise FileExistsError(
            f"{path} exists and is not the sidecar of an export; it would be overwritten by the "
            f"sidecar of {output.name}: choose another output name.")
    if described != output.name:
        raise FileExistsError(
            f"{path} is the sidecar of {described}, another export in that folder; choose "
            f"another output name for {output.name}.")


def write_export(
    output: str | os.PathLike, data: bytes, sidecar: dict[str, Any], labels: Sequence[str],
) -> list[Path]:
    """Writes the model `data` to `output`, its labels and its sidecar (last) beside it.

    The sidecar's `"file"` and `"labels"` are set to the names written.

    Returns:
        The paths written: the model, the labels, the sidecar.

    Raises:
        FileExistsError: the sidecar's name is taken by another export's sidecar.
    """
    output = Path(output)
    check_output_free(output)
    labels_file = labels_path(output)
    sidecar = {**sidecar, "file": output.name, "labels": labels_file.name}
    return write_atomically({
        output: bytes(data),
        labels_file: "\n".join(labels) + "\n",
        sidecar_path(output): json.dumps(sidecar, indent=2) + "\n",
    })
