"""Parameter and MAC (multiply-accumulate) profiler for Keras 3 models.

The counting convention follows the GhostNet paper (Han et al., CVPR 2020),
which reports "FLOPs" as the number of multiply-adds of convolution and
fully-connected layers for a single image:

- Convolutions (`Conv1D/2D/3D`, grouped via `groups`): `prod(output shape) *
  prod(kernel_size) * C_in / groups`.
- Depthwise convolutions: `prod(output shape) * prod(kernel_size)`, i.e.
  `H_out * W_out * C_in * depth_multiplier * kh * kw`.
- Separable convolutions: depthwise part plus the 1x1 pointwise part.
- Transposed convolutions: `prod(input shape) * prod(kernel_size) * filters`.
- `Dense`: `prod(input shape) * units`, so a `Dense` applied to a `(N, T, D)`
  tensor counts `T * D * units`.
- `EinsumDense`: the product of the sizes of all einsum indices (batch = 1).

Batch normalization, activations, pooling, element-wise additions and
multiplications, and bias additions are not counted.

Shapes are taken from the model graph: functional and sequential models
(nested ones included) are walked node by node, so a layer shared between
several call sites counts its MACs at each call site (and its parameters once).
Layers that contain sub-layers but have no functional graph (subclassed models
or custom composite layers) are run once eagerly on a batch of one zero input
while their leaf layers record the shapes they see.

Example:

```python
import keras

from ghostnet_keras.ghostnet import GhostNet050, GhostNet100, GhostNet130
from ghostnet_keras.resnet import GhostResNet50
from ghostnet_keras import profiler

result = profiler.profile(keras.applications.MobileNetV2(weights=None))
print(result.params, result.macs)
print(result.format_table())
```

Command line:

```
python -m ghostnet_keras.profiler --model=ResNet50 --input_size=224 --per_layer
python -m ghostnet_keras.profiler --model=/path/to/model.keras --json
```
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import keras
from absl import app, flags

from ghostnet_keras.ghostnet import GhostNet050, GhostNet100, GhostNet130
from ghostnet_keras.ghostnet_v2v3 import (
    GhostNetV2_100,
    GhostNetV2_130,
    GhostNetV2_160,
    GhostNetV3_100,
)
from ghostnet_keras.resnet import GhostResNet50

__all__ = [
    "BUILDERS",
    "LayerProfile",
    "ModelProfile",
    "build_model",
    "layer_macs",
    "main",
    "main_entry",
    "parse_flags",
    "profile",
]

Shape = tuple[int | None, ...]

# Model constructors available to the command line tool by name. Each callable
# must accept the keras.applications-style keyword arguments `weights` and
# `input_shape` and return a built `keras.Model`.
BUILDERS: dict[str, Callable[..., keras.Model]] = {
    "GhostNet050": GhostNet050,
    "GhostNet100": GhostNet100,
    "GhostNet130": GhostNet130,
    "GhostNetV2_100": GhostNetV2_100,
    "GhostNetV2_130": GhostNetV2_130,
    "GhostNetV2_160": GhostNetV2_160,
    "GhostNetV3_100": GhostNetV3_100,
    "GhostResNet50": GhostResNet50,
    "ResNet50": keras.applications.ResNet50,
    "MobileNetV2": keras.applications.MobileNetV2,
    "MobileNetV3Large": keras.applications.MobileNetV3Large,
    "MobileNetV3Small": keras.applications.MobileNetV3Small,
    "VGG16": keras.applications.VGG16,
}

_CONV_TYPES = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)
_DEPTHWISE_TYPES = (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)
_SEPARABLE_TYPES = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
_TRANSPOSE_TYPES = (
    keras.layers.Conv1DTranspose,
    keras.layers.Conv2DTranspose,
    keras.layers.Conv3DTranspose,
)


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


def layer_macs(layer: Any, input_shape: Shape, output_shape: Shape) -> int:
    """MACs of one call of a leaf layer for the given (batch = 1) shapes.

    Args:
        layer: A Keras layer or operation.
        input_shape: Shape of the (first) input tensor with batch size 1.
        output_shape: Shape of the output tensor with batch size 1.

    Returns:
        The number of multiply-accumulates; 0 for layers that are not counted.

    Raises:
        ValueError: If a dimension needed for the count is undefined.
    """
    if isinstance(layer, _SEPARABLE_TYPES):
        c_in = _channels(layer, input_shape)
        mid = c_in * layer.depth_multiplier
        out_positions = _prod(output_shape, layer) // layer.filters
        return out_positions * mid * (math.prod(layer.kernel_size) + layer.filters)
    if isinstance(layer, _DEPTHWISE_TYPES):
        return _prod(output_shape, layer) * math.prod(layer.kernel_size)
    if isinstance(layer, _TRANSPOSE_TYPES):
        return _prod(input_shape, layer) * math.prod(layer.kernel_size) * layer.filters
    if isinstance(layer, _CONV_TYPES):
        c_in = _channels(layer, input_shape)
        groups = getattr(layer, "groups", 1) or 1
        return _prod(output_shape, layer) * math.prod(layer.kernel_size) * (c_in // groups)
    if isinstance(layer, keras.layers.Dense):
        return _prod(input_shape, layer) * layer.units
    if isinstance(layer, keras.layers.EinsumDense):
        return _einsum_macs(layer, input_shape)
    return 0


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
            return self._trace_composite(op, args, kwargs, prefix, inner)
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

    def _trace_composite(
        self, layer: Any, args: tuple, kwargs: dict, prefix: str, inner: str
    ) -> list[Any]:
        """Runs a layer without a functional graph eagerly, recording leaf calls."""
        calls: list[tuple[Any, Shape, list[Any]]] = []
        leaves = [
            sub
            for sub in layer._flatten_layers(include_self=False)
            if not sub._flatten_layers(include_self=False)
        ]
        saved = {id(sub): sub.__dict__.get("call") for sub in leaves}

        def wrap(sub: Any) -> Callable[..., Any]:
            original = sub.call

            def recording_call(*a: Any, **k: Any) -> Any:
                out = original(*a, **k)
                calls.append((sub, _first_shape(a, k), keras.tree.flatten(out)))
                return out

            return recording_call

        call_args, call_kwargs = keras.tree.map_structure(_zeros_like_spec, (args, kwargs))
        if not layer.built:
            # Building may trace `call` (e.g. subclassed models): do it unrecorded.
            layer(*call_args, **call_kwargs)
        try:
            for sub in leaves:
                object.__setattr__(sub, "call", wrap(sub))
            layer(*call_args, **call_kwargs)
        finally:
            for sub in leaves:
                if saved[id(sub)] is None:
                    sub.__dict__.pop("call", None)
                else:
                    object.__setattr__(sub, "call", saved[id(sub)])
        outputs = keras.tree.flatten(layer.compute_output_spec(*args, **kwargs))

        # Weights owned directly by the composite layer or by a non-leaf descendant.
        composites = [
            layer,
            *(sub for sub in layer._flatten_layers(include_self=False) if _is_composite(sub)),
        ]
        for owner in composites:
            children = owner._flatten_layers(include_self=False, recursive=False)
            child_weights = {id(w) for child in children for w in child.weights}
            own = [w for w in owner.weights if id(w) not in child_weights]
            if own and id(owner) not in self._params_seen:
                self._params_seen.add(id(owner))
                self.rows.append(
                    LayerProfile(
                        name=f"{prefix}{layer.name}" if owner is layer else f"{inner}{owner.name}",
                        class_name=type(owner).__name__,
                        output_shape=_output_shape(outputs) if owner is layer else (),
                        params=_count(own),
                        macs=0,
                    )
                )
        for sub, in_shape, outs in calls:
            self._record(sub, inner, in_shape, outs, batch_dim=False)
        return outputs

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


def _zeros_like_spec(x: Any) -> Any:
    if not isinstance(x, keras.KerasTensor):
        return x
    shape = (1, *x.shape[1:])
    if any(d is None for d in shape):
        raise ValueError(
            f"Cannot trace a composite layer with undefined input dimensions {tuple(x.shape)}; "
            "pass a fully defined `input_shape` (without batch dim) to profile()."
        )
    return keras.ops.zeros(shape, dtype=x.dtype)


def _first_shape(args: Any, kwargs: Any) -> Shape | None:
    for x in keras.tree.flatten((args, kwargs)):
        if hasattr(x, "shape") and not isinstance(x, (int, float)):
            return tuple(x.shape)
    return None


def _output_shape(outputs: list[Any]) -> tuple[Any, ...]:
    shapes = tuple(tuple(x.shape) for x in outputs if hasattr(x, "shape"))
    return shapes[0] if len(shapes) == 1 else shapes


def _channels(layer: Any, input_shape: Shape) -> int:
    axis = -1 if getattr(layer, "data_format", "channels_last") == "channels_last" else 1
    c_in = input_shape[axis]
    if c_in is None:
        raise ValueError(f"Layer {layer.name!r} has an undefined channel dimension.")
    return c_in


def _prod(shape: Shape, layer: Any) -> int:
    if any(d is None for d in shape):
        raise ValueError(f"Layer {layer.name!r} has undefined dimensions in shape {shape}.")
    return math.prod(shape)


def _einsum_macs(layer: Any, input_shape: Shape) -> int:
    """MACs of an `EinsumDense`: the product of the sizes of all indices."""
    try:
        inputs, rest = layer.equation.replace(" ", "").split(",")
        kernel_spec = rest.split("->")[0]
        kernel_shape = tuple(layer.kernel.shape)
    except (AttributeError, ValueError):
        return 0
    if "..." in inputs:
        free = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in layer.equation]
        n = len(input_shape) - (len(inputs) - 3)
        inputs = inputs.replace("...", "".join(free[:n]))
    if len(inputs) != len(input_shape) or len(kernel_spec) != len(kernel_shape):
        return 0
    sizes: dict[str, int] = {}
    for letters, shape in ((inputs, input_shape), (kernel_spec, kernel_shape)):
        for letter, dim in zip(letters, shape, strict=True):
            if dim is None:
                raise ValueError(f"Layer {layer.name!r} has undefined dimensions {shape}.")
            sizes[letter] = dim
    return math.prod(sizes.values())


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


# Command line interface. Flags live in a private FlagValues so that importing
# this module never clashes with flags defined by other modules (e.g. a
# training script also defining --model); `parse_flags` also parses absl's
# global flags (--verbosity, ...).
_FLAGS = flags.FlagValues()
flags.DEFINE_string(
    "model",
    "ResNet50",
    f"Model to profile: one of {', '.join(BUILDERS)} (built with weights=None), "
    "or a path to a .keras file.",
    flag_values=_FLAGS,
)
flags.DEFINE_integer(
    "input_size",
    224,
    "Input height and width. For a .keras file it is only used when given "
    "explicitly or when the model's spatial dims are undefined.",
    lower_bound=1,
    flag_values=_FLAGS,
)
flags.DEFINE_boolean("per_layer", False, "Also print the per-layer table.", flag_values=_FLAGS)
flags.DEFINE_boolean("json", False, "Print a JSON object instead of a table.", flag_values=_FLAGS)
flags.DEFINE_boolean("help", False, "Show this help.", short_name="h", flag_values=_FLAGS)


def build_model(
    name_or_path: str, input_size: int, force_size: bool = True
) -> tuple[keras.Model, tuple[int, ...] | None]:
    """Builds a registered model or loads a `.keras` file.

    Args:
        name_or_path: A key of `BUILDERS` or a path to a `.keras` file.
        input_size: Input height and width.
        force_size: For `.keras` files, whether to profile at `input_size`
            even if the saved model has a fully defined input shape.

    Returns:
        A `(model, input_shape)` tuple; `input_shape` is `None` when the
        model's own input shape should be used.

    Raises:
        ValueError: If `name_or_path` is neither a registered name nor an
            existing `.keras` file.
    """
    if name_or_path in BUILDERS:
        shape = (input_size, input_size, 3)
        return BUILDERS[name_or_path](weights=None, input_shape=shape), shape
    if name_or_path.endswith(".keras") and os.path.isfile(name_or_path):
        model = keras.saving.load_model(name_or_path, compile=False)
        inputs = _model_inputs(model)
        undefined = inputs is None or any(d is None for d in inputs[0].shape[1:])
        if force_size or undefined:
            channels = inputs[0].shape[-1] if inputs else 3
            return model, (input_size, input_size, channels)
        return model, None
    raise ValueError(
        f"Unknown model {name_or_path!r}: expected one of {sorted(BUILDERS)} "
        "or an existing .keras file."
    )


def parse_flags(argv: Sequence[str]) -> list[str]:
    """Parses the profiler flags (and absl's global flags) from `argv`.

    Args:
        argv: Command line, including the program name.

    Returns:
        The remaining positional arguments, including the program name.
    """
    _FLAGS.unparse_flags()
    try:
        remaining = _FLAGS(list(argv), known_only=True)
    except flags.Error as e:
        sys.stderr.write(f"FATAL Flags parsing error: {e}\n{_FLAGS.get_help()}\n")
        sys.exit(1)
    if _FLAGS.help:
        print(f"Usage: python -m ghostnet_keras.profiler [flags]\n\n{_FLAGS.get_help()}")
        sys.exit(0)
    return app.parse_flags_with_usage(remaining)


def main(argv: Sequence[str]) -> None:
    """Profiles the model selected by the flags and prints the result.

    Args:
        argv: Positional arguments left after flag parsing (see
            `parse_flags`); only the program name is allowed.
    """
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        model, input_shape = build_model(
            _FLAGS.model, _FLAGS.input_size, force_size=_FLAGS["input_size"].present
        )
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    result = profile(model, input_shape)
    if _FLAGS.json:
        print(json.dumps(result.to_dict(per_layer=_FLAGS.per_layer), indent=2))
    else:
        print(result.format_table(per_layer=_FLAGS.per_layer))


def main_entry() -> None:
    """Console script entry point."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    main_entry()
