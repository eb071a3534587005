"""CPU latency of GhostNet in ONNX Runtime next to LiteRT: batch 1, one thread, one run.

    python benchmarks/onnx_vs_litert.py --width=1.0 --iterations=100
    python benchmarks/onnx_vs_litert.py --onnx_files=jax=out/ghostnet_100_jax.onnx

Builds GhostNet (random weights unless `--weights`; latency does not depend on them) at
`--input_size`, converts it to fp32 `.tflite` (`ghostnet_keras.tflite.conversion`, XNNPACK)
and exports it to ONNX on the TensorFlow backend (`ghostnet_keras.export.onnx`, tf2onnx,
checked against Keras), then times every runtime in interleaved blocks in this one process
(`ghostnet_keras.tflite.latency`'s timer: load changes on a shared machine hit all alike) and
prints a Markdown table with the CPU model and its vector flags.
`--onnx_files=label=path,...` adds ONNX files exported elsewhere (e.g. on
the JAX backend). ONNX Runtime runs with 1 intra-op and 1 inter-op thread, sequential
execution and all graph optimizations; LiteRT with `num_threads=1`.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

CPU_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8",
                         "amx_bf16", "avx512_bf16", "avx512_fp16")


def cpu_description() -> str:
    """The CPU model and the vector extensions the kernels can use (Linux /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    present = [flag for flag in CPU_FLAGS_OF_INTEREST if flag in flags]
    return f"{model}, {os.cpu_count()} cores, flags: {' '.join(present) or 'none of interest'}"


def ort_runner(path: Path, images: np.ndarray) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = onnxruntime.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: images}
    return lambda: session.run(None, feed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--input_size", type=int, default=224)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--onnx_files", default="",
                        help="More ONNX files to time: label=path,label=path")
    args = parser.parse_args()

    import keras

    from ghostnet_keras import GhostNet
    from ghostnet_keras.export import onnx as onnx_export
    from ghostnet_keras.tflite import conversion, latency

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("run on the TensorFlow backend (LiteRT conversion needs it)")
    size = args.input_size
    model = GhostNet(width=args.width, weights=args.weights, input_shape=(size, size, 3))
    images = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
    runners: dict[str, Any] = {}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as folder:
        tflite_bytes = conversion.convert(model, "fp32")
        interpreter = latency.make_interpreter(tflite_bytes, num_threads=1)
        runners["LiteRT fp32 (XNNPACK)"] = interpreter.invoke
        sizes["LiteRT fp32 (XNNPACK)"] = len(tflite_bytes)
        onnx_path = Path(folder) / "ghostnet_tf.onnx"
        sidecar = onnx_export.export_onnx(model, onnx_path, dynamic_batch=False)
        label = f"ONNX Runtime (tf2onnx, opset {sidecar['opset']})"
        runners[label] = ort_runner(onnx_path, images)
        sizes[label] = onnx_path.stat().st_size
        for item in filter(None, args.onnx_files.split(",")):
            name, _, path = item.partition("=")
            runners[f"ONNX Runtime ({name})"] = ort_runner(Path(path), images)
            sizes[f"ONNX Runtime ({name})"] = Path(path).stat().st_size
        samples = latency.time_interleaved(runners, args.warmup, args.iterations)

    base = float(np.median(samples["LiteRT fp32 (XNNPACK)"]))
    print(f"GhostNet-{args.width} at {size} x {size}, batch 1, 1 thread, "
          f"{args.warmup} warm-up + {args.iterations} timed calls each, interleaved")
    print(f"CPU: {cpu_description()}; load average {os.getloadavg()[0]:.1f}")
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in
                         ("onnxruntime", "ai-edge-litert", "tensorflow", "tf2onnx", "keras"))
    print(f"Versions: {versions}\n")
    print("| runtime | file | median ms | p90 ms | x LiteRT |")
    print("| --- | --- | --- | --- | --- |")
    for key, values in samples.items():
        median = float(np.median(values)) * 1e3
        p90 = float(np.percentile(values, 90)) * 1e3
        print(f"| {key} | {sizes[key] / 1e6:.2f} MB | {median:.2f} | {p90:.2f} | "
              f"{median / (base * 1e3):.2f} |")


if __name__ == "__main__":
    main()
