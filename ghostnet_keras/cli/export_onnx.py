"""Command line: ONNX export on the active Keras backend, checked with ONNX Runtime.

```
ghostnet-export-onnx --width=1.0 --weights=imagenet --output=out/ghostnet_100.onnx
ghostnet-export-onnx --model=runs/quickstart/model.keras --output=out/quickstart.onnx
KERAS_BACKEND=jax python -m ghostnet_keras.cli.export_onnx --width=1.0 \
    --weights=ghostnet_100.safetensors --output=out/ghostnet_100.onnx
```

The model flags are `ghostnet_keras.cli.model_flags`'s; errors go through
`ghostnet_keras.cli.runner`.
Keras (and its backend) is imported after the flags are checked, so a usage error is instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from absl import app, flags

from ghostnet_keras.cli import model_flags
from ghostnet_keras.cli import runner as cli
from ghostnet_keras.export import sidecar as export_sidecar


def _define_flags() -> None:
    model_flags.define_flags(input_size="224")
    flags.DEFINE_string("output", None, "Output .onnx path (x.labels.txt and x.json beside it).")
    flags.DEFINE_integer("opset", None, "ONNX opset (default: the exporter's).")
    flags.DEFINE_bool("dynamic_batch", True, "Export a dynamic batch dimension.")
    flags.DEFINE_float("atol", None, "Refuse a file whose outputs differ from Keras' by more "
                       "than this (max abs); default: onnx_export.DEFAULT_ATOL (1e-4).",
                       lower_bound=0.0)
    flags.DEFINE_string("labels", None, "Labels file (one per line); default ImageNet names.")


def main(argv: Sequence[str]) -> None:
    del argv
    values = flags.FLAGS
    if not values.output:
        raise app.UsageError("--output is required.")
    if Path(values.output).suffix != ".onnx":
        raise app.UsageError(f"--output must end with .onnx; received {values.output}.")
    spec = model_flags.model_spec(values)
    export_sidecar.check_output_free(values.output)
    from ghostnet_keras.export import contract as heads
    from ghostnet_keras.export.onnx import OnnxExportError, export_onnx

    labels = heads.read_labels(values.labels) if values.labels else None
    model = model_flags.load(spec)
    options = {} if values.atol is None else {"atol": values.atol}
    try:
        sidecar = export_onnx(
            model, values.output, opset=values.opset, dynamic_batch=values.dynamic_batch,
            input_size=model_flags.export_size(spec, model), labels=labels, **options)
    except OnnxExportError as error:  # a missing package, or a file that does not match
        raise cli.UserError(str(error)) from error
    check = sidecar["check"]["max_abs_diff_by_batch"]
    print(
        f"backend={sidecar['exported_with']['keras_backend']} opset={sidecar['opset']} "
        f"dynamic_batch={sidecar['dynamic_batch']} bytes={sidecar['bytes']:,} "
        f"max_abs_diff={max(check.values()):.3g} (onnxruntime vs Keras)"
    )
    print(f"wrote {values.output}, {sidecar['labels']} and "
          f"{export_sidecar.sidecar_path(values.output).name}")


def main_entry() -> None:
    """Console-script entry point (`ghostnet-export-onnx`)."""
    cli.run(main, _define_flags)


if __name__ == "__main__":
    main_entry()
