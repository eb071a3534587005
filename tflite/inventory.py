"""Op inventory of a `.tflite` flatbuffer, read with the schema bindings of ai-edge-litert.

Nothing is executed and no delegate is applied: what is listed is exactly what the converter
wrote (`tflite.xnnpack` and `tflite.gpu` say what the CPU and GPU runtimes make of it).
"""

from __future__ import annotations

import collections
import dataclasses
from types import ModuleType
from typing import Any

FLOAT_DTYPES = frozenset({"float32", "float16", "float64", "bfloat16"})

# Options tables that carry a `FusedActivationFunction` field.
_FUSED_ACTIVATION_OPTIONS = (
    "Conv2DOptions",
    "DepthwiseConv2DOptions",
    "AddOptions",
    "SubOptions",
    "MulOptions",
    "DivOptions",
    "FullyConnectedOptions",
    "ConcatenationOptions",
    "Pool2DOptions",
)


def _schema() -> ModuleType:
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:  # pragma: no cover - ai-edge-litert is in the `tflite` extra
        from tensorflow.lite.python import schema_py_generated
    return schema_py_generated


def _enum_names(enum_class: type) -> dict[int, str]:
    items = vars(enum_class).items()
    return {v: k for k, v in items if not k.startswith("_") and isinstance(v, int)}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor of the model.

    Attributes:
        index: tensor index in the subgraph.
        name: tensor name.
        dtype: numpy-style name (`"float32"`, `"int8"`, ...).
        shape: static shape (`-1` never appears here; see `shape_signature`).
        shape_signature: shape with `-1` for dynamic dimensions, or `shape` when absent.
        is_constant: whether the tensor has data in the flatbuffer (weights, biases, constants).
        scale: quantization scales (empty when not quantized).
        zero_point: quantization zero points (empty when not quantized).
    """

    index: int
    name: str
    dtype: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...]
    is_constant: bool
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class OpInfo:
    """One operator of the model, in execution order.

    Attributes:
        index: operator index in the subgraph.
        name: builtin op name (`"CONV_2D"`) or `"CUSTOM:<name>"`.
        version: op version.
        inputs: input tensors (optional inputs, index -1, are left out).
        outputs: output tensors.
        fused_activation: the fused activation (`"RELU"`, `"NONE"`, ...), or `None` for ops
            without one.
        options: a few op options that matter for the checks (strided-slice masks).
    """

    index: int
    name: str
    version: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    fused_activation: str | None = None
    options: tuple[tuple[str, int], ...] = ()

    @property
    def runtime_inputs(self) -> tuple[TensorInfo, ...]:
        return tuple(t for t in self.inputs if not t.is_constant)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """Inputs, outputs and operators of the first subgraph of a `.tflite` model."""

    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    ops: tuple[OpInfo, ...]
    num_subgraphs: int


def read_model(tflite_bytes: bytes) -> ModelInfo:
    """Parses the first subgraph of a `.tflite` flatbuffer.

    Args:
        tflite_bytes: the model, as returned by `TFLiteConverter.convert()`.

    Returns:
        A `ModelInfo`.

    Raises:
        ValueError: when the bytes are not a TFLite model.
    """
    s = _schema()
    data = bytes(tflite_bytes)
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("Not a TFLite flatbuffer (file identifier 'TFL3' missing).")
    model = s.Model.GetRootAs(data, 0)
    if model.SubgraphsLength() < 1:
        raise ValueError("The TFLite model has no subgraph.")
    op_names = _enum_names(s.BuiltinOperator)
    type_names = {k: v.lower() for k, v in _enum_names(s.TensorType).items()}
    act_names = _enum_names(s.ActivationFunctionType)
    options_names = _enum_names(s.BuiltinOptions)
    subgraph = model.Subgraphs(0)

    def buffer_has_data(buffer_index: int) -> bool:
        if buffer_index <= 0 or buffer_index >= model.BuffersLength():
            return False
        buffer = model.Buffers(buffer_index)
        return buffer.DataLength() > 0 or buffer.Size() > 0

    tensors: dict[int, TensorInfo] = {}

    def tensor(index: int) -> TensorInfo:
        if index not in tensors:
            t = subgraph.Tensors(index)
            shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
            signature = shape
            if t.ShapeSignatureLength():
                signature = tuple(int(d) for d in t.ShapeSignatureAsNumpy())
            quant = t.Quantization()
            scale: tuple[float, ...] = ()
            zero_point: tuple[int, ...] = ()
            if quant is not None and quant.ScaleLength():
                scale = tuple(float(v) for v in quant.ScaleAsNumpy())
                zero_point = tuple(int(v) for v in quant.ZeroPointAsNumpy())
            name = t.Name()
            tensors[index] = TensorInfo(
                index=index,
                name=name.decode() if isinstance(name, bytes) else str(name),
                dtype=type_names.get(t.Type(), f"type{t.Type()}"),
                shape=shape,
                shape_signature=signature,
                is_constant=buffer_has_data(t.Buffer()),
                scale=scale,
                zero_point=zero_point,
            )
        return tensors[index]

    ops = []
    for i in range(subgraph.OperatorsLength()):
        op = subgraph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            custom = code.CustomCode()
            name = f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}"
        fused = None
        options: list[tuple[str, int]] = []
        options_type = options_names.get(op.BuiltinOptionsType(), "NONE")
        table = op.BuiltinOptions()
        if table is not None and options_type in _FUSED_ACTIVATION_OPTIONS:
            opts = getattr(s, options_type)()
            opts.Init(table.Bytes, table.Pos)
            fused = act_names.get(opts.FusedActivationFunction(), "UNKNOWN")
        elif table is not None and options_type == "StridedSliceOptions":
            opts = s.StridedSliceOptions()
            opts.Init(table.Bytes, table.Pos)
            options = [
                ("begin_mask", opts.BeginMask()),
                ("end_mask", opts.EndMask()),
                ("ellipsis_mask", opts.EllipsisMask()),
                ("new_axis_mask", opts.NewAxisMask()),
                ("shrink_axis_mask", opts.ShrinkAxisMask()),
            ]
        inputs = [int(v) for v in op.InputsAsNumpy()] if op.InputsLength() else []
        outputs = [int(v) for v in op.OutputsAsNumpy()] if op.OutputsLength() else []
        ops.append(
            OpInfo(
                index=i,
                name=name,
                version=code.Version(),
                inputs=tuple(tensor(j) for j in inputs if j >= 0),
                outputs=tuple(tensor(j) for j in outputs if j >= 0),
                fused_activation=fused,
                options=tuple(options),
            )
        )
    model_inputs = [int(v) for v in subgraph.InputsAsNumpy()] if subgraph.InputsLength() else []
    model_outputs = [int(v) for v in subgraph.OutputsAsNumpy()] if subgraph.OutputsLength() else []
    return ModelInfo(
        inputs=tuple(tensor(j) for j in model_inputs),
        outputs=tuple(tensor(j) for j in model_outputs),
        ops=tuple(ops),
        num_subgraphs=model.SubgraphsLength(),
    )


def op_inventory(tflite_bytes: bytes | ModelInfo) -> dict[str, dict[str, Any]]:
    """Counts the ops of a `.tflite` model, with the dtypes they see.

    Args:
        tflite_bytes: the model bytes (or an already parsed `ModelInfo`).

    Returns:
        `{op_name: {"count": n, "input_dtypes": [...], "constant_dtypes": [...],
        "output_dtypes": [...], "fused_activations": {"RELU": k, ...}}}`, sorted by op name.
        `input_dtypes` are the dtypes of runtime (non-constant) inputs, `constant_dtypes` those
        of weights/constants. JSON-serialisable.
    """
    info = tflite_bytes if isinstance(tflite_bytes, ModelInfo) else read_model(tflite_bytes)
    table: dict[str, dict[str, Any]] = {}
    for op in info.ops:
        row = table.setdefault(
            op.name,
            {
                "count": 0,
                "input_dtypes": set(),
                "constant_dtypes": set(),
                "output_dtypes": set(),
                "fused_activations": collections.Counter(),
            },
        )
        row["count"] += 1
        for t in op.inputs:
            row["constant_dtypes" if t.is_constant else "input_dtypes"].add(t.dtype)
        row["output_dtypes"].update(t.dtype for t in op.outputs)
        if op.fused_activation is not None:
            row["fused_activations"][op.fused_activation] += 1
    return {
        name: {
            "count": row["count"],
            "input_dtypes": sorted(row["input_dtypes"]),
            "constant_dtypes": sorted(row["constant_dtypes"]),
            "output_dtypes": sorted(row["output_dtypes"]),
            "fused_activations": dict(sorted(row["fused_activations"].items())),
        }
        for name, row in sorted(table.items())
    }


def format_inventory(inventory: dict[str, dict[str, Any]]) -> str:
    """Formats `op_inventory` output as a plain-text table."""
    header = f"{'op':<22} {'count':>5}  {'inputs':<16} {'constants':<16} {'outputs':<16} fused"
    lines = [header, "-" * len(header)]
    for name, row in inventory.items():
        fused = ", ".join(f"{k}x{v}" for k, v in row["fused_activations"].items())
        lines.append(
            f"{name:<22} {row['count']:>5}  {','.join(row['input_dtypes']):<16} "
            f"{','.join(row['constant_dtypes']):<16} {','.join(row['output_dtypes']):<16} {fused}"
        )
    lines.append(f"{'total':<22} {sum(r['count'] for r in inventory.values()):>5}")
    return "\n".join(lines)
