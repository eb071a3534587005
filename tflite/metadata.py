"""TFLite Model Metadata for image classifiers: written into a `.tflite`, read back.

What MediaPipe Tasks (`ImageClassifier`) and the TFLite Task Library read from a model: a
`TFLITE_METADATA` entry in the model's `metadata` pointing at a buffer that holds a
`ModelMetadata` flatbuffer (file identifier `M001`, schema `metadata_schema.fbs` beside this
module, the published one), and the associated files (here `labels.txt`) in a zip archive
appended to the model, as the metadata populator of tflite-support / MediaPipe does.

No writer from those projects is usable beside TensorFlow 2.21 (tflite-support pins
protobuf<4; MediaPipe's writers fail to import in every wheel 0.10.30..1.2.3 and MediaPipe's
absl-py pin conflicts with tfmot's), so the metadata is built here: the model side with LiteRT's
generated schema (`ai_edge_litert.tools.flatbuffer_utils`, object API), the metadata tables with
`flatbuffers.Builder` driven by the `.fbs` itself (`flatbuffer_schema`), and the minimum parser
version derived from the schema's `Added in` comments for exactly the fields written.

GhostNet's input contract: RGB in [0, 255], normalised inside the model. So a float32 input
carries mean 0 / std 1 normalisation (single values: MediaPipe requires that) and stats [0, 255];
a uint8 input takes the pixels as they are (its quantisation parameters say how the model reads
them); the output carries the labels as `TENSOR_AXIS_LABELS`, and is named `probabilities` when
the graph ends in SOFTMAX, `logits` otherwise.

API: `with_image_classifier_metadata(tflite_bytes, labels, name=..., ...) -> bytes`,
`read_metadata(tflite_bytes) -> dict | None`, `associated_files(tflite_bytes) -> dict`,
`min_parser_version(metadata) -> str`.
"""

from __future__ import annotations

import functools
import io
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ghostnet_keras.tflite import flatbuffer_schema

SCHEMA_PATH = Path(__file__).with_name("metadata_schema.fbs")
METADATA_NAME = "TFLITE_METADATA"
LABELS_FILE = "labels.txt"
# Model-side ops that only change the representation of the output (walked through to find
# whether the graph ends in SOFTMAX).
_PASS_THROUGH_OPS = ("QUANTIZE", "DEQUANTIZE", "RESHAPE", "SQUEEZE")
_IMAGE_TYPES = ("FLOAT32", "UINT8", "INT8")


class MetadataError(ValueError):
    """The model or the labels do not fit image-classifier metadata."""


@functools.cache
def schema() -> flatbuffer_schema.Schema:
    """The published TFLite Metadata schema (`metadata_schema.fbs`), parsed."""
    return flatbuffer_schema.load(SCHEMA_PATH)


def min_parser_version(metadata: Mapping[str, Any]) -> str:
    """The minimum metadata parser version that understands every field `metadata` uses.

    The newest `// Added in: X.Y.Z` among the tables, fields, enum values and union members used
    (fields without such a comment date from 1.0.0), as the populator's
    `GetMinimumMetadataParserVersion` computes it.
    """
    return schema().min_version(metadata)


# --------------------------------------------------------------------------------------------
# Model side (LiteRT's generated schema)


def _schema_fb() -> Any:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _read_model(tflite_bytes: bytes) -> Any:
    from ai_edge_litert.tools import flatbuffer_utils

    if len(tflite_bytes) < 8 or bytes(tflite_bytes[4:8]) != b"TFL3":
        raise MetadataError("Not a TFLite model (the flatbuffer identifier is not 'TFL3').")
    return flatbuffer_utils.read_model_from_bytearray(bytearray(tflite_bytes))


def _type_name(type_id: int) -> str:
    names = {v: k for k, v in vars(_schema_fb().TensorType).items() if not k.startswith("_")}
    return names.get(type_id, str(type_id))


def _op_name(model: Any, operator: Any) -> str:
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.opcode_to_name(model, operator.opcodeIndex) or "CUSTOM"


def _output_kind(model: Any) -> str:
    """`probabilities` if the output comes from a SOFTMAX (through quantize/reshape ops)."""
    graph = model.subgraphs[0]
    producers = {out: op for op in graph.operators for out in op.outputs}
    tensor = graph.outputs[0]
    while tensor in producers:
        op = producers[tensor]
        name = _op_name(model, op)
        if name == "SOFTMAX":
            return "probabilities"
        if name not in _PASS_THROUGH_OPS:
            return "logits"
        tensor = op.inputs[0]
    return "logits"


def _quantization(tensor: Any) -> tuple[float, int] | None:
    q = tensor.quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        return None
    return float(q.scale[0]), int(q.zeroPoint[0])


# --------------------------------------------------------------------------------------------
# Writing


def image_classifier_metadata(
    tflite_bytes: bytes,
    num_labels: int,
    *,
    name: str,
    description: str = "",
    version: str = "",
    author: str = "",
    license: str = "",
    labels_file: str = LABELS_FILE,
    output_kind: str | None = None,
) -> dict[str, Any]:
    """The `ModelMetadata` (as a dict, see `flatbuffer_schema`) for an image classifier.

    Args:
        tflite_bytes: the model: one NHWC RGB image input (float32, uint8 or int8), one
            `(1, num_classes)` output.
        num_labels: number of labels (must equal the number of classes).
        name, description, version, author, license: the model-level fields.
        labels_file: the associated labels file name.
        output_kind: `"probabilities"` or `"logits"`; default: `probabilities` when the graph
            ends in SOFTMAX.

    Raises:
        MetadataError: the model is not a single-image classifier, or the label count differs.
    """
    if not name:
        raise MetadataError("The metadata needs a model name.")
    model = _read_model(tflite_bytes)
    if len(model.subgraphs) != 1:
        raise MetadataError(f"Expected one subgraph; the model has {len(model.subgraphs)}.")
    graph = model.subgraphs[0]
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise MetadataError(
            f"An image classifier has one input and one output; the model has "
            f"{len(graph.inputs)} and {len(graph.outputs)}."
        )
    image, scores = graph.tensors[graph.inputs[0]], graph.tensors[graph.outputs[0]]
    shape = [int(d) for d in image.shape]
    image_type = _type_name(image.type)
    if len(shape) != 4 or shape[3] != 3:
        raise MetadataError(f"The input must be an NHWC RGB image (N, H, W, 3); it is {shape}.")
    if image_type not in _IMAGE_TYPES:
        raise MetadataError(f"The input must be one of {_IMAGE_TYPES}; it is {image_type}.")
    classes = int(np.prod([int(d) for d in scores.shape[1:]]))
    if classes != num_labels:
        raise MetadataError(f"The model has {classes} classes but {num_labels} labels were given.")
    kind = output_kind or _output_kind(model)
    if kind not in ("probabilities", "logits"):
        raise MetadataError(f"output_kind must be 'probabilities' or 'logits'; received {kind!r}.")

    height, width = shape[1:3]
    description_of_input = (
        f"RGB image, {height}x{width} (NHWC), pixel values in [0, 255]: the model normalises "
        "internally (metadata normalisation: mean 0, std 1)."
    )
    quantization = _quantization(image)
    if image_type == "UINT8" and quantization:
        scale, zero_point = quantization
        description_of_input += (
            f" uint8 pixels as they are; the model reads q as {scale:.6g} * (q - {zero_point})."
        )
    elif image_type == "INT8":
        description_of_input += (
            " int8 tensor: MediaPipe and the TFLite Task Library accept only uint8 or float32 "
            "images."
        )
    input_md: dict[str, Any] = {
        "name": "image",
        "description": description_of_input,
        "content": {"content_properties": {"ImageProperties": {"color_space": "RGB"}}},
        "process_units": [{"options": {"NormalizationOptions": {"mean": [0.0], "std": [1.0]}}}],
    }
    if image_type in ("FLOAT32", "UINT8"):
        input_md["stats"] = {"max": [255.0], "min": [0.0]}
    output_md: dict[str, Any] = {
        "name": kind,
        "description": (
            f"Scores of the {classes} classes: "
            + ("softmax probabilities." if kind == "probabilities" else "logits (no softmax).")
        ),
        "content": {"content_properties": {"FeatureProperties": {}}},
        "associated_files": [
            {
                "name": labels_file,
                "description": "Class names, one per line, in output order.",
                "type": "TENSOR_AXIS_LABELS",
            }
        ],
    }
    if kind == "probabilities":
        output_md["stats"] = {"max": [1.0], "min": [0.0]}
    metadata: dict[str, Any] = {
        "name": name,
        "description": description or None,
        "version": version or None,
        "subgraph_metadata": [
            {
                "name": "image_classifier",
                "input_tensor_metadata": [input_md],
                "output_tensor_metadata": [output_md],
            }
        ],
        "author": author or None,
        "license": license or None,
    }
    metadata = {k: v for k, v in metadata.items() if v is not None}
    metadata["min_parser_version"] = min_parser_version(metadata)
    return metadata


def embed(
    tflite_bytes: bytes, metadata: Mapping[str, Any], files: Mapping[str, bytes]
) -> bytes:
    """The model with `metadata` as its `TFLITE_METADATA` and `files` zipped after it.

    Replaces metadata and associated files the model already has. Every associated file the
    metadata names must be in `files` (and only those).

    Raises:
        MetadataError: the named and the given associated files differ.
    """
    named = _named_files(metadata)
    if set(named) != set(files):
        raise MetadataError(
            f"The metadata names the associated files {sorted(named)} but {sorted(files)} were "
            "given."
        )
    from ai_edge_litert.tools import flatbuffer_utils

    fb = _schema_fb()
    model = _read_model(tflite_bytes)
    buffer = fb.BufferT()
    buffer.data = np.frombuffer(schema().encode(metadata), dtype=np.uint8)
    entries = [m for m in (model.metadata or []) if _text(m.name) == METADATA_NAME]
    if entries:
        model.buffers[entries[0].buffer] = buffer
    else:
        model.buffers.append(buffer)
        entry = fb.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata = [*(model.metadata or []), entry]
    stream = io.BytesIO(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
    stream.seek(0, io.SEEK_END)
    # Appending to a non-zip stream writes a zip after the flatbuffer, offsets from the file's
    # start (what the populator does); stored, not deflated: mobile runtimes map them directly.
    with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as archive:
        for file_name, data in files.items():
            archive.writestr(file_name, data)
    return stream.getvalue()


def with_image_classifier_metadata(
    tflite_bytes: bytes,
    labels: Sequence[str],
    *,
    name: str,
    description: str = "",
    version: str = "",
    author: str = "",
    license: str = "",
    labels_file: str = LABELS_FILE,
    output_kind: str | None = None,
) -> bytes:
    """`tflite_bytes` with image-classifier metadata and `labels` attached (see the module doc).

    Raises:
        MetadataError: bad labels (empty, containing a newline) or a model that does not fit.
    """
    labels = list(labels)
    bad = [label for label in labels if not label or "\n" in label or "\r" in label]
    if not labels or bad:
        raise MetadataError(
            "Labels must be non-empty strings without newlines"
            + (f"; offending: {bad[:5]!r}" if bad else "; received none.")
        )
    metadata = image_classifier_metadata(
        tflite_bytes, len(labels), name=name, description=description, version=version,
        author=author, license=license, labels_file=labels_file, output_kind=output_kind,
    )
    return embed(tflite_bytes, metadata, {labels_file: ("\n".join(labels) + "\n").encode()})


# --------------------------------------------------------------------------------------------
# Reading


def read_metadata(tflite_bytes: bytes) -> dict[str, Any] | None:
    """The model's `ModelMetadata` as a dict, or None when it has none."""
    fb = _schema_fb()
    model = fb.Model.GetRootAs(bytearray(tflite_bytes), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if _text(entry.Name()) == METADATA_NAME:
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            return schema().decode(np.asarray(data, dtype=np.uint8).tobytes())
    return None


def associated_files(tflite_bytes: bytes) -> dict[str, bytes]:
    """The files zipped after the model (empty when there are none)."""
    stream = io.BytesIO(bytes(tflite_bytes))
    if not zipfile.is_zipfile(stream):
        return {}
    with zipfile.ZipFile(stream) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def labels(tflite_bytes: bytes) -> list[str]:
    """The output's `TENSOR_AXIS_LABELS` file, read from the model's associated files."""
    metadata = read_metadata(tflite_bytes)
    if metadata is None:
        raise MetadataError("The model has no TFLite metadata.")
    outputs = metadata["subgraph_metadata"][0].get("output_tensor_metadata", [])
    names = [f["name"] for f in outputs[0].get("associated_files", [])
             if f.get("type") == "TENSOR_AXIS_LABELS"] if outputs else []
    if not names:
        raise MetadataError("The output metadata attaches no TENSOR_AXIS_LABELS file.")
    files = associated_files(tflite_bytes)
    if names[0] not in files:
        raise MetadataError(f"The labels file {names[0]!r} is not packed in the model.")
    return files[names[0]].decode().splitlines()


def _named_files(metadata: Mapping[str, Any]) -> list[str]:
    names = [f["name"] for f in metadata.get("associated_files", [])]
    for subgraph in metadata.get("subgraph_metadata", []):
        names += [f["name"] for f in subgraph.get("associated_files", [])]
        for key in ("input_tensor_metadata", "output_tensor_metadata"):
            for tensor in subgraph.get(key, []):
                names += [f["name"] for f in tensor.get("associated_files", [])]
    return names


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
