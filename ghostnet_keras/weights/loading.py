"""Loading weights into GhostNet: reference PyTorch checkpoints, Keras files and ImageNet.

The reference layout is the `state_dict` of the official PyTorch GhostNet and of timm's
`ghostnet_*` models (`conv_stem`, `bn1`, `blocks.{stage}.{index}.ghost1.primary_conv.0`, ...);
GhostNetV2/V3 add timm's `ghostnetv2_*`/`ghostnetv3_*` keys (`ghost1.short_conv.{0-5}`,
`ghost1.primary_rpr_conv.{i}.conv`, ...); the official V2/V3 repositories' keys are renamed as
timm's `checkpoint_filter_fn` does.
Loading is strict and all-or-nothing: every tensor is converted and checked before any is
assigned, and a missing, unexpected or mis-shaped tensor raises an error that names it.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ghostnet_keras.weights.torch_files import SUPPORTED_SUFFIXES as REFERENCE_SUFFIXES

KERAS_SUFFIXES = (".weights.h5", ".keras")
IMAGENET_FILE = "{variant}_in1k.safetensors"
IMAGENET_CONVERTED_FILE = "{variant}_imagenet.weights.h5"
DOWNLOAD_TIMEOUT_S = 60.0

# Keras layer name (without the `block{s}{letter}_` prefix) -> reference module path.
_BLOCK_PARTS = {
    "ghost1_primary_conv": "ghost1.primary_conv.0",
    "ghost1_primary_bn": "ghost1.primary_conv.1",
    "ghost1_cheap_dwconv": "ghost1.cheap_operation.0",
    "ghost1_cheap_bn": "ghost1.cheap_operation.1",
    "ghost2_primary_conv": "ghost2.primary_conv.0",
    "ghost2_primary_bn": "ghost2.primary_conv.1",
    "ghost2_cheap_dwconv": "ghost2.cheap_operation.0",
    "ghost2_cheap_bn": "ghost2.cheap_operation.1",
    "dw_dwconv": "conv_dw",
    "dw_bn": "bn_dw",
    "se_reduce_conv": "se.conv_reduce",
    "se_expand_conv": "se.conv_expand",
    "shortcut_dw_dwconv": "shortcut.0",
    "shortcut_dw_bn": "shortcut.1",
    "shortcut_conv": "shortcut.2",
    "shortcut_bn": "shortcut.3",
}
# GhostNetV2/V3 parts (`ghostnet_keras.layers.blocks_v2v3`), with the branch index where there
# is one.
_BLOCK_PART_PATTERNS = tuple((re.compile(keras_part), reference) for keras_part, reference in (
    (r"(ghost[12])_primary(\d+)_conv", r"\1.primary_rpr_conv.\2.conv"),
    (r"(ghost[12])_primary(\d+)_bn", r"\1.primary_rpr_conv.\2.bn1"),
    (r"(ghost[12])_cheap(\d+)_dwconv", r"\1.cheap_rpr_conv.\2.conv"),
    (r"(ghost[12])_cheap(\d+)_bn", r"\1.cheap_rpr_conv.\2.bn1"),
    (r"(ghost[12])_cheap_scale_dwconv", r"\1.cheap_rpr_scale.conv"),
    (r"(ghost[12])_cheap_scale_bn", r"\1.cheap_rpr_scale.bn1"),
    (r"(ghost[12])_cheap_skip_bn", r"\1.cheap_rpr_skip"),
    (r"(ghost1)_short_conv", r"\1.short_conv.0"),
    (r"(ghost1)_short_bn", r"\1.short_conv.1"),
    (r"(ghost1)_short_hdwconv", r"\1.short_conv.2"),
    (r"(ghost1)_short_hbn", r"\1.short_conv.3"),
    (r"(ghost1)_short_vdwconv", r"\1.short_conv.4"),
    (r"(ghost1)_short_vbn", r"\1.short_conv.5"),
    (r"dw(\d+)_dwconv", r"dw_rpr_conv.\1.conv"),
    (r"dw(\d+)_bn", r"dw_rpr_conv.\1.bn1"),
    (r"dw_scale_dwconv", r"dw_rpr_scale.conv"),
    (r"dw_scale_bn", r"dw_rpr_scale.bn1"),
))
_TOP_LEVEL = {
    "stem_conv": "conv_stem",
    "stem_bn": "bn1",
    "top_conv": "blocks.9.0.conv",
    "top_bn": "blocks.9.0.bn1",
    "head_conv": "conv_head",
    "predictions": "classifier",
}
_BLOCK_NAME = re.compile(r"block(\d+)([a-z])_(\w+)")
_BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


# The published ImageNet weights (timm `ghostnet_100.in1k`, ported from the official
# `state_dict_73.98.pth`): 73.98% top-1 / 91.46% top-5.
HUB_URL = "https://huggingface.co/timm/{variant}.in1k/resolve/main/model.safetensors"
IMAGENET_WEIGHTS_URL = HUB_URL.format(variant="ghostnet_100")
# The timm models with published ImageNet-1k weights, by (version, width).
IMAGENET_VARIANTS = {
    ("v1", 1.0): "ghostnet_100",
    ("v2", 1.0): "ghostnetv2_100",
    ("v2", 1.3): "ghostnetv2_130",
    ("v2", 1.6): "ghostnetv2_160",
    ("v3", 1.0): "ghostnetv3_100",
}


def imagenet_variant(version: str, width: float) -> str | None:
    """The timm variant with ImageNet weights for this version and width, or `None`."""
    for (known_version, known_width), variant in IMAGENET_VARIANTS.items():
        if known_version == version and abs(width - known_width) < 1e-9:
            return variant
    return None


def imagenet_weights_url(variant: str) -> str:
    """The hub URL of a variant's `model.safetensors`."""
    return IMAGENET_WEIGHTS_URL if variant == "ghostnet_100" else HUB_URL.format(variant=variant)


class WeightsError(ValueError):
    """A checkpoint does not fit the model: missing, unexpected or mis-shaped tensors."""


def reference_module_path(layer_name: str) -> str | None:
    """Maps a GhostNet layer name to its module path in the reference `state_dict`.

    Example: `"block6d_se_reduce_conv"` -> `"blocks.6.3.se.conv_reduce"`. Returns `None` for a
    name with no reference counterpart.
    """
    if layer_name in _TOP_LEVEL:
        return _TOP_LEVEL[layer_name]
    match = _BLOCK_NAME.fullmatch(layer_name)
    if match is None:
        return None
    stage, letter, part = match.groups()
    if part in _BLOCK_PARTS:
        reference = _BLOCK_PARTS[part]
    else:
        found = [(p, r) for p, r in _BLOCK_PART_PATTERNS if p.fullmatch(part)]
        if not found:
            return None
        pattern, template = found[0]
        reference = pattern.fullmatch(part).expand(template)
    return f"blocks.{stage}.{ord(letter) - ord('a')}.{reference}"


def timm_state_dict(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Renames an official GhostNetV2/V3 `state_dict` to timm's keys (timm's filter).

    The official V3 code names the BN of its conv-BN branches `bn` (timm: `bn1`), and
    checkpoints saved with a FLOPs counter carry `total_ops`/`total_params` entries, which are
    dropped. timm's own keys pass unchanged.
    """
    renamed = {}
    for key, value in state_dict.items():
        if "total" in key:
            continue
        if "bn." in key and (".ghost" in key or ".dw_rpr_" in key):
            key = key.replace("bn.", "bn1.")
        renamed[key] = value
    return renamed


def is_training_form(weights: str | os.PathLike) -> bool:
    """Whether `weights` holds GhostNetV3 training-form tensors (`*_rpr_*` branches).

    `"imagenet"` is the published (training-form) weights; Keras files are looked up by their
    layer names, reference files by their keys.
    """
    if weights == "imagenet":
        return True
    path = os.fspath(weights)
    name = Path(path).name.lower()
    if name.endswith(REFERENCE_SUFFIXES):
        from ghostnet_keras.weights.torch_files import read_state_dict

        return any("_rpr_" in key for key in read_state_dict(path))
    if name.endswith(".weights.h5"):
        import h5py

        found = []
        with h5py.File(path, "r") as handle:
            handle.visit(lambda key: found.append(key) if "_primary0_" in key else None)
        return bool(found)
    return False


def _reference_tensors(layer: keras.layers.Layer, path: str) -> list[tuple[str, tuple, Any]]:
    """(reference key, reference shape, converter to the Keras layout) for each layer weight."""
    if isinstance(layer, keras.layers.BatchNormalization):
        shape = tuple(layer.gamma.shape)
        return [(f"{path}.{t}", shape, np.asarray) for t in _BN_TENSORS]
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        kh, kw, channels, multiplier = layer.kernel.shape
        entries = [(
            f"{path}.weight",
            (channels * multiplier, 1, kh, kw),
            lambda w: w.reshape(channels, multiplier, kh, kw).transpose(2, 3, 0, 1),
        )]
    elif isinstance(layer, keras.layers.Conv2D):
        kh, kw, cin, cout = layer.kernel.shape
        entries = [(f"{path}.weight", (cout, cin, kh, kw), lambda w: w.transpose(2, 3, 1, 0))]
    elif isinstance(layer, keras.layers.Dense):
        units_in, units_out = layer.kernel.shape
        entries = [(f"{path}.weight", (units_out, units_in), lambda w: w.T)]
    else:
        raise WeightsError(f"Layer {layer.name!r} ({type(layer).__name__}) has no reference form.")
    if getattr(layer, "use_bias", False):
        entries.append((f"{path}.bias", tuple(layer.bias.shape), np.asarray))
    return entries


def reference_layout(model: keras.Model) -> dict[str, tuple[keras.layers.Layer, list]]:
    """Maps each weighted layer of a GhostNet to its reference tensors.

    Raises:
        WeightsError: when a weighted layer has no reference counterpart (not a GhostNet).
    """
    layout = {}
    for layer in model.layers:
        if not layer.weights:
            continue
        path = reference_module_path(layer.name)
        if path is None:
            raise WeightsError(
                f"Layer {layer.name!r} of model {model.name!r} has no counterpart in the "
                "reference GhostNet layout; only GhostNet models built by ghostnet_keras load "
                "reference checkpoints."
            )
        layout[layer.name] = (layer, _reference_tensors(layer, path))
    return layout


def load_reference_state_dict(
    model: keras.Model, state_dict: Mapping[str, np.ndarray], source: str = "checkpoint"
) -> None:
    """Loads a reference PyTorch `state_dict` (as NumPy arrays) into a GhostNet, strictly.

    Tensors of the classification head (`conv_head`, `classifier`) are ignored when the model
    was built with `include_top=False`; `num_batches_tracked` entries are always ignored. Any
    other difference is an error and nothing is assigned.

    Args:
        model: a GhostNet built by `ghostnet_keras.GhostNet` (any width, with or without top).
        state_dict: tensor name -> array in the PyTorch layout.
        source: how to name the checkpoint in error messages.

    Raises:
        WeightsError: naming each missing, unexpected or mis-shaped tensor.
    """
    layout = reference_layout(model)
    has_top = any(name == "predictions" for name in layout)
    expected = {key for _, entries in layout.values() for key, _, _ in entries}
    provided = {key for key in state_dict if not key.endswith("num_batches_tracked")}
    ignorable = () if has_top else ("conv_head.", "classifier.")
    missing = sorted(expected - provided)
    unexpected = sorted(k for k in provided - expected if not k.startswith(ignorable))
    problems = [f"missing tensor {key!r}" for key in missing]
    problems += [f"unexpected tensor {key!r}" for key in unexpected]

    assignments = []
    for layer, entries in layout.values():
        values = []
        for key, ref_shape, to_keras in entries:
            if key not in state_dict:
                continue
            tensor = np.asarray(state_dict[key])
            if tuple(tensor.shape) != ref_shape:
                problems.append(
                    f"tensor {key!r} has shape {tuple(tensor.shape)}, but layer {layer.name!r} "
                    f"needs {ref_shape}"
                )
                continue
            values.append(np.ascontiguousarray(to_keras(tensor.astype(np.float32))))
        assignments.append((layer, values))
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise WeightsError(
            f"{source} does not match model {model.name!r} ({len(problems)} problem(s); "
            f"nothing was loaded):\n  {shown}{more}"
        )
    for layer, values in assignments:
        layer.set_weights(values)


def copy_weights_by_name(source: Any, target: Any) -> None:
    """Copies every weighted layer of `target` from the layer of the same name in `source`.

    Works between Keras 3 and tf_keras models of the same graph. Strict and all-or-nothing.

    Raises:
        WeightsError: when a layer is missing in `source` or a weight shape differs.
    """
    source_layers = {layer.name: layer for layer in source.layers}
    problems, assignments = [], []
    for layer in target.layers:
        if not layer.weights:
            continue
        other = source_layers.get(layer.name)
        if other is None:
            problems.append(f"layer {layer.name!r} is missing in {source.name!r}")
            continue
        values = other.get_weights()
        shapes = [tuple(w.shape) for w in layer.weights]
        if [v.shape for v in values] != shapes:
            problems.append(
                f"layer {layer.name!r} has weights of shapes {[v.shape for v in values]} in "
                f"{source.name!r}, but {shapes} in {target.name!r}"
            )
            continue
        assignments.append((layer, values))
    if problems:
        raise WeightsError(
            f"cannot copy weights from {source.name!r} to {target.name!r} (nothing was "
            "copied):\n  " + "\n  ".join(problems[:20])
        )
    for layer, values in assignments:
        layer.set_weights(values)


ModelBuilder = Callable[..., keras.Model]
"""Builds a new model of the caller's architecture; keyword arguments override those of
`build_ghostnet` (e.g. `include_top=True, classes=10`). The loaders take one instead of importing
the model module, which imports them."""


def _load_keras_weights_file(model: keras.Model, path: str, build: ModelBuilder | None) -> None:
    if any(layer.name == "predictions" for layer in model.layers):
        load_keras_weights(model, path)
        return
    import h5py

    with h5py.File(path, "r") as handle:
        kernels = []
        handle.visititems(
            lambda _, obj: kernels.append(obj.shape)
            if isinstance(obj, h5py.Dataset) and obj.ndim == 2 else None
        )
    if len(kernels) != 1 or build is None:
        raise WeightsError(
            f"{path} does not hold a GhostNet with a classifier, or the architecture is "
            "unknown; load it into a model built with include_top=True."
        )
    # Weights do not depend on the data format: any one will do.
    full = build(include_top=True, input_shape=(None, None, 3), classes=kernels[0][1],
                 include_preprocessing=False, data_format="channels_last")
    try:
        full.load_weights(path)
    except ValueError as error:
        raise WeightsError(f"{path} does not match model {model.name!r}: {error}") from error
    copy_weights_by_name(full, model)


def load_keras_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Loads a Keras `.weights.h5` (same architecture) or `.keras` file (by layer name).

    Raises:
        WeightsError: when the file does not fit the model.
        ValueError: for another file type.
    """
    path = os.fspath(path)
    if path.endswith(".weights.h5"):
        try:
            model.load_weights(path)
        except ValueError as error:
            raise WeightsError(f"{path} does not match model {model.name!r}: {error}") from error
    elif path.endswith(".keras"):
        from ghostnet_keras.weights.keras_files import load_keras_file

        copy_weights_by_name(load_keras_file(path), model)
    else:
        raise ValueError(f"Unsupported weights file {path!r}: expected {KERAS_SUFFIXES}.")


def load_ghostnet_weights(
    model: keras.Model,
    weights: str | os.PathLike,
    *,
    version: str = "v1",
    width: float | None = None,
    build: ModelBuilder | None = None,
) -> None:
    """Loads `weights` (`"imagenet"` or a file path) into a GhostNet model.

    `version` and `width` name the published weights for `"imagenet"`; `build` (a new model of
    the same architecture, see `ModelBuilder`) is needed to load a full-model `.weights.h5` into
    a model without top and to convert the ImageNet download once.

    Supported files: `.weights.h5` and `.keras` (Keras), `.safetensors`, `.pth`, `.pt`, `.bin`,
    `.ckpt` (reference PyTorch layout, read without PyTorch).

    Raises:
        WeightsError: when the file does not fit the model (nothing is loaded then).
        ValueError: for an unsupported file type or an unreadable file.
    """
    if weights == "imagenet":
        variant = imagenet_variant(version, 1.0 if width is None else width)
        if variant is None or build is None:
            raise ValueError(f"No ImageNet weights for GhostNet {version} width {width}.")
        weights = imagenet_weights_path(variant, build)
    path = os.fspath(weights)
    name = Path(path).name.lower()
    if name.endswith(REFERENCE_SUFFIXES):
        from ghostnet_keras.weights.torch_files import read_state_dict

        load_reference_state_dict(model, timm_state_dict(read_state_dict(path)), source=path)
    elif name.endswith(".weights.h5"):
        _load_keras_weights_file(model, path, build)
    elif name.endswith(".keras"):
        load_keras_weights(model, path)
    else:
        raise ValueError(
            f"Unsupported weights file {path!r}: expected one of "
            f"{KERAS_SUFFIXES + REFERENCE_SUFFIXES}."
        )


def write_weights_atomically(model: keras.Model, output: str | os.PathLike) -> Path:
    """Saves `model` weights (`.weights.h5`) or the whole model (`.keras`) via a temporary file.

    The file appears at `output` only once it is complete.
    """
    output = Path(output)
    suffix = ".weights.h5" if output.name.endswith(".weights.h5") else ".keras"
    if not output.name.endswith(suffix):
        raise ValueError(f"Output must end with .weights.h5 or .keras; received {output}.")
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=suffix, dir=output.parent)
    os.close(handle)
    try:
        if suffix == ".keras":
            model.save(tmp)
        else:
            model.save_weights(tmp)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return output


def imagenet_weights_path(variant: str, build: ModelBuilder) -> Path:
    """Returns the converted ImageNet weights of a timm variant, downloading them once.

    Downloads timm's `{variant}.in1k` `model.safetensors` (e.g. `ghostnet_100`,
    `ghostnetv2_130`, `ghostnetv3_100`) from the Hugging Face hub with `keras.utils.get_file`
    into the Keras cache (`$KERAS_HOME/models`, default `~/.keras/models`) as
    `{variant}_in1k.safetensors`, converts it to `{variant}_imagenet.weights.h5` beside it and
    reuses that file afterwards (GhostNetV3: the training form).

    Raises:
        RuntimeError: when the download fails (no network), with what to do instead.
    """
    keras_home = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras"))
    cache_dir = keras_home / "models"
    converted = cache_dir / IMAGENET_CONVERTED_FILE.format(variant=variant)
    if converted.exists():
        return converted
    url = imagenet_weights_url(variant)
    hub_file = IMAGENET_FILE.format(variant=variant)
    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        downloaded = keras.utils.get_file(
            hub_file, url, cache_dir=str(keras_home), cache_subdir="models"
        )
    except Exception as error:  # get_file raises a bare Exception on network errors.
        raise RuntimeError(
            f"Could not download the GhostNet ImageNet weights from {url} ({error}). Without "
            f"network access, download that file elsewhere, then either place it at "
            f"{cache_dir / hub_file} or pass its path: GhostNet(weights='model.safetensors')."
        ) from error
    finally:
        socket.setdefaulttimeout(previous_timeout)
    model = build(include_top=True, classes=1000, input_shape=(None, None, 3),
                  include_preprocessing=True)  # the full model in training form
    load_ghostnet_weights(model, downloaded)
    return write_weights_atomically(model, converted)
