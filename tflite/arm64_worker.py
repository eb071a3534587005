"""Runs a `.tflite` on LiteRT's CPU path (XNNPACK) image by image; the arm64 side of `tflite.arm64`.

Executed by path under the arm64 Python of `tools/install_arm64_runtime.sh` (emulated by
qemu-aarch64, or native on an arm64 host), never imported there as part of the package: it
imports only numpy, ai_edge_litert and the standard library. `tflite.arm64` imports `invoke_each`
to run the same loop on the x86 LiteRT.

    python3.11 tflite/arm64_worker.py --model m.tflite --inputs x.npy --output y.npz

`x.npy` holds N inputs stacked on the first axis (each one the model's input without its batch
dimension of 1, in the input's dtype); `y.npz` gets `output_<i>` arrays (N, ...) in the outputs'
own dtypes. Prints one JSON line: the versions and the CPU the runtime saw. Errors go to stderr
with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys

# Run by path, Python puts this folder first on sys.path: its modules must not shadow packages.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]

import numpy as np  # noqa: E402


def invoke_each(model_path: str, inputs: np.ndarray, num_threads: int = 1) -> list[np.ndarray]:
    """The model's outputs for each input (one invoke per input), stacked per output."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=model_path, num_threads=num_threads)
    interpreter.allocate_tensors()
    (detail, *others) = interpreter.get_input_details()
    if others:
        raise ValueError(f"{model_path}: {1 + len(others)} inputs; only one-input models run here")
    shape = tuple(int(d) for d in detail["shape"])
    if shape[0] != 1 or tuple(inputs.shape[1:]) != shape[1:]:
        raise ValueError(f"{model_path}: input {detail['name']} is {shape}; the inputs are "
                         f"{inputs.shape} (expected (N, {', '.join(map(str, shape[1:]))}))")
    if inputs.dtype != np.dtype(detail["dtype"]):
        raise ValueError(f"{model_path}: input {detail['name']} is {np.dtype(detail['dtype'])}; "
                         f"the inputs are {inputs.dtype}")
    outputs: list[list[np.ndarray]] = [[] for _ in interpreter.get_output_details()]
    for sample in inputs:
        interpreter.set_tensor(detail["index"], sample[None])
        interpreter.invoke()
        for values, output in zip(outputs, interpreter.get_output_details(), strict=True):
            values.append(interpreter.get_tensor(output["index"])[0].copy())
    return [np.stack(values) for values in outputs]


def cpu_features() -> str:
    """The `Features` line of /proc/cpuinfo (what XNNPACK picks its kernels by), or ''."""
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.lower().startswith("features"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--inputs", required=True, help=".npy, inputs stacked on axis 0")
    parser.add_argument("--output", required=True, help=".npz to write the outputs to")
    parser.add_argument("--num_threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        from importlib import metadata

        outputs = invoke_each(args.model, np.load(args.inputs), args.num_threads)
        np.savez(args.output, **{f"output_{i}": value for i, value in enumerate(outputs)})
        report = {"machine": platform.machine(), "python": platform.python_version(),
                  "numpy": np.__version__, "ai_edge_litert": metadata.version("ai-edge-litert"),
                  "cpu_features": cpu_features()}
    except Exception as error:
        print(f"arm64_worker: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
