"""Command line: ONNX export on the active Keras backend, checked with ONNX Runtime.

```
ghostnet-export-onnx --width=1.0 --weights=imagenet --output=out/ghostnet_100.onnx
ghostnet-export-onnx --model=runs/quickstart/model.keras --output=out/quickstart.onnx
KERAS_BACKEND=jax python -m ghostnet_keras.cli.export_onnx --width=1.0 \
    --weights=ghostnet_100.safetensors --output=out/ghostnet_100.onnx
```
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import keras
from absl import app, flags

from ghostnet_keras.export import contract as heads
from ghostnet_keras.export.onnx import DEFAULT_ATOL, OnnxExportError, export_onnx
from ghostnet_keras.models.ghostnet import GhostNet
from ghostnet_keras.weights.keras_files import load_keras_file
from ghostnet_keras.weights.loading import WeightsError


def _define_flags() -> None:
    flags.DEFINE_string("model", None, "A .keras model file to export.")
    flags.DEFINE_float("width", None, "Build GhostNet with this width instead of --model.")
    flags.DEFINE_string(
        "weights", None,
        "With --width: 'imagenet' or a weights file (.safetensors, .pth, .weights.h5, .keras).",
    )
    flags.DEFINE_integer("input_size", 224, "Input height and width (with --width, or for a "
                         "model that takes any size).")
    flags.DEFINE_string("output", None, "Output .onnx path (labels.txt and .json beside it).")
    flags.DEFINE_integer("opset", None, "ONNX opset (default: the exporter's).")
    flags.DEFINE_bool("dynamic_batch", True, "Export a dynamic batch dimension.")
    flags.DEFINE_float("atol", DEFAULT_ATOL, "Refuse a file whose outputs differ from Keras' "
                       "by more than this (max abs).")
    flags.DEFINE_string("labels", None, "Labels file (one per line); default ImageNet names.")


def load_model(model: str | None, width: float | None, weights: str | None,
               input_size: int) -> keras.Model:
    """The model the command line names: a `.keras` file or a GhostNet of `width`."""
    if (model is None) == (width is None):
        raise OnnxExportError("give exactly one of --model and --width.")
    if width is not None:
        return GhostNet(width=width, weights=weights, input_shape=(input_size, input_size, 3))
    if weights is not None:
        raise OnnxExportError("--weights goes with --width; a --model file has its weights.")
    path = Path(model)
    if path.suffix != ".keras" or not path.is_file():
        raise OnnxExportError(f"--model must be an existing .keras file; received {model}.")
    return load_keras_file(path)


def main(argv: Sequence[str]) -> None:
    del argv
    values = flags.FLAGS
    if not values.output:
        raise SystemExit("error: --output is required.")
    try:
        model = load_model(values.model, values.width, values.weights, values.input_size)
        labels = heads.read_labels(values.labels) if values.labels else None
        sidecar = export_onnx(
            model, values.output, opset=values.opset, dynamic_batch=values.dynamic_batch,
            input_size=values.input_size, atol=values.atol, labels=labels,
        )
    except (OnnxExportError, WeightsError, ValueError, OSError) as error:
        raise SystemExit(f"error: {error}") from error
    check = sidecar["check"]["max_abs_diff_by_batch"]
    print(
        f"backend={sidecar['exported_with']['keras_backend']} opset={sidecar['opset']} "
        f"dynamic_batch={sidecar['dynamic_batch']} bytes={sidecar['bytes']:,} "
        f"max_abs_diff={max(check.values()):.3g} (onnxruntime vs Keras)"
    )
    print(f"wrote {values.output}, labels.txt and {Path(values.output).with_suffix('.json')}")


def main_entry() -> None:
    """Console-script entry point (`ghostnet-export-onnx`)."""
    _define_flags()
    app.run(main)


if __name__ == "__main__":
    main_entry()
