"""The integer-only check of int8 TFLite models."""

from __future__ import annotations

from collections.abc import Sequence

from ghostnet_keras.tflite import inventory


class ConversionError(RuntimeError):
    """The converter failed or produced a model that does not meet the mode's contract."""


class FloatOpError(ConversionError):
    """An int8 model still contains float compute ops.

    Attributes:
        ops: one description per offending op, e.g. `"#12 CONV_2D (float32 in/out)"`.
    """

    def __init__(self, ops: Sequence[str]) -> None:
        self.ops = list(ops)
        shown = "\n  ".join(self.ops[:20])
        more = f"\n  ... and {len(self.ops) - 20} more" if len(self.ops) > 20 else ""
        super().__init__(
            f"The model is not fully integer: {len(self.ops)} compute op(s) read or write float "
            f"tensors:\n  {shown}{more}"
        )


def float_compute_ops(tflite_bytes: bytes, *, float_io: bool = True) -> list[str]:
    """Lists the ops of a supposedly integer model that read or write float tensors.

    With `float_io`, the model's float32 input may only feed QUANTIZE ops and its float32 output
    may only come from DEQUANTIZE ops; those boundary ops are allowed. Every other op must see
    integer tensors only (inputs, constants and outputs).

    Args:
        tflite_bytes: the model.
        float_io: whether the model is expected to keep float32 input/output.

    Returns:
        One description per offending op; empty for a fully integer model.
    """
    info = inventory.read_model(tflite_bytes)
    model_inputs = {t.index for t in info.inputs}
    model_outputs = {t.index for t in info.outputs}
    problems = []
    for op in info.ops:
        float_in = [t for t in op.inputs if t.dtype in inventory.FLOAT_DTYPES]
        float_out = [t for t in op.outputs if t.dtype in inventory.FLOAT_DTYPES]
        if not float_in and not float_out:
            continue
        if float_io:
            if (
                op.name == "QUANTIZE"
                and not float_out
                and all(t.index in model_inputs for t in float_in)
            ):
                continue
            if (
                op.name == "DEQUANTIZE"
                and not float_in
                and all(t.index in model_outputs for t in float_out)
            ):
                continue
        dtypes = sorted({t.dtype for t in (*float_in, *float_out)})
        where = "in" if float_in and not float_out else "out" if not float_in else "in/out"
        problems.append(f"#{op.index} {op.name} ({','.join(dtypes)} {where})")
    if not float_io:
        for t in (*info.inputs, *info.outputs):
            if t.dtype in inventory.FLOAT_DTYPES:
                problems.append(f"model input/output {t.name!r} is {t.dtype}, expected int8")
    return problems


def verify_full_integer(tflite_bytes: bytes, *, float_io: bool = True) -> None:
    """Raises `FloatOpError` unless every compute op of the model is integer-only.

    See `float_compute_ops` for the rule.
    """
    problems = float_compute_ops(tflite_bytes, float_io=float_io)
    if problems:
        raise FloatOpError(problems)
