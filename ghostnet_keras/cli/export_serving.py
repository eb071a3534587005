"""Command line: a `.keras` model, or a GhostNet width with weights -> a TF Serving SavedModel.

```
ghostnet-export-serving --model=runs/quickstart/model.keras --export_base=/models/ghostnet
ghostnet-export-serving --width=1.0 --weights=imagenet --export_base=/models/ghostnet --version=2
```

Same as `python -m ghostnet_keras.cli.export_serving`; the export itself is
`ghostnet_keras.export.serving.export_serving_model`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
from absl import app, flags

from ghostnet_keras.export.serving import DEFAULT_MODEL_NAME, DEFAULT_TOP_K, export_serving_model
from ghostnet_keras.weights.keras_files import load_keras_file


def define_flags() -> None:
    """Defines the flags (only when run as a program: importing never defines flags)."""
    flags.DEFINE_string("model", None, "A .keras model to export.")
    flags.DEFINE_float(
        "width", None, "Width multiplier of a GhostNet to build (with --weights), not --model.")
    flags.DEFINE_string(
        "weights", None,
        "GhostNet weights for --width: .weights.h5, .keras, a reference checkpoint "
        "(.safetensors, .pth, ...) or 'imagenet'.",
    )
    flags.DEFINE_integer("classes", 1000, "Number of classes of the --width/--weights GhostNet.",
                         lower_bound=1)
    flags.DEFINE_string(
        "export_base", None,
        "TF Serving model base path; the export goes to <export_base>/<version>.")
    flags.DEFINE_integer("version", 1, "Model version (folder name).", lower_bound=0)
    flags.DEFINE_integer(
        "image_size", None, "Centre-crop size; default: the model's fixed input size, else 224.",
        lower_bound=1)
    flags.DEFINE_integer(
        "top_k", None, f"Number of top classes returned; default: min({DEFAULT_TOP_K}, classes).",
        lower_bound=1)
    flags.DEFINE_string(
        "labels", None,
        "labels.txt with one class name per line; default: ImageNet names for 1000 classes, "
        "else class_<i>.",
    )
    flags.DEFINE_boolean(
        "outputs_are_logits", None,
        "Whether the model outputs logits (a softmax is added). Default: detected from the "
        "output layer's activation.",
    )
    flags.DEFINE_boolean("overwrite", False, "Replace an existing version folder.")
    flags.DEFINE_boolean("warmup", True, "Write assets.extra/tf_serving_warmup_requests.")
    flags.DEFINE_string("model_name", DEFAULT_MODEL_NAME,
                        "model_spec.name of the warmup requests.")


def load_model_for_export(
    model_path: str | os.PathLike[str] | None = None,
    *,
    width: float | None = None,
    weights: str | os.PathLike[str] | None = None,
    classes: int = 1000,
) -> keras.Model:
    """Loads a `.keras` model, or builds a GhostNet of `width` with `weights` (a file path).

    The GhostNet is built with `input_shape=(None, None, 3)`, the softmax head and the
    built-in preprocessing (RGB in [0, 255]).

    Raises:
        ValueError: for a wrong combination of arguments or an unusable file.
        FileNotFoundError: when the file does not exist.
    """
    if (model_path is None) == (width is None and weights is None):
        raise ValueError("Give either a .keras model path, or a width and weights.")
    if model_path is not None:
        path = Path(model_path)
        if path.suffix != ".keras":
            raise ValueError(f"Expected a .keras model file; received {path}.")
        if not path.is_file():
            raise FileNotFoundError(f"No such model file: {path}")
        return load_keras_file(path)
    if width is None or weights is None:
        raise ValueError("Building a GhostNet for export needs both a width and weights.")
    if os.fspath(weights) != "imagenet" and not Path(weights).is_file():
        raise FileNotFoundError(f"No such weights file: {weights}")
    from ghostnet_keras.models.ghostnet import GhostNet

    return GhostNet(
        width=width, weights=weights, classes=classes, input_shape=(None, None, 3),
        include_top=True, classifier_activation="softmax", include_preprocessing=True,
    )


def export(
    *,
    export_base: str | os.PathLike[str] | None,
    model: str | os.PathLike[str] | None = None,
    width: float | None = None,
    weights: str | os.PathLike[str] | None = None,
    classes: int = 1000,
    version: int = 1,
    overwrite: bool = False,
    **export_options: Any,
) -> Path:
    """What the command does, with its flags as arguments: checks them, then loads (or builds)
    the model and exports it. `export_options` go to `export_serving_model` (`image_size`,
    `top_k`, `labels`, `outputs_are_logits`, `warmup`, `model_name`).

    Raises:
        app.UsageError: missing or conflicting arguments, a missing file, or an existing
            version without `overwrite`; nothing is written then.
    """
    if not export_base:
        raise app.UsageError("--export_base is required.")
    if model and (width is not None or weights):
        raise app.UsageError("Give either --model, or --width and --weights, not both.")
    if not model and (width is None or not weights):
        raise app.UsageError("Give --model=<file.keras>, or --width and --weights.")
    target = Path(export_base) / str(version)
    if target.exists() and not overwrite:
        raise app.UsageError(f"{target} already exists; pass --overwrite or another --version.")
    try:
        loaded = load_model_for_export(model, width=width, weights=weights, classes=classes)
        return export_serving_model(loaded, export_base, version, overwrite=overwrite,
                                    **export_options)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        raise app.UsageError(str(error)) from error


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    values = flags.FLAGS
    names = ("export_base", "model", "width", "weights", "classes", "version", "overwrite",
             "image_size", "top_k", "labels", "outputs_are_logits", "warmup", "model_name")
    written = export(**{name: values[name].value for name in names})
    print(f"wrote {written}")


def main_entry() -> None:
    """Console-script entry point (`ghostnet-export-serving`)."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    main_entry()
