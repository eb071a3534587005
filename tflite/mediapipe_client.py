"""MediaPipe ImageClassifier client: classifies images with a `.tflite` and prints JSON.

Runs inside the MediaPipe venv (`tools/make_mediapipe_venv.sh`, default `.venv-mediapipe`),
executed by path, never imported by the package: it imports only mediapipe, numpy and the
standard library (MediaPipe's absl-py pin conflicts with the project's environment).

    .venv-mediapipe/bin/python tflite/mediapipe_client.py --model m.tflite --top_k 5 a.png b.npy

Images are files MediaPipe reads (PNG, JPEG, ...) or `.npy` arrays (H, W, 3) uint8 RGB. The CPU
delegate is used: MediaPipe's GPU delegate refuses software rendering and aborts the process on
exit. Output (stdout, one JSON object):

    {"mediapipe": "1.2.3",
     "metadata": {...},     # read with MediaPipe's own generated metadata schema
     "results": [{"image": "a.png", "categories": [{"index": 3, "score": 0.71,
                  "category_name": "...", "display_name": "..."}, ...]}, ...]}

Errors (MediaPipe refusing the model, a missing file) go to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# Run by path, Python puts this folder first on sys.path: its modules (metadata.py, ...) must not
# shadow the client environment's packages.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]

from importlib import metadata as importlib_metadata  # noqa: E402

import numpy as np  # noqa: E402


def read_model_metadata(model_path: str) -> dict | None:
    """The model's TFLite metadata, decoded with MediaPipe's generated schema modules."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_fb
    from mediapipe.tasks.metadata import schema_py_generated as model_fb

    with open(model_path, "rb") as stream:
        data = bytearray(stream.read())
    model = model_fb.Model.GetRootAs(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name().decode() != "TFLITE_METADATA":
            continue
        buffer = model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
        if not metadata_fb.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0):
            raise ValueError("TFLITE_METADATA buffer lacks the M001 file identifier")
        md = metadata_fb.ModelMetadataT.InitFromObj(metadata_fb.ModelMetadata.GetRootAs(buffer, 0))

        def text(value: bytes | None) -> str | None:
            return value.decode() if value is not None else None

        subgraph = md.subgraphMetadata[0]
        image = subgraph.inputTensorMetadata[0]
        scores = subgraph.outputTensorMetadata[0]
        normalization = image.processUnits[0].options if image.processUnits else None
        return {
            "name": text(md.name),
            "description": text(md.description),
            "version": text(md.version),
            "author": text(md.author),
            "license": text(md.license),
            "min_parser_version": text(md.minParserVersion),
            "input": {
                "name": text(image.name),
                "color_space": image.content.contentProperties.colorSpace,
                "mean": None if normalization is None else list(map(float, normalization.mean)),
                "std": None if normalization is None else list(map(float, normalization.std)),
            },
            "output": {
                "name": text(scores.name),
                "associated_files": [
                    {"name": text(f.name), "type": f.type} for f in scores.associatedFiles or []
                ],
            },
        }
    return None


def classify(model_path: str, images: list[str], top_k: int) -> list[dict]:
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=model_path, delegate=BaseOptions.Delegate.CPU),
        running_mode=vision.RunningMode.IMAGE,
        max_results=top_k,
    )
    results = []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for path in images:
            if path.endswith(".npy"):
                array = np.ascontiguousarray(np.load(path), dtype=np.uint8)
                if array.ndim != 3 or array.shape[2] != 3:
                    raise ValueError(
                        f"{path}: expected an (H, W, 3) uint8 RGB array, got {array.shape}"
                    )
                image = mp.Image(image_format=mp.ImageFormat.SRGB, data=array)
            else:
                image = mp.Image.create_from_file(path)
            (head,) = classifier.classify(image).classifications
            results.append(
                {
                    "image": path,
                    "categories": [
                        {
                            "index": int(c.index),
                            "score": float(c.score),
                            "category_name": c.category_name,
                            "display_name": c.display_name,
                        }
                        for c in head.categories
                    ],
                }
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help=".tflite with TFLite metadata")
    parser.add_argument("--top_k", type=int, default=5)
    parser.add_argument("images", nargs="+", help="image files or .npy (H, W, 3) uint8 RGB arrays")
    args = parser.parse_args(argv)
    try:
        output = {
            "mediapipe": importlib_metadata.version("mediapipe"),
            "metadata": read_model_metadata(args.model),
            "results": classify(args.model, args.images, args.top_k),
        }
    except Exception as error:
        print(f"mediapipe_client: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    json.dump(output, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
