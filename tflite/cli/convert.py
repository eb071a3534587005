"""Command line: a Keras model, a GhostNet width or a QAT SavedModel -> `.tflite` + sidecars.

```
ghostnet-tflite-convert --width=1.0 --weights=imagenet --mode=fp16 --output=out/ghostnet_100.tflite
ghostnet-tflite-convert --model=ghostnet.keras --mode=int8 --io=uint8 \
    --representative=/data/val_images --num_calibration=200 --output=out/ghostnet_int8.tflite
ghostnet-tflite-convert --model=runs/quickstart_qat/qat_saved_model --mode=qat_int8 \
    --io=uint8 --output=out/qat.tflite
```

Writes `x.tflite` with TFLite Model Metadata (name, description, version, author, license,
the RGB 0-255 input contract and `labels.txt` attached, as MediaPipe's ImageClassifier and the
Task Library read it), `labels.txt` beside it and the sidecar `x.json` (each through a temporary
file). The conversion is `tflite.conversion`, calibration `tflite.calibration`, the sidecar
`tflite.sidecar`, the GPU check `tflite.gpu`. Same as `python -m ghostnet_keras.tflite.cli.convert`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from absl import app, flags

import ghostnet_keras
from ghostnet_keras.export import contract as heads
from ghostnet_keras.tflite import calibration, conversion, gpu, inventory, metadata, sidecar

DEFAULT_DESCRIPTION = (
    "GhostNet image classifier (ghostnet_keras): RGB input with values 0-255, normalised inside "
    "the model."
)


def define_flags() -> None:
    flags.DEFINE_string(
        "model", None, "A .keras model, or a SavedModel directory (e.g. a tf_keras QAT export)."
    )
    flags.DEFINE_float("width", None, "Build GhostNet with this width instead of --model.")
    flags.DEFINE_string(
        "weights", None, "With --width: 'imagenet' or a weights file (.weights.h5, .keras, ...)."
    )
    flags.DEFINE_list("input_size", ["224"], "With --width: height[,width] of the input.")
    flags.DEFINE_enum("mode", "fp32", list(conversion.MODES), "Conversion mode.")
    flags.DEFINE_string("output", None, "Output .tflite path (labels.txt and .json beside it).")
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
    flags.DEFINE_integer("num_calibration", 100, "Number of calibration images.")
    flags.DEFINE_integer(
        "batch_size", 1, "Batch dimension of the converted model; 0 keeps it dynamic."
    )
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


def _input_size(values: Any) -> tuple[int, int]:
    sizes = [int(v) for v in values.input_size]
    if len(sizes) not in (1, 2) or min(sizes) < 32:
        raise ValueError(f"--input_size takes height[,width] >= 32; received {sizes}.")
    return (sizes[0], sizes[-1])


def _load_model(values: Any) -> Any:
    if (values.model is None) == (values.width is None):
        raise ValueError("Give exactly one of --model and --width.")
    if values.width is not None:
        from ghostnet_keras import GhostNet

        height, width = _input_size(values)
        return GhostNet(width=values.width, weights=values.weights,
                        input_shape=(height, width, 3))
    path = Path(values.model)
    if path.is_dir():
        return str(path)
    if not path.is_file():
        raise FileNotFoundError(f"--model {path} does not exist.")
    from ghostnet_keras.weights.keras_files import load_keras_file

    return load_keras_file(path)


def _calibration_size(model: Any, values: Any) -> tuple[int, int]:
    if isinstance(model, str):
        return _input_size(values)
    height, width = tuple(model.inputs[0].shape)[1:3]
    default_height, default_width = _input_size(values)
    return (height or default_height, width or default_width)


def gpu_verdict(data: bytes, mode: str) -> dict[str, Any]:
    """The sidecar's GPU entry: the accelerator's check, or why int8 is not a GPU format."""
    if mode in conversion.INT8_MODES:
        return {"checked": False, "reason": gpu.INT8_NOTE}
    return {"checked": True, **gpu.check(data, enforce_f32=mode == "fp32").as_dict()}


def main(argv: Sequence[str]) -> None:
    del argv
    values = flags.FLAGS
    if not values.output:
        raise app.UsageError("--output is required.")
    try:
        model = _load_model(values)
        representative = None
        if values.representative:
            if values.mode != "int8":
                raise ValueError(f"--representative calibrates mode int8, not {values.mode}.")
            representative = calibration.representative_source(
                values.representative, values.num_calibration, _calibration_size(model, values))
        data = conversion.convert(model, values.mode, representative, values.io,
                                  batch_size=values.batch_size or None)
    except (conversion.ConversionError, ValueError, TypeError, OSError, ImportError) as error:
        raise SystemExit(f"error: {error}") from error
    if values.labels:
        labels = heads.read_labels(values.labels)
    else:
        classes = math.prod(inventory.read_model(data).outputs[0].shape[1:])
        labels = heads.default_labels(int(classes))
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
    define_flags()
    app.run(main)


if __name__ == "__main__":
    main_entry()
