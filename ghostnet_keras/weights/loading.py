"""Loading weights into GhostNet: reference PyTorch checkpoints, Keras files and ImageNet.

The reference layout is the `state_dict` of the official PyTorch GhostNet and of timm's
`ghostnet_*` models (`conv_stem`, `bn1`, `blocks.{stage}.{index}.ghost1.primary_conv.0`, ...);
GhostNetV2/V3 add timm's `ghostnetv2_*`/`ghostnetv3_*` keys (`ghost1.short_conv.{0-5}`,
`ghost1.primary_rpr_conv.{i}.conv`, ...); the official V2/V3 repositories' keys are renamed as
timm's `checkpoint_filter_fn` does.
Loading is strict and all-or-nothing, whatever the source (docs/loading.md): every tensor of
the file is used and every weight of the model is filled, all checked before any is assigned;
otherwise `WeightsError` names the first missing, unused and mis-shaped tensors and the model
keeps its weights.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
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
# GhostNetV3's training form: the first primary branch of a Ghost module (Keras, reference).
_TRAINING_FORM_LAYER = re.compile(r"\w+_primary\d+_conv")
_TRAINING_FORM_KEY = "_rpr_"

HEAD_LAYERS = ("head_conv", "predictions")
"""The classification head's weighted layers. A model built with `include_top=False` has no
`predictions` layer and ignores these in a file (the one rule that leaves tensors unused)."""
HEAD_TENSORS = ("conv_head.", "classifier.")
"""The same head in the reference layout (key prefixes)."""
IGNORED_REFERENCE_TENSORS = ("num_batches_tracked",)
"""Reference buffers that are not weights (BatchNorm's step counter): always ignored."""
FLOPS_COUNTER_TENSORS = ("total_ops", "total_params")
"""Entries a FLOPs counter (thop) adds to the official V2/V3 checkpoints: not weights, dropped."""
SHOWN_PER_PROBLEM = 5
"""How many missing, unused and mis-shaped tensors an error names (then counts the rest)."""


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


def _shapes(values: Any) -> str:
    return ", ".join(str(tuple(value.shape)) for value in values) or "none"


def _refusal(
    source: str, model: Any, missing: list[str], unused: list[str], misshaped: list[str],
    hint: str = "",
) -> WeightsError:
    """The error of a load that does not fit: the first few problems of each kind, counted."""
    lines = []  # missing and unused sorted by name, mis-shaped in the model's order
    missing, unused = sorted(missing), sorted(unused)
    for kind, problems in (("missing", missing), ("unused", unused), ("mis-shaped", misshaped)):
        lines += problems[:SHOWN_PER_PROBLEM]
        if len(problems) > SHOWN_PER_PROBLEM:
            lines.append(f"... and {len(problems) - SHOWN_PER_PROBLEM} more {kind}")
    return WeightsError(
        f"{source} does not match model {model.name!r}: {len(missing)} missing, {len(unused)} "
        f"unused, {len(misshaped)} mis-shaped (nothing was loaded; the model keeps its "
        "weights):\n  " + "\n  ".join(lines) + (f"\n{hint}" if hint else "")
    )


def _head_is_ignored(layer_names: set[str]) -> bool:
    """The head rule: a model without a `predictions` layer (include_top=False) ignores it."""
    return "predictions" not in layer_names


def assign_layer_weights(
    model: Any, source: Mapping[str, Sequence[np.ndarray]], source_name: str
) -> None:
    """Sets every weighted layer of `model` from the layer of the same name in `source`.

    Strict and all-or-nothing: every layer of `source` is used (but the head, `HEAD_LAYERS`,
    when `model` has none) and every weighted layer of `model` is filled with arrays of its
    shapes; everything is checked before anything is assigned. Works with Keras 3 and tf_keras
    models.

    Args:
        model: the model to fill.
        source: layer name -> its weights, in the order of `layer.weights`.
        source_name: how to name the source in error messages.

    Raises:
        WeightsError: naming the first missing, unused and mis-shaped layers, with shapes.
    """
    targets = {layer.name: layer for layer in model.layers if layer.weights}
    ignored = set(HEAD_LAYERS) if _head_is_ignored({layer.name for layer in model.layers}) else ()
    missing, misshaped, assignments = [], [], []
    for name, layer in targets.items():
        if name not in source:
            missing.append(f"missing layer {name!r} (weights {_shapes(layer.weights)})")
            continue
        values = [np.asarray(value) for value in source[name]]
        if [v.shape for v in values] != [tuple(w.shape) for w in layer.weights]:
            misshaped.append(f"layer {name!r} has weights {_shapes(values)} in the source, but "
                             f"the model needs {_shapes(layer.weights)}")
            continue
        assignments.append((layer, values))
    unused = [
        f"unexpected layer {name!r} (weights {_shapes(values)}) is not used by the model"
        for name, values in source.items()
        if name not in targets and name not in ignored and len(values)
    ]
    if missing or unused or misshaped:
        raise _refusal(source_name, model, missing, unused, misshaped)
    for layer, values in assignments:
        layer.set_weights(values)


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
        if key.endswith(FLOPS_COUNTER_TENSORS):
            continue
        if "bn." in key and (".ghost" in key or ".dw_rpr_" in key):
            key = key.replace("bn.", "bn1.")
        renamed[key] = value
    return renamed


def is_training_form(weights: str | os.PathLike) -> bool:
    """Whether `weights` holds a GhostNetV3 in training form (parallel conv-BN branches).

    `"imagenet"` is the published (training-form) weights; reference files are looked up by
    their keys (`*_rpr_*`), Keras files (`.keras`, `.weights.h5`) by their layer names
    (`*_primary0_conv`...).
    """
    if weights == "imagenet":
        return True
    path = os.fspath(weights)
    name = Path(path).name.lower()
    if name.endswith(REFERENCE_SUFFIXES):
        from ghostnet_keras.weights.torch_files import read_state_dict

        return any(_TRAINING_FORM_KEY in key for key in read_state_dict(path))
    if name.endswith(KERAS_SUFFIXES):
        from ghostnet_keras.weights.keras_files import keras_weight_layer_names

        return any(_TRAINING_FORM_LAYER.fullmatch(layer)
                   for layer in _read_keras_file(keras_weight_layer_names, path))
    return False


def _read_keras_file(reader: Callable[[str], Any], path: str) -> Any:
    """`reader(path)` (`ghostnet_keras.weights.keras_files`), its errors as `WeightsError`."""
    from ghostnet_keras.weights.keras_files import KerasFileError

    try:
        return reader(path)
    except KerasFileError as error:
        raise WeightsError(str(error)) from error


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

    Tensors of the classification head (`HEAD_TENSORS`) are ignored when the model was built
    with `include_top=False`; `num_batches_tracked` entries are always ignored. Any other
    difference is an error and nothing is assigned.

    Args:
        model: a GhostNet built by `ghostnet_keras.GhostNet` (any width, with or without top).
        state_dict: tensor name -> array in the PyTorch layout.
        source: how to name the checkpoint in error messages.

    Raises:
        WeightsError: naming each missing, unexpected or mis-shaped tensor.
    """
    layout = reference_layout(model)
    ignorable = HEAD_TENSORS if _head_is_ignored(set(layout)) else ()
    expected = {key for _, entries in layout.values() for key, _, _ in entries}
    missing, misshaped, assignments = [], [], []
    for layer, entries in layout.values():
        values = []
        for key, ref_shape, to_keras in entries:
            if key not in state_dict:
                missing.append(f"missing tensor {key!r} {ref_shape}")
                continue
            tensor = np.asarray(state_dict[key])
            if tuple(tensor.shape) != ref_shape:
                misshaped.append(f"tensor {key!r} has shape {tuple(tensor.shape)}, but layer "
                                 f"{layer.name!r} needs {ref_shape}")
                continue
            values.append(np.ascontiguousarray(to_keras(tensor.astype(np.float32))))
        assignments.append((layer, values))
    unused = [
        f"unexpected tensor {key!r} {tuple(np.shape(value))} is not used by the model"
        for key, value in state_dict.items()
        if key not in expected and not key.startswith(ignorable)
        and not key.endswith(IGNORED_REFERENCE_TENSORS)
    ]
    if missing or unused or misshaped:
        raise _refusal(source, model, missing, unused, misshaped)
    for layer, values in assignments:
        layer.set_weights(values)


def copy_weights_by_name(source: Any, target: Any) -> None:
    """Copies the weights of `source` into the layers of the same names in `target`.

    Works between Keras 3 and tf_keras models of the same graph. Strict and all-or-nothing
    (`assign_layer_weights`): every weighted layer of `source` is used and every one of
    `target` is filled.

    Raises:
        WeightsError: naming the missing, unused and mis-shaped layers.
    """
    weights = {layer.name: layer.get_weights() for layer in source.layers if layer.weights}
    assign_layer_weights(target, weights, f"model {source.name!r}")


ModelBuilder = Callable[..., keras.Model]
"""Builds a new model of the caller's architecture; keyword arguments override those of
`build_ghostnet` (e.g. `include_top=True, classes=10`). The loaders take one instead of importing
the model module, which imports them."""


def load_keras_weights(model: keras.Model, path: str | os.PathLike) -> None:
    """Loads a Keras `.weights.h5` or `.keras` file by layer name, strictly.

    The file's weights are read by layer name without building its model, then assigned with
    `assign_layer_weights` (all-or-nothing; a model without top ignores the file's head).

    Raises:
        WeightsError: when the file does not fit the model or cannot be read.
        ValueError: for another file type.
    """
    path = os.fspath(path)
    if not Path(path).name.lower().endswith(KERAS_SUFFIXES):
        raise ValueError(f"Unsupported weights file {path!r}: expected {KERAS_SUFFIXES}.")
    from ghostnet_keras.weights.keras_files import read_keras_weights

    assign_layer_weights(model, _read_keras_file(read_keras_weights, path), path)


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
    the same architecture, see `ModelBuilder`) converts the ImageNet download once.
    Every source is strict and all-or-nothing (docs/loading.md).

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
        cached = imagenet_weights_path(variant, build)
        try:
            load_keras_weights(model, cached)
        except WeightsError as error:
            raise WeightsError(f"{error}\nThe cached ImageNet weights {cached} are damaged or "
                               "not this model's: delete that file to convert the download "
                               "again.") from error
        return
    path = os.fspath(weights)
    name = Path(path).name.lower()
    try:
        if name.endswith(REFERENCE_SUFFIXES):
            from ghostnet_keras.weights.torch_files import read_state_dict

            load_reference_state_dict(model, timm_state_dict(read_state_dict(path)), source=path)
        elif name.endswith(KERAS_SUFFIXES):
            load_keras_weights(model, path)
        else:
            raise ValueError(
                f"Unsupported weights file {path!r}: expected one of "
                f"{KERAS_SUFFIXES + REFERENCE_SUFFIXES}."
            )
    except WeightsError as error:
        if has_training_form(model) and not is_training_form(path):
            raise WeightsError(f"{error}\n{path} has no parallel branches: if it holds a "
                               "GhostNetV3 in deploy form, load it with reparameterized=True."
                               ) from error
        raise


def has_training_form(model: Any) -> bool:
    """Whether `model` is a GhostNetV3 in training form (layers of parallel branches)."""
    return any(_TRAINING_FORM_LAYER.fullmatch(layer.name) for layer in model.layers)


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
