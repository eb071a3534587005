"""Op inventory of a `.tflite` flatbuffer and a GPU-delegate compatibility check.

The model is read with the flatbuffer schema bindings that ship with ai-edge-litert (or, without
it, with TensorFlow's copy), so nothing is executed and no delegate is applied: what is listed is
exactly what the converter wrote (an interpreter's `_get_ops_details()` would show XNNPACK's
`DELEGATE` nodes instead).

Example:

```python
from ghostnet_keras.tflite import inventory

data = open("ghostnet_100.tflite", "rb").read()
print(inventory.format_inventory(inventory.op_inventory(data)))
print(inventory.gpu_unsupported_ops(data))  # [] when the whole graph can go to the GPU
```

Command line:

```
python -m ghostnet_keras.tflite.inventory --model=ghostnet_100.tflite [--json]
```
"""

from __future__ import annotations

import collections
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from ghostnet_keras.tflite import gpu_supported_ops

FLOAT_DTYPES = frozenset({"float32", "float16", "float64", "bfloat16"})
GPU_RUNTIME_DTYPES = frozenset({"float32", "float16"})
GPU_QUANTIZED_RUNTIME_DTYPES = frozenset({"int8", "uint8"})

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


@dataclasses.dataclass(frozen=True)
class GpuIssue:
    """A node the GPU delegate would not take."""

    op_index: int
    op_name: str
    reason: str

    def __str__(self) -> str:
        return f"#{self.op_index} {self.op_name}: {self.reason}"


def gpu_compatibility_issues(
    tflite_bytes: bytes | ModelInfo,
    *,
    documented_only: bool = False,
    allow_quantized: bool = False,
) -> list[GpuIssue]:
    """Lists the nodes that the TFLite GPU delegate would leave on the CPU.

    A re-implementation of the delegate's node filter (see
    `ghostnet_keras.tflite.gpu_supported_ops`): the op
    type must be parsed by the delegate, non-constant tensors must be float32/float16 (plus
    int8/uint8 with `allow_quantized`), ranks below 5, and a few op-specific checks hold. It does
    not reproduce every parameter check of `gpu_compatibility.cc` (kernel/stride limits,
    broadcasting rules), so an empty list means "no known blocker", not a guarantee.

    Args:
        tflite_bytes: the model bytes (or a parsed `ModelInfo`).
        documented_only: check against the (stale) documented op list instead of the delegate
            source.
        allow_quantized: accept int8/uint8 tensors and QUANTIZE/DEQUANTIZE, as the delegate
            does for quantized models.

    Returns:
        The issues, in op order; empty when the whole graph can be delegated.
    """
    info = tflite_bytes if isinstance(tflite_bytes, ModelInfo) else read_model(tflite_bytes)
    supported = (
        gpu_supported_ops.DOCUMENTED_OPS if documented_only else gpu_supported_ops.DELEGATE_OPS
    )
    runtime_dtypes = set(GPU_RUNTIME_DTYPES)
    if allow_quantized:
        runtime_dtypes |= GPU_QUANTIZED_RUNTIME_DTYPES
    issues = []
    for op in info.ops:
        reasons = []
        if op.name == "DEQUANTIZE":
            fp16_weights = all(t.is_constant and t.dtype == "float16" for t in op.inputs)
            if not (fp16_weights or allow_quantized):
                reasons.append("DEQUANTIZE of a runtime or integer tensor (quantized model)")
        elif op.name == "QUANTIZE":
            if not allow_quantized:
                reasons.append("QUANTIZE needs quantized-model support")
        elif op.name not in supported:
            source = "documented GPU op list" if documented_only else "GPU delegate's op parsers"
            reasons.append(f"op not in the {source}")
        if op.name not in ("DEQUANTIZE", "QUANTIZE"):
            tensors = (*op.runtime_inputs, *op.outputs)
            bad = sorted({t.dtype for t in tensors if t.dtype not in runtime_dtypes})
            if bad:
                reasons.append(f"runtime tensor dtype {','.join(bad)} (GPU takes float32/float16)")
        if any(len(t.shape) >= 5 for t in (*op.inputs, *op.outputs)):
            reasons.append("tensor of rank >= 5")
        if op.fused_activation not in (None, *gpu_supported_ops.SUPPORTED_FUSED_ACTIVATIONS):
            reasons.append(f"fused activation {op.fused_activation}")
        reasons.extend(_op_specific_issues(op))
        if reasons:
            issues.append(GpuIssue(op.index, op.name, "; ".join(reasons)))
    return issues


def _op_specific_issues(op: OpInfo) -> list[str]:
    if op.name == "RESHAPE" and len(op.runtime_inputs) != 1:
        return ["RESHAPE with a runtime shape tensor (dynamic batch: convert with batch_size=1)"]
    if op.name == "STRIDED_SLICE":
        options = dict(op.options)
        reasons = [
            f"STRIDED_SLICE {mask}"
            for mask in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask")
            if options.get(mask)
        ]
        if op.inputs and len(op.inputs[0].shape) not in (3, 4):
            reasons.append(f"STRIDED_SLICE on a rank-{len(op.inputs[0].shape)} tensor")
        return reasons
    if op.name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"):
        if len(op.inputs) < 2 or not op.inputs[1].is_constant:
            return [f"{op.name} with non-constant axes"]
    if op.name in ("PAD", "PADV2", "MIRROR_PAD"):
        if len(op.inputs) < 2 or not op.inputs[1].is_constant:
            return [f"{op.name} with runtime paddings"]
        if op.inputs[1].shape not in ((3, 2), (4, 2)):
            return [f"{op.name} paddings of shape {op.inputs[1].shape}"]
    return []


def gpu_unsupported_ops(
    tflite_bytes: bytes | ModelInfo,
    *,
    documented_only: bool = False,
    allow_quantized: bool = False,
) -> list[str]:
    """Names of the ops (sorted, unique) that would not run on the TFLite GPU delegate.

    `gpu_compatibility_issues` gives the nodes and the reasons. An empty list means the whole
    graph can be delegated (no CPU/GPU split).
    """
    issues = gpu_compatibility_issues(
        tflite_bytes, documented_only=documented_only, allow_quantized=allow_quantized
    )
    return sorted({issue.op_name for issue in issues})


def main(argv: Sequence[str]) -> None:
    from absl import flags

    del argv
    data = Path(flags.FLAGS.model).read_bytes()
    info = read_model(data)
    inventory = op_inventory(info)
    issues = gpu_compatibility_issues(info, allow_quantized=flags.FLAGS.allow_quantized)
    if flags.FLAGS.json:
        print(
            json.dumps(
                {"ops": inventory, "gpu_issues": [dataclasses.asdict(i) for i in issues]}, indent=2
            )
        )
        return
    print(format_inventory(inventory))
    if issues:
        print("\nGPU delegate would not take:")
        for issue in issues:
            print(f"  {issue}")
    else:
        print("\nGPU delegate: no known blocker (whole graph delegable).")
    undocumented = sorted(set(inventory) - gpu_supported_ops.DOCUMENTED_OPS)
    if undocumented:
        print(f"Not in the documented GPU op list ({gpu_supported_ops.DOCS_URL}): {undocumented}")


def main_entry() -> None:
    from absl import app, flags

    flags.DEFINE_string("model", None, "Path to a .tflite file.")
    flags.DEFINE_bool("json", False, "Print JSON instead of a table.")
    flags.DEFINE_bool("allow_quantized", False, "Check as a quantized (int8) model.")
    flags.mark_flag_as_required("model")
    app.run(main)


if __name__ == "__main__":
    main_entry()
