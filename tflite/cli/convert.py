"""Command line: a Keras model, a GhostNet width or a QAT SavedModel -> `.tflite` + sidecars.

```
ghostnet-tflite-convert --width=1.0 --weights=imagenet --mode=fp16 --output=out/ghostnet_100.tflite
ghostnet-tflite-convert --model=ghostnet.keras --mode=int8 --io=uint8 \
    --representative=/data/val_images --num_calibration=200 --output=out/ghostnet_int8.tflite
ghostnet-tflite-convert --model=runs/quickstart_qat/qat_saved_model --mode=qat_int8 \
    --io=uint8 --output=out/qat.tflite
```

Writes `x.tflite` with TFLite Model Metadata (name, description, version, author, license,
the RGB 0-255 input contract and the labels attached, as MediaPipe's ImageClassifier and the
Task Library read it), `x.labels.txt` beside it and the sidecar `x.json` (each through a
temporary file; `ghostnet_keras.export.sidecar`). The model flags are
`ghostnet_keras.cli.model_flags`'s, shared with the ONNX, serving and evaluation commands. The
conversion is `tflite.conversion`, calibration `tflite.calibration`, the sidecar
`tflite.sidecar`, the GPU check `tflite.gpu`. Same as `python -m ghostnet_keras.tflite.cli.convert`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from absl import app, flags

import ghostnet_keras
from ghostnet_keras.cli import model_flags
from ghostnet_keras.cli import runner as cli
from ghostnet_keras.export import sidecar as export_sidecar
from ghostnet_keras.tflite import calibration, conversion, gpu, inventory, metadata, sidecar

DEFAULT_DESCRIPTION = (
    "GhostNet image classifier (ghostnet_keras): RGB input with values 0-255, normalised inside "
    "the model."
)


def define_flags() -> None:
    model_flags.define_flags(input_size="224", saved_model=True)
    flags.DEFINE_enum("mode", "fp32", list(conversion.MODES), "Conversion mode.")
    flags.DEFINE_string("output", None,
                        "Output .tflite path (x.labels.txt and the sidecar x.json beside it).")
    flags.DEFINE_enum(
        "io", "float", list(conversion.IO_TYPES),
        "Input/output tensors of int8 models: float32, uint8 (Android's Task Library and "
        "MediaPipe; input = RGB 0-255) or int8 (refused by MediaPipe and the Task Library).",
    )
    flags.DEFINE_string(
        "representative", None,
        "Calibration images for int8: an image folder (real images, e.g. a few hundred from "
        "the training set) or 'random' (synthetic, smoke tests only).",
    )
    flags.DEFINE_integer("num_calibration", 100, "Number of calibration images (with "
                         "--representative).", lower_bound=1)
    flags.DEFINE_integer(
        "batch_size", 1, "Batch dimension of the converted model; 0 keeps it dynamic.",
        lower_bound=0)
    flags.DEFINE_string("labels", None, "Labels file (one per line); default ImageNet names.")
    flags.DEFINE_string("name", None, "Model name in the TFLite metadata (default: the model's).")
    flags.DEFINE_string("description", DEFAULT_DESCRIPTION, "Description in the metadata.")
    flags.DEFINE_string("version", None, "Model version in the metadata.")
    flags.DEFINE_string("author", "", "Author in the metadata.")
    flags.DEFINE_string("license", "", "License in the metadata.")
    flags.DEFINE_bool(
        "check_gpu", True,
        "Compile fp32/fp16 models on LiteRT's GPU accelerator (a GPU, or the software GPU of "
        "tools/install_software_gpu.sh) and record the verdict in the sidecar.",
    )


def check_flags(values: Any) -> model_flags.ModelSpec:
    """Refuses missing, conflicting and ignored flags before anything is built."""
    if not values.output:
        raise app.UsageError("--output is required.")
    if Path(values.output).suffix != ".tflite":
        raise app.UsageError(f"--output must end with .tflite; received {values.output}.")
    if values.mode == "int8" and not values.representative:
        raise app.UsageError("--mode=int8 needs calibration images: --representative=<image "
                             "folder> (or 'random' for a smoke test).")
    if values.representative and values.mode != "int8":
        raise app.UsageError(f"--representative calibrates mode int8, not {values.mode}.")
    if values["num_calibration"].present and not values.representative:
        raise app.UsageError("--num_calibration needs --representative (mode int8).")
    if values.io != "float" and values.mode not in conversion.INT8_MODES:
        raise app.UsageError(f"--io={values.io} needs an integer mode "
                             f"({', '.join(conversion.INT8_MODES)}), not {values.mode}.")
    spec = model_flags.model_spec(values, saved_model=True)
    if values.mode == "qat_int8" and not spec.is_saved_model:
        raise app.UsageError("--mode=qat_int8 converts a QAT SavedModel directory (--model).")
    return spec


def _calibration_size(spec: model_flags.ModelSpec, model: Any, values: Any) -> tuple[int, int]:
    """The calibration image size: the model's fixed input, else `--input_size`.

    Raises:
        app.UsageError: `--input_size` that differs from the model's fixed input, or that
            nothing would use (a model file of any input size, not calibrated).
    """
    size = model_flags.export_size(spec, model)
    fixed = not isinstance(model, str) and None not in tuple(model.inputs[0].shape)[1:3]
    if spec.model is not None and spec.size_given and not fixed and not values.representative:
        raise app.UsageError("--input_size would be ignored: the converter keeps the input size "
                             f"of {spec.model}; --input_size sizes the calibration images.")
    return size or (224, 224)


def gpu_verdict(data: bytes, mode: str) -> dict[str, Any]:
    """The sidecar's GPU entry: the accelerator's check, or why int8 is not a GPU format."""
    if mode in conversion.INT8_MODES:
        return {"checked": False, "reason": gpu.INT8_NOTE}
    return {"checked": True, **gpu.check(data, enforce_f32=mode == "fp32").as_dict()}


def main(argv: Sequence[str]) -> None:
    del argv
    values = flags.FLAGS
    spec = check_flags(values)
    from ghostnet_keras.export import (
        contract as heads,  # imports Keras: after the flags are checked
    )

    labels = heads.read_labels(values.labels) if values.labels else None
    export_sidecar.check_output_free(values.output)
    model = model_flags.load(spec)
    if labels is not None and not isinstance(model, str):  # before the conversion
        export_sidecar.check_labels(labels, int(math.prod(model.outputs[0].shape[1:])))
    size = _calibration_size(spec, model, values)
    representative = None
    if values.representative:
        representative = calibration.representative_source(
            values.representative, values.num_calibration, size)
    data = conversion.convert(model, values.mode, representative, values.io,
                              batch_size=values.batch_size or None)
    classes = int(math.prod(inventory.read_model(data).outputs[0].shape[1:]))
    labels = export_sidecar.check_labels(
        heads.default_labels(classes) if labels is None else labels, classes)
    name = values.name or (Path(model).name if isinstance(model, str) else model.name)
    data = metadata.with_image_classifier_metadata(
        data, labels, name=name, description=values.description,
        version=values.version or ghostnet_keras.__version__, author=values.author,
        license=values.license)
    gpu_entry = gpu_verdict(data, values.mode) if values.check_gpu else None
    description = sidecar.describe(data, values.mode, None if isinstance(model, str) else model,
                                   gpu=gpu_entry)
    written = sidecar.write_outputs(data, values.output, description, labels)
    print(f"mode={values.mode} io={values.io} size={len(data):,} bytes "
          f"macs={description['macs']}")
    if gpu_entry is not None:
        print("GPU: " + (gpu_entry.get("reason") or _gpu_line(gpu_entry)))
    for path in written:
        print(f"wrote {path}")


def _gpu_line(entry: dict[str, Any]) -> str:
    if not entry["fully_delegated"]:
        refused = ", ".join(entry["fallback_ops"]) or entry["error"]
        return f"not fully delegated on {entry['adapter_label']} ({refused})"
    return (f"fully delegated ({entry['precision']}) on {entry['adapter_label']}, "
            f"max |GPU - CPU| = {entry['relative_diff']:.2e} of the largest output")


def main_entry() -> None:
    """Console-script entry point (`ghostnet-tflite-convert`)."""
    cli.run(main, define_flags, user_errors=(conversion.ConversionError,))


if __name__ == "__main__":
    main_entry()
