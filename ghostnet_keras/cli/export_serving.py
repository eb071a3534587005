"""Command line: a `.keras` model, or a GhostNet width with weights -> a TF Serving SavedModel.

```
ghostnet-export-serving --model=runs/quickstart/model.keras --export_base=/models/ghostnet
ghostnet-export-serving --width=1.0 --weights=imagenet --export_base=/models/ghostnet --version=2
```

Same as `python -m ghostnet_keras.cli.export_serving`; the export itself is
`ghostnet_keras.export.serving.export_serving_model`, the model flags
`ghostnet_keras.cli.model_flags`.
TensorFlow is imported after the flags are checked, so a usage error is instant.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from absl import app, flags

from ghostnet_keras.cli import model_flags
from ghostnet_keras.cli import runner as cli

# The request bounds of the `serving_default` graph (default: serving.RequestLimits' defaults).
REQUEST_LIMITS = ("max_pixels", "max_batch_size", "max_image_bytes")


def define_flags() -> None:
    """Defines the flags (only when run as a program: importing never defines flags)."""
    model_flags.define_flags(input_size=None)
    flags.DEFINE_string(
        "export_base", None,
        "TF Serving model base path; the export goes to <export_base>/<version>.")
    flags.DEFINE_integer("version", 1, "Model version (folder name).", lower_bound=0)
    flags.DEFINE_integer(
        "image_size", None, "Centre-crop size; default: the model's fixed input size, else 224.",
        lower_bound=1)
    flags.DEFINE_integer(
        "top_k", None, "Number of top classes returned; default: serving.DEFAULT_TOP_K (5) or "
        "the number of classes if fewer.", lower_bound=1)
    flags.DEFINE_string(
        "labels", None,
        "A labels file with one class name per line; default: ImageNet names for 1000 classes, "
        "else class_<i>.",
    )
    flags.DEFINE_boolean(
        "outputs_are_logits", None,
        "Whether the model outputs logits (a softmax is added). Default: detected from the "
        "output layer's activation.",
    )
    flags.DEFINE_boolean("overwrite", False, "Replace an existing version folder.")
    flags.DEFINE_boolean("warmup", True, "Write assets.extra/tf_serving_warmup_requests.")
    flags.DEFINE_string("model_name", None, "model_spec.name of the warmup requests; default: "
                        "serving.DEFAULT_MODEL_NAME.")
    flags.DEFINE_integer("max_pixels", None,
                         "serving_default refuses an image whose header declares more pixels; "
                         "default serving.DEFAULT_MAX_PIXELS (a 24-megapixel photo fits).",
                         lower_bound=1)
    flags.DEFINE_integer("max_batch_size", None,
                         "serving_default refuses a request with more images; default "
                         "serving.DEFAULT_MAX_BATCH_SIZE.", lower_bound=1)
    flags.DEFINE_integer("max_image_bytes", None,
                         "serving_default refuses an encoded image of more bytes; default "
                         "serving.DEFAULT_MAX_IMAGE_BYTES.", lower_bound=1)


def load_model_for_export(
    model_path: str | os.PathLike[str] | None = None,
    *,
    width: float | None = None,
    weights: str | os.PathLike[str] | None = None,
    classes: int = 1000,
    version: str = "v1",
    input_size: tuple[int, int] | None = None,
) -> Any:
    """Loads a `.keras` model, or builds a GhostNet of `width` with `weights`.

    The GhostNet takes `input_size`, default any size (`(None, None, 3)`), with the softmax
    head and the built-in preprocessing (RGB in [0, 255]).

    Raises:
        ValueError: for a wrong combination of arguments (`model_flags.ModelFlagsError`).
        FileNotFoundError: when the file does not exist.
    """
    spec = model_flags.check(model_path, width=width, weights=weights, classes=classes,
                             version=version, input_size=input_size, require_weights=True)
    return _load_served(spec)


def _load_served(spec: Any) -> Any:
    """The model of `spec` as served: softmax head, preprocessing inside (RGB in [0, 255])."""
    return model_flags.load(spec, include_top=True, classifier_activation="softmax",
                            include_preprocessing=True)


def export(
    *,
    export_base: str | os.PathLike[str] | None,
    model: str | os.PathLike[str] | None = None,
    width: float | None = None,
    weights: str | os.PathLike[str] | None = None,
    classes: int = 1000,
    model_version: str = "v1",
    input_size: tuple[int, int] | None = None,
    version: int = 1,
    overwrite: bool = False,
    **export_options: Any,
) -> Path:
    """What the command does, with its flags as arguments: checks them, then loads (or builds)
    the model and exports it. `export_options` go to `export_serving_model` (`image_size`,
    `top_k`, `labels`, `outputs_are_logits`, `warmup`, `model_name`, the request limits).

    Raises:
        app.UsageError: missing or conflicting arguments, a missing file, or an existing
            version without `overwrite`; nothing is written then.
    """
    if not export_base:
        raise app.UsageError("--export_base is required.")
    try:
        spec = model_flags.check(model, width=width, weights=weights, classes=classes,
                                 version=model_version, input_size=input_size,
                                 require_weights=True)
    except FileNotFoundError as error:
        raise app.UsageError(str(error)) from error
    if spec.model is not None and input_size is not None:
        raise app.UsageError("--input_size would be ignored: a --model file is exported as it "
                             "is (--image_size sets the centre crop).")
    target = Path(export_base) / str(version)
    if target.exists() and not overwrite:
        raise app.UsageError(f"{target} already exists; pass --overwrite or another --version.")
    from ghostnet_keras.export.serving import export_serving_model

    loaded = _load_served(spec)
    return export_serving_model(loaded, export_base, version, overwrite=overwrite,
                                **{name: value for name, value in export_options.items()
                                   if value is not None})


def main(argv: Sequence[str]) -> None:
    del argv
    values = flags.FLAGS
    names = ("export_base", "model", "width", "weights", "classes", "model_version", "version",
             "overwrite", "image_size", "top_k", "labels", "outputs_are_logits", "warmup",
             "model_name", *REQUEST_LIMITS)
    model_flags.model_spec(values, require_weights=True)  # the flags' own errors first
    arguments = {name: values[name].value for name in names}
    written = export(**arguments, input_size=model_flags.parse_input_size(values.input_size))
    print(f"wrote {written}")


def main_entry() -> None:
    """Console-script entry point (`ghostnet-export-serving`)."""
    cli.run(main, define_flags)


if __name__ == "__main__":
    main_entry()
