"""Ops the TFLite / LiteRT GPU delegate accepts, checked in (the wheels cannot tell us).

`tf.lite.experimental.Analyzer(gpu_compatibility=True)` reports every model compatible with the
TF 2.21 and ai-edge-litert 2.3 wheels (its check is compiled out), and neither wheel ships the
classic GPU delegate, so the lists below are our own record. Two lists, because the documented
one is stale:

- `DOCUMENTED_OPS`: the "GPU ML operations support" list of the official page
  https://ai.google.dev/edge/litert/performance/gpu#supported_ops (formerly
  https://www.tensorflow.org/lite/performance/gpu#supported_ops), "Last updated 2025-07-24 UTC",
  retrieved 2026-11-26. It says: all ops at version 1 only by default (quantized versions such as
  ADD v2 need quantization support), in 16-bit and 32-bit float. It does NOT list MEAN nor
  HARD_SWISH, although the delegate has parsed both since 2020 (MobileNetV3 and GhostNet rely on
  them).
- `DELEGATE_OPS`: the builtin ops the delegate's parser accepts, from `NewOperationParser` in
  https://github.com/google-ai-edge/LiteRT/blob/main/tflite/delegates/gpu/common/model_builder.cc
  (the GPU delegate source, moved there from tensorflow/lite/delegates/gpu), with the per-op
  constraints of https://github.com/google-ai-edge/LiteRT/blob/main/tflite/tools/versioning/gpu_compatibility.cc,
  read 2026-11-26. This is what decides whether a node is delegated, so it is the default list of
  `ghostnet_keras.tflite.inventory.gpu_unsupported_ops`.

Besides the op type, the delegate rejects a node when (GetOpsToReplace / IsAllAllowedTensors in
model_builder.cc): a non-constant input or output tensor is not float32/float16 (int8/uint8 only
with quantized-model support), a tensor has rank >= 5, or the op-specific check fails, e.g.
RESHAPE with a runtime (non-constant) shape input, STRIDED_SLICE with shrink_axis / new_axis /
ellipsis masks or on a tensor of rank other than 3 or 4, MEAN / SUM with non-constant axes,
PAD with a paddings tensor other than 3x2 or 4x2, a fused activation other than NONE, RELU,
RELU_N1_TO_1, RELU6 or TANH. A rejected node splits the graph: by default only the largest
delegated partition runs on the GPU and everything else falls back to the CPU.
"""

from __future__ import annotations

DOCS_URL = "https://ai.google.dev/edge/litert/performance/gpu#supported_ops"
DOCS_LAST_UPDATED = "2025-07-24"
SOURCE_URL = "https://github.com/google-ai-edge/LiteRT/blob/main/tflite/delegates/gpu/common/model_builder.cc"
COMPATIBILITY_URL = "https://github.com/google-ai-edge/LiteRT/blob/main/tflite/tools/versioning/gpu_compatibility.cc"
RETRIEVED = "2026-11-26"

# The documented list, verbatim (versions in the docs: DEPTHWISE_CONV_2D v1-2, LSTM v2 basic
# LSTM only, RESIZE_BILINEAR v1-3).
DOCUMENTED_OPS: frozenset[str] = frozenset(
    {
        "ADD",
        "AVERAGE_POOL_2D",
        "CONCATENATION",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        "EXP",
        "FULLY_CONNECTED",
        "LOGICAL_AND",
        "LOGISTIC",
        "LSTM",
        "MAX_POOL_2D",
        "MAXIMUM",
        "MINIMUM",
        "MUL",
        "PAD",
        "PRELU",
        "RELU",
        "RELU6",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "SOFTMAX",
        "STRIDED_SLICE",
        "SUB",
        "TRANSPOSE_CONV",
    }
)

# Every builtin op `NewOperationParser` maps to a parser (not UnsupportedOperationParser).
# QUANTIZE and DEQUANTIZE are parsed only for quantized models (allow_quant_ops); DEQUANTIZE of a
# constant float16 tensor (fp16 weights) is folded by the delegate's FP16 partition helper.
DELEGATE_OPS: frozenset[str] = frozenset(
    {
        "ABS",
        "ADD",
        "ADD_N",
        "AVERAGE_POOL_2D",
        "BATCH_MATMUL",
        "CAST",
        "CONCATENATION",
        "CONV_2D",
        "COS",
        "CUMSUM",
        "DENSIFY",
        "DEPTHWISE_CONV_2D",
        "DEPTH_TO_SPACE",
        "DIV",
        "ELU",
        "EQUAL",
        "EXP",
        "FLOOR",
        "FLOOR_DIV",
        "FLOOR_MOD",
        "FULLY_CONNECTED",
        "GATHER",
        "GELU",
        "GREATER",
        "GREATER_EQUAL",
        "HARD_SWISH",
        "LEAKY_RELU",
        "LESS",
        "LESS_EQUAL",
        "LOG",
        "LOGICAL_AND",
        "LOGISTIC",
        "LSTM",
        "MAXIMUM",
        "MAX_POOL_2D",
        "MEAN",
        "MINIMUM",
        "MIRROR_PAD",
        "MUL",
        "NEG",
        "NOT_EQUAL",
        "ONE_HOT",
        "PACK",
        "PAD",
        "PADV2",
        "POW",
        "PRELU",
        "REDUCE_MAX",
        "REDUCE_MIN",
        "REDUCE_PROD",
        "RELU",
        "RELU6",
        "RELU_N1_TO_1",
        "RESHAPE",
        "RESIZE_BILINEAR",
        "RESIZE_NEAREST_NEIGHBOR",
        "RSQRT",
        "SELECT",
        "SELECT_V2",
        "SIGN",
        "SIN",
        "SLICE",
        "SOFTMAX",
        "SPACE_TO_DEPTH",
        "SPLIT",
        "SPLIT_V",
        "SQRT",
        "SQUARE",
        "SQUARED_DIFFERENCE",
        "STRIDED_SLICE",
        "SUB",
        "SUM",
        "TANH",
        "TILE",
        "TRANSPOSE",
        "TRANSPOSE_CONV",
        "UNPACK",
    }
)
QUANTIZED_ONLY_OPS: frozenset[str] = frozenset({"QUANTIZE", "DEQUANTIZE"})

# Fused activations the delegate accepts on CONV_2D, DEPTHWISE_CONV_2D, ADD, MUL, ... nodes.
SUPPORTED_FUSED_ACTIVATIONS: frozenset[str] = frozenset(
    {"NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH"}
)
