"""Concurrent mixed good / hostile requests through the TF Serving export, as the server runs it.

    python benchmarks/serving_load.py                      # GhostNet 1.0, 224, 200 requests
    python benchmarks/serving_load.py --width=0.5 --requests=400 --threads=16

Exports a GhostNet (random weights, classifier rescaled so the answers depend on the image)
with the default request limits, loads it in a TF1 session the way TF Serving's C++ loader
does (`tests.test_serving.SessionServer`), and sends `--requests` requests from `--threads`
threads: every other one a good image (PNG, JPEG, animated GIF, a 12-megapixel JPEG) whose
answer must equal the Keras model's on the same pixels, the others the hostile inputs of
tests/test_serving_hostile.py (decompression bombs, truncated and random bytes, ...), each
after a good image in one batch, which must be refused with their message. Prints a Markdown
table (latency per request kind), the peak RSS (VmHWM) and the machine. Run from the
repository root.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tensorflow as tf

from ghostnet_keras.export import serving
from ghostnet_keras.models.ghostnet import GhostNet
from ghostnet_keras.synthetic_images import synthetic_image
from tests.test_serving import SessionServer, _jpeg, _png, peaked_classifier
from tests.test_serving_hostile import (
    HOSTILE,
    TWO_COLOURS,
    _vm,
    animated_gif,
    mixed_requests,
    reference,
    run_load,
)

VECTOR_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")


def machine() -> str:
    info = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = re.search(r"Model name:\s*(.+)", info)
    flags = set(re.search(r"Flags:\s*(.+)", info).group(1).split()) if "Flags:" in info else set()
    present = [flag for flag in VECTOR_FLAGS if flag in flags]
    cores = re.search(r"^CPU\(s\):\s*(\d+)", info, re.MULTILINE)
    return (f"{model.group(1).strip() if model else 'unknown CPU'}, "
            f"{cores.group(1) if cores else '?'} CPUs, flags: {' '.join(present) or 'none'}")


def good_requests(model: keras.Model, image_size: int) -> dict[str, tuple[bytes, np.ndarray]]:
    good = {}
    pixels = synthetic_image(300, 500, seed=1)
    good["png_300x500"] = (_png(pixels), reference(model, pixels, image_size))
    for name, (height, width) in {"jpeg_480x640": (480, 640),
                                  "jpeg_3000x4000": (3000, 4000)}.items():
        data = _jpeg(synthetic_image(height, width, seed=height))
        decoded = tf.io.decode_jpeg(data, channels=3).numpy()
        good[name] = (data, reference(model, decoded, image_size))
    first_frame = np.full((64, 64, 3), TWO_COLOURS[0], np.uint8)
    good["gif_100_frames"] = (animated_gif(100, 64), reference(model, first_frame, image_size))
    return good


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    model = peaked_classifier(
        GhostNet(width=args.width, input_shape=(None, None, 3)), args.image_size)
    with tempfile.TemporaryDirectory() as tmp:
        export = serving.export_serving_model(
            model, Path(tmp) / "ghostnet", image_size=args.image_size, warmup=False)
        server = SessionServer(export)
        good = good_requests(model, args.image_size)
        hostile = {name: (build(), message) for name, (build, message) in HOSTILE.items()
                   if name != "over_max_image_bytes"}  # the tests' 4 MiB cap, not the default
        first = next(iter(good.values()))[0]
        server.run(serving.SERVING_SIGNATURE,  # warm the session up, as TF Serving's warmup
                   {serving.IMAGE_BYTES_INPUT: np.array([first], dtype=object)})
        rss_before = _vm("VmRSS")
        requests = mixed_requests(good, hostile, args.requests)
        result = run_load(server, requests, args.threads)
        server.close()

    print(f"GhostNet {args.width} at {args.image_size}, {args.requests} requests from "
          f"{args.threads} threads, limits: max_pixels={serving.DEFAULT_MAX_PIXELS}, "
          f"max_batch_size={serving.DEFAULT_MAX_BATCH_SIZE}, "
          f"max_image_bytes={serving.DEFAULT_MAX_IMAGE_BYTES}")
    print(f"machine: {machine()}; TensorFlow {tf.__version__}\n")
    print("| request | kind | sent | median s | max s |")
    print("|---|---|---:|---:|---:|")
    for name, seconds in result.seconds.items():
        kind = "good" if name in good else "hostile (after a good image)"
        print(f"| {name} | {kind} | {len(seconds)} | {np.median(seconds):.3f} | "
              f"{max(seconds):.3f} |")
    print(f"\nanswered {result.answered}, refused {result.refused}, wrong {len(result.wrong)} "
          f"in {result.wall:.1f} s; RSS before the load {rss_before / 2**20:.0f} MiB, peak "
          f"{result.peak_rss / 2**20:.0f} MiB")
    for line in result.wrong:
        print("WRONG:", line)
    if result.wrong:
        sys.exit(1)


if __name__ == "__main__":
    main()
