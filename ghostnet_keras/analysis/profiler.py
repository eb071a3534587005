"""`profile`: parameters and MACs of a Keras 3 model, per layer call, in the GhostNet paper's
convention (`ghostnet_keras.analysis.layer_macs`).

Functional and Sequential models (nested ones included) are walked node by node on their
symbolic shapes, so a layer shared between several call sites counts its MACs at each call site
and its parameters once. Subclassed models and layers with sub-layers have no graph to walk and
are refused with a clear error. Command line: `ghostnet_keras.cli.profile` (`ghostnet-profile`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import keras

from ghostnet_keras.analysis.layer_macs import Shape, layer_macs

__all__ = ["LayerProfile", "ModelProfile", "layer_macs", "profile"]

@dataclasses.dataclass(frozen=True)
class LayerProfile:
    """Cost of one layer call site.

    Attributes:
        name: Layer name, prefixed with the names of the enclosing models or
            composite layers (`"outer/inner"`).
        class_name: Class name of the layer or operation.
        output_shape: Output shape of the call (a tuple of shapes when the
            layer has several outputs). Rows recorded from an eager trace of a
            composite layer carry a batch size of 1 instead of `None`.
        params: Number of weights of the layer; 0 for every call site of a
            shared layer except the first.
        macs: Multiply-accumulate operations of this call, per image.
    """

    name: str
    class_name: str
    output_shape: tuple[Any, ...]
    params: int
    macs: int


@dataclasses.dataclass(frozen=True)
class ModelProfile:
    """Parameter and MAC counts of a model.

    Attributes:
        name: Model name.
        input_shape: Input shape(s) used for the profile, without batch dim.
        params: All weights, as reported by `model.count_params()` (this
            includes batch normalization moving statistics).
        trainable_params: Trainable weights.
        non_trainable_params: Non-trainable weights.
        params_without_bn_stats: All weights minus the `moving_mean` and
            `moving_variance` of `BatchNormalization` layers (the convention of
            the GhostNet paper). Independent of which layers are frozen.
        macs: Multiply-accumulate operations of convolution and dense
            layers for one image.
        layers: One `LayerProfile` per layer call site, in graph order.
    """

    name: str
    input_shape: tuple[Any, ...]
    params: int
    trainable_params: int
    non_trainable_params: int
    params_without_bn_stats: int
    macs: int
    layers: tuple[LayerProfile, ...]

    def to_dict(self, per_layer: bool = False) -> dict[str, Any]:
        """Returns the profile as a JSON-serializable dict.

        Args:
            per_layer: Whether to include the per-layer rows under `"layers"`.

        Returns:
            A dict of plain Python values.
        """
        result: dict[str, Any] = {
            "name": self.name,
            "input_shape": _jsonable(self.input_shape),
            "params": self.params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "params_without_bn_stats": self.params_without_bn_stats,
            "macs": self.macs,
        }
        if per_layer:
            result["layers"] = [
                {
                    "name": row.name,
                    "class_name": row.class_name,
                    "output_shape": _jsonable(row.output_shape),
                    "params": row.params,
                    "macs": row.macs,
                }
                for row in self.layers
            ]
        return result

    def format_table(self, per_layer: bool = True) -> str:
        """Formats the profile as a human-readable table.

        Args:
            per_layer: Whether to list every layer call site before the totals.

        Returns:
            A multi-line string.
        """
        lines = [f'Model: "{self.name}"  input shape: {_format_shape(self.input_shape)}']
        if per_layer:
            header = ("Layer", "Type", "Output shape", "Params", "MACs")
            body = [
                (
                    row.name,
                    row.class_name,
                    _format_shape(row.output_shape),
                    f"{row.params:,}",
                    f"{row.macs:,}",
                )
                for row in self.layers
            ]
            widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

            def fmt(cells: Sequence[str]) -> str:
                left = [c.ljust(w) for c, w in zip(cells[:3], widths[:3], strict=True)]
                right = [c.rjust(w) for c, w in zip(cells[3:], widths[3:], strict=True)]
                return "  ".join(left + right)

            rule = "-" * len(fmt(header))
            lines += [rule, fmt(header), rule, *(fmt(r) for r in body), rule]
        lines += [
            f"Params:                  {self.params:>15,}  ({_human(self.params)})",
            f"  trainable:             {self.trainable_params:>15,}",
            f"  non-trainable:         {self.non_trainable_params:>15,}",
            (
                f"Params w/o BN stats:     {self.params_without_bn_stats:>15,}"
                f"  ({_human(self.params_without_bn_stats)})"
            ),
            f"MACs (per image):        {self.macs:>15,}  ({_human(self.macs)})",
        ]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format_table()


def profile(
    model: keras.Model,
    input_shape: Sequence[int] | Sequence[Sequence[int]] | None = None,
) -> ModelProfile:
    """Counts the parameters and MACs of a Keras 3 model.

    Args:
        model: A `keras.Model`: functional, `Sequential` or subclassed, possibly
            containing nested models (which are recursed into).
        input_shape: Optional input shape without the batch dimension, e.g.
            `(224, 224, 3)`; for a multi-input model, a sequence with one shape
            per input. Required when the model's own input shape has undefined
            (`None`) dimensions, or when the model is not built. When given,
            it overrides the model's input shape.

    Returns:
        A `ModelProfile`.

    Raises:
        TypeError: If `model` is not a `keras.Model`.
        ValueError: If the input shape has undefined dimensions and no
            `input_shape` was passed, or if `input_shape` does not match the
            number of model inputs.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model, got {type(model).__name__}.")
    input_specs = _input_specs(model, input_shape)
    tracer = _Tracer()
    inputs = input_specs if len(input_specs) > 1 else input_specs[0]
    tracer.trace(model, (inputs,), {}, "", top=True)

    bn_stats = 0
    for layer in _unique_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization) and layer.built:
            bn_stats += _count([layer.moving_mean, layer.moving_variance])
    params = model.count_params()
    shapes = tuple(tuple(spec.shape[1:]) for spec in input_specs)
    return ModelProfile(
        name=model.name,
        input_shape=shapes[0] if len(shapes) == 1 else shapes,
        params=params,
        trainable_params=_count(model.trainable_weights),
        non_trainable_params=_count(model.non_trainable_weights),
        params_without_bn_stats=params - bn_stats,
        macs=sum(row.macs for row in tracer.rows),
        layers=tuple(tracer.rows),
    )


class _Tracer:
    """Propagates symbolic shapes through a model and records per-call costs."""

    def __init__(self) -> None:
        self.rows: list[LayerProfile] = []
        self._params_seen: set[int] = set()

    def trace(
        self, op: Any, args: tuple, kwargs: dict, prefix: str, top: bool = False
    ) -> list[Any]:
        """Records `op(*args, **kwargs)`; returns the flat list of output specs.

        `prefix` is prepended to the row names; the rows of the children of a
        model or composite layer are prefixed with its name unless `top`.
        """
        inner = prefix if top else f"{prefix}{op.name}/"
        graph = _graph_of(op)
        if graph is not None:
            return self._trace_graph(graph, args, kwargs, inner)
        if isinstance(op, keras.Sequential):
            # Sequential without a functional graph (e.g. nested input structure).
            x = args[0] if args else kwargs["inputs"]
            for layer in op.layers:
                outputs = self.trace(layer, (x,), {}, inner)
                x = outputs[0] if len(outputs) == 1 else outputs
            return keras.tree.flatten(x)
        if _is_composite(op):
            raise TypeError(
                f"profile() walks functional graphs; {op.name!r} ({type(op).__name__}) has "
                "sub-layers but no functional graph (a subclassed model or a composite layer). "
                "Build it with the functional API, or profile its parts."
            )
        outputs = keras.tree.flatten(op.compute_output_spec(*args, **kwargs))
        self._record(op, prefix, _first_shape(args, kwargs), outputs)
        return outputs

    def _trace_graph(self, model: Any, args: tuple, kwargs: dict, prefix: str) -> list[Any]:
        inputs = keras.tree.flatten(args[0] if args else kwargs["inputs"])
        if len(inputs) != len(model.inputs):
            raise ValueError(
                f"Model {model.name!r} expects {len(model.inputs)} inputs, got {len(inputs)}."
            )
        if all(
            tuple(x.shape[1:]) == tuple(y.shape[1:])
            for x, y in zip(inputs, model.inputs, strict=True)
        ):
            # Same shapes as the model's own graph: reuse its recorded tensors.
            inputs = list(model.inputs)
        tensors = {id(x): y for x, y in zip(model.inputs, inputs, strict=True)}
        # Keras 3 has no public API for the nodes of a functional graph; `_nodes_by_depth`
        # (topological order) is what Keras' own `summary()` and `plot_model` walk.
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if not node.operation or node.is_input:
                    continue
                if any(id(x) not in tensors for x in node.input_tensors):
                    continue
                call_args, call_kwargs = node.arguments.fill_in(tensors)
                op = node.operation
                unchanged = all(tensors[id(x)] is x for x in node.input_tensors)
                if unchanged and _graph_of(op) is None and not _is_composite(op):
                    outputs = list(node.outputs)
                    self._record(op, prefix, _first_shape(call_args, call_kwargs), outputs)
                else:
                    outputs = self.trace(op, call_args, call_kwargs, prefix)
                for x, y in zip(node.outputs, outputs, strict=True):
                    tensors[id(x)] = y
        return [tensors[id(x)] for x in model.outputs]

    def _record(
        self,
        op: Any,
        prefix: str,
        input_shape: Shape | None,
        outputs: list[Any],
        batch_dim: bool = True,
    ) -> None:
        """Appends a row for a leaf call. `batch_dim`: dim 0 of shapes is the batch."""
        params = 0
        if isinstance(op, keras.layers.Layer) and id(op) not in self._params_seen:
            self._params_seen.add(id(op))
            params = _count(op.weights)
        macs = 0
        if input_shape is not None and outputs:
            out_shape = tuple(outputs[0].shape)
            if batch_dim:
                input_shape = (1, *input_shape[1:]) if input_shape else input_shape
                out_shape = (1, *out_shape[1:]) if out_shape else out_shape
            try:
                macs = layer_macs(op, input_shape, out_shape)
            except ValueError as e:
                raise ValueError(
                    f"{e} Pass a fully defined `input_shape` (without batch dim) to profile()."
                ) from None
        self.rows.append(
            LayerProfile(
                name=f"{prefix}{op.name}",
                class_name=type(op).__name__,
                output_shape=_output_shape(outputs),
                params=params,
                macs=macs,
            )
        )


def _graph_of(op: Any) -> Any:
    """Returns the functional graph of a model, or None."""
    if isinstance(op, keras.Sequential):
        return getattr(op, "_functional", None)
    if isinstance(op, keras.Model) and hasattr(op, "_nodes_by_depth"):
        return op
    return None


def _is_composite(op: Any) -> bool:
    # `_flatten_layers` is how Keras itself enumerates a layer's tracked sub-layers.
    return isinstance(op, keras.layers.Layer) and bool(op._flatten_layers(include_self=False))


def _input_specs(
    model: keras.Model, input_shape: Sequence[int] | Sequence[Sequence[int]] | None
) -> list[Any]:
    """Returns one KerasTensor (with batch dim None) per model input."""
    if input_shape is None:
        model_inputs = _model_inputs(model)
        if model_inputs is None:
            raise ValueError(
                f"Model {model.name!r} is not built or has no known input shape; "
                "pass `input_shape` (without batch dim), e.g. input_shape=(224, 224, 3)."
            )
        for x in model_inputs:
            if any(d is None for d in x.shape[1:]):
                raise ValueError(
                    f"Model {model.name!r} has undefined input dimensions {tuple(x.shape)}; "
                    "pass `input_shape` (without batch dim), e.g. input_shape=(224, 224, 3)."
                )
        return list(model_inputs)

    shapes = list(input_shape)
    if shapes and all(isinstance(d, int) for d in shapes):
        shapes = [tuple(shapes)]
    else:
        shapes = [tuple(s) for s in shapes]
    for shape in shapes:
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ValueError(f"`input_shape` must contain positive ints, got {input_shape}.")
    if not model.built and isinstance(model, keras.Sequential) and len(shapes) == 1:
        model.build((None, *shapes[0]))
    model_inputs = _model_inputs(model)
    if model_inputs is not None and len(model_inputs) != len(shapes):
        raise ValueError(
            f"Model {model.name!r} has {len(model_inputs)} inputs but `input_shape` "
            f"gives {len(shapes)} shape(s)."
        )
    dtypes = [x.dtype for x in model_inputs] if model_inputs else ["float32"] * len(shapes)
    return [keras.KerasTensor((None, *s), dtype=d) for s, d in zip(shapes, dtypes, strict=True)]


def _model_inputs(model: keras.Model) -> list[Any] | None:
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    return list(keras.tree.flatten(inputs)) if inputs else None


def _unique_layers(model: keras.Model) -> list[Any]:
    seen: set[int] = set()
    layers = []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if id(layer) not in seen:
            seen.add(id(layer))
            layers.append(layer)
    return layers


def _first_shape(args: Any, kwargs: Any) -> Shape | None:
    for x in keras.tree.flatten((args, kwargs)):
        if hasattr(x, "shape") and not isinstance(x, (int, float)):
            return tuple(x.shape)
    return None


def _output_shape(outputs: list[Any]) -> tuple[Any, ...]:
    shapes = tuple(tuple(x.shape) for x in outputs if hasattr(x, "shape"))
    return shapes[0] if len(shapes) == 1 else shapes


def _count(weights: Sequence[Any]) -> int:
    seen: set[int] = set()
    total = 0
    for w in weights:
        if id(w) not in seen:
            seen.add(id(w))
            total += math.prod(w.shape)
    return int(total)


def _human(n: int) -> str:
    if n >= 1e9:
        return f"{n / 1e9:.2f} G"
    return f"{n / 1e6:.2f} M"


def _format_shape(shape: Any) -> str:
    return str(shape)


def _jsonable(shape: Any) -> Any:
    if isinstance(shape, tuple):
        return [_jsonable(s) for s in shape]
    return shape
