"""Strict, all-or-nothing assignment of weights by layer name, and the refusal it raises.

Every tensor of the source is used and every weight of the model is filled, all checked
before any is assigned; otherwise `WeightsError` names the first missing, unused and
mis-shaped tensors and the model keeps its weights (docs/loading.md). The only tensors a load
leaves unused are named here: the head of a model without top, and reference buffers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

HEAD_LAYERS = ("head_conv", "predictions")
"""The classification head's weighted layers. A model built with `include_top=False` has no
`predictions` layer and ignores these in a file (the one rule that leaves tensors unused)."""
HEAD_TENSORS = ("conv_head.", "classifier.")
"""The same head in the reference layout (key prefixes)."""
IGNORED_REFERENCE_TENSORS = ("num_batches_tracked",)
"""Reference buffers that are not weights (BatchNorm's step counter): always ignored."""
SHOWN_PER_PROBLEM = 5
"""How many missing, unused and mis-shaped tensors an error names (then counts the rest)."""


class WeightsError(ValueError):
    """A checkpoint does not fit the model: missing, unexpected or mis-shaped tensors."""


def _shapes(values: Any) -> str:
    return ", ".join(str(tuple(value.shape)) for value in values) or "none"


def refusal(
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


def head_is_ignored(layer_names: set[str]) -> bool:
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
    ignored = set(HEAD_LAYERS) if head_is_ignored({layer.name for layer in model.layers}) else ()
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
        raise refusal(source_name, model, missing, unused, misshaped)
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
