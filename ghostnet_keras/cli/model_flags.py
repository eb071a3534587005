"""The model a command line works on, named the same way by every command.

Either `--model=file.keras` (the TFLite converter also takes a SavedModel directory), or a
GhostNet built from `--width`, `--weights` (`imagenet` or a weights file), `--model_version`
(v1, v2, v3), `--input_size=H[,W]` and `--classes`. `model_spec(flags.FLAGS)` (or `check(...)` with
the same values as arguments) checks the combination and the files before anything is built (a
flag that would be ignored is refused: `ModelFlagsError`, a usage error); `load(spec)` then
builds or loads the model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from absl import app, flags

from ghostnet_keras.cli.runner import UserError

VERSIONS = ("v1", "v2", "v3")
MIN_INPUT_SIZE = 32
# The flags that describe a GhostNet to build; none of them goes with --model.
GHOSTNET_FLAGS = ("width", "weights", "model_version", "classes")


@dataclass(frozen=True)
class ModelSpec:
    """What the flags name: a model file, or a GhostNet to build."""

    model: Path | None = None
    width: float | None = None
    weights: str | None = None
    version: str = "v1"
    input_size: tuple[int, int] | None = None
    classes: int = 1000
    size_given: bool = False  # --input_size was on the command line

    @property
    def is_saved_model(self) -> bool:
        return self.model is not None and self.model.is_dir()


def define_flags(*, input_size: str | None = "224", saved_model: bool = False) -> None:
    """Defines `--model`, `--width`, `--weights`, `--model_version`, `--input_size`, `--classes`.

    Args:
        input_size: the default `--input_size` (`None`: a GhostNet takes any image size).
        saved_model: whether `--model` may also be a SavedModel directory.
    """
    flags.DEFINE_string(
        "model", None,
        "A .keras model" + (" or a SavedModel directory (e.g. a QAT export)" if saved_model
                            else "") + "; or give --width (and --weights) to build a GhostNet.")
    flags.DEFINE_float("width", None, "Width multiplier of a GhostNet to build (not --model).")
    flags.DEFINE_string(
        "weights", None,
        "The GhostNet's weights: 'imagenet' or a file (.weights.h5, .keras, .safetensors, .pth).")
    flags.DEFINE_enum("model_version", "v1", list(VERSIONS),
                      "GhostNet version: v1 (GhostNet), v2 (GhostNetV2) or v3 (GhostNetV3).")
    flags.DEFINE_list(
        "input_size", input_size,
        "Input height[,width] of the GhostNet (default: "
        + ("any size" if input_size is None else input_size)
        + "); for a --model that takes any size, the size to export it at.")
    flags.DEFINE_integer("classes", 1000, "Number of classes of the GhostNet.", lower_bound=1)


def parse_input_size(values: Any) -> tuple[int, int] | None:
    """`["224"]` -> (224, 224), `["192", "256"]` -> (192, 256); `None` stays `None`."""
    if values is None:
        return None
    try:
        sizes = [int(value) for value in values]
    except ValueError:
        sizes = []
    if len(sizes) not in (1, 2) or min(sizes) < MIN_INPUT_SIZE:
        raise ModelFlagsError(
            f"--input_size takes height[,width], each >= {MIN_INPUT_SIZE}; received "
            f"{','.join(map(str, values))!r}.")
    return (sizes[0], sizes[-1])


class ModelFlagsError(app.UsageError, ValueError):
    """The model flags are missing, conflicting or would be ignored (a usage error)."""


def model_spec(
    values: Any = None, *, require_weights: bool = False, saved_model: bool = False,
) -> ModelSpec:
    """Checks the model flags (combination, files) and returns what they name; builds nothing.

    Args:
        values: the parsed flags (default `flags.FLAGS`).
        require_weights: a GhostNet needs `--weights` (serving, evaluation).
        saved_model: `--model` may be a SavedModel directory.

    Raises:
        ModelFlagsError: a missing or conflicting flag (exit code 2).
        FileNotFoundError: a named file that does not exist.
    """
    values = flags.FLAGS if values is None else values
    return check(
        values.model, width=values.width, weights=values.weights,
        version=values.model_version, classes=values.classes,
        input_size=parse_input_size(values.input_size),
        given={name for name in (*GHOSTNET_FLAGS, "input_size") if values[name].present},
        require_weights=require_weights, saved_model=saved_model)


def check(
    model: str | os.PathLike | None = None,
    *,
    width: float | None = None,
    weights: str | os.PathLike | None = None,
    version: str = "v1",
    classes: int = 1000,
    input_size: tuple[int, int] | None = None,
    given: set[str] | None = None,
    require_weights: bool = False,
    saved_model: bool = False,
) -> ModelSpec:
    """`model_spec` for arguments: `given` names the flags set explicitly (default: those
    not `None`)."""
    if given is None:
        given = {name for name, value in (("width", width), ("weights", weights))
                 if value is not None}
    if model is not None:
        ignored = sorted(given & set(GHOSTNET_FLAGS))
        if ignored:
            flags_given = ", ".join(f"--{name}" for name in ignored)
            raise ModelFlagsError(
                f"give either --model=<file.keras>, or --width and --weights, not both: "
                f"{flags_given} would be ignored next to --model (a model file has its own "
                "weights).")
        return ModelSpec(model=_model_path(os.fspath(model), saved_model), input_size=input_size,
                         size_given="input_size" in given)
    if width is None and weights is None:
        needs = "--width and --weights" if require_weights else "--width (and --weights)"
        raise ModelFlagsError(f"name the model: --model=<file.keras>, or {needs}.")
    if width is None or (require_weights and weights is None):
        raise ModelFlagsError("building a GhostNet needs both a width and weights "
                              "(--width and --weights).")
    if not width > 0:
        raise ModelFlagsError(f"--width must be positive; received {width}.")
    if version not in VERSIONS:
        raise ModelFlagsError(f"--model_version must be one of {VERSIONS}; received {version!r}.")
    weights = None if weights is None else os.fspath(weights)
    if weights == "imagenet":
        _check_imagenet(version, width, classes)
    elif weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"No such weights file: {weights} (--weights)")
    return ModelSpec(width=float(width), weights=weights, version=version,
                     input_size=input_size, classes=classes, size_given="input_size" in given)


def _model_path(model: str, saved_model: bool) -> Path:
    path = Path(model)
    if saved_model and path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise FileNotFoundError(f"--model {path} is a folder without saved_model.pb.")
        return path
    if path.suffix != ".keras":
        kinds = "a .keras file or a SavedModel directory" if saved_model else "a .keras file"
        raise ModelFlagsError(f"--model must be {kinds}; received {model!r}.")
    if not path.is_file():
        raise FileNotFoundError(f"No such model file: {path} (--model)")
    return path


def _check_imagenet(version: str, width: float, classes: int) -> None:
    from ghostnet_keras.weights.imagenet_cache import IMAGENET_VARIANTS, imagenet_variant

    if imagenet_variant(version, width) is None:
        published = ", ".join(f"{v} width {w}" for v, w in IMAGENET_VARIANTS)
        raise ModelFlagsError(
            f"there are no ImageNet weights for GhostNet {version} width {width:g}; published: "
            f"{published}.")
    if classes != 1000:
        raise ModelFlagsError(f"--weights=imagenet has 1000 classes; received --classes={classes}.")


def load(spec: ModelSpec, **build_options: Any) -> Any:
    """The model `spec` names: a loaded `.keras` file, a SavedModel path (`str`), or a GhostNet.

    A GhostNet takes `spec.input_size`, or any size when it is `None`; `build_options` go to
    `create_ghostnet` (e.g. `classifier_activation`).

    Raises:
        UserError: the ImageNet weights cannot be downloaded (e.g. offline), with what to do.
        WeightsError: the weights file does not fit the GhostNet.
    """
    if spec.is_saved_model:
        return os.fspath(spec.model)
    if spec.model is not None:
        from ghostnet_keras.weights.keras_files import load_keras_file

        return load_keras_file(spec.model)
    from ghostnet_keras.models.ghostnet import create_ghostnet

    height, width = spec.input_size or (None, None)
    try:
        return create_ghostnet(
            spec.version, width=spec.width, weights=spec.weights, classes=spec.classes,
            input_shape=(height, width, 3), **build_options)
    except RuntimeError as error:
        if spec.weights != "imagenet":
            raise
        # imagenet_cache.imagenet_weights_path: the download failed; its message says what to do.
        raise UserError(f"{error} On the command line: --weights=<that file>.") from error


def export_size(spec: ModelSpec, model: Any) -> tuple[int, int] | None:
    """The (height, width) to export `model` at: its own fixed size, else `--input_size`.

    Raises:
        ModelFlagsError: `--input_size` was given for a model with another fixed size.
    """
    if isinstance(model, str):
        return spec.input_size
    height, width = tuple(model.inputs[0].shape)[1:3]
    if height is None or width is None:
        return spec.input_size
    if spec.size_given and spec.input_size != (height, width):
        raise ModelFlagsError(
            f"--input_size={spec.input_size[0]},{spec.input_size[1]} would be ignored: "
            f"{spec.model} takes {height}x{width} images.")
    return (int(height), int(width))
