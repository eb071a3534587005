"""Runs `.tflite` models on LiteRT's GPU accelerator alone; the subprocess of `tflite.gpu`.

`python -m ghostnet_keras.tflite.gpu_worker REQUEST.json` compiles each model of the request
GPU-only (a model with an op the GPU cannot run fails to compile), optionally runs it on given
inputs and times it, and prints one `GPU_RESULT {json}` line per model. It runs in its own
process because a failing GPU runtime can abort the process, and because the Vulkan environment
(`tflite.gpu.accelerator_environment`) must be set before the runtime loads.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULT_PREFIX = "GPU_RESULT "


def _run_one(entry: dict[str, Any], enforce_f32: bool, warmup: int, iterations: int) -> dict:
    from ai_edge_litert.compiled_model import CompiledModel
    from ai_edge_litert.hardware_accelerator import HardwareAccelerator
    from ai_edge_litert.options import GpuOptions, Options

    options = Options(
        hardware_accelerators=HardwareAccelerator.GPU,
        gpu_options=GpuOptions(enforce_f32=enforce_f32),
    )
    started = time.perf_counter()
    try:
        model = CompiledModel.from_file(entry["path"], options=options)
    except Exception as error:  # the GPU refused the model
        return {"compiled": False, "error": f"{type(error).__name__}: {error}".strip()}
    result: dict[str, Any] = {
        "compiled": True,
        "fully_accelerated": bool(model.is_fully_accelerated()),
        "compile_s": time.perf_counter() - started,
    }
    try:
        if entry.get("inputs"):
            result.update(_run(model, entry, warmup, iterations))
    except Exception as error:  # compiled, but running failed
        result["error"] = f"{type(error).__name__}: {error}".strip()
    finally:
        model.close()
    return result


def _run(model: Any, entry: dict[str, Any], warmup: int, iterations: int) -> dict[str, Any]:
    """Runs the model on the request's inputs, saves the outputs, times the runs.

    A timed run includes reading the outputs back: the GPU works asynchronously, and the read
    waits for it.
    """
    signatures = model.get_signature_list()
    key = next(iter(signatures))
    feeds = dict(np.load(entry["inputs"]))
    inputs = model.create_input_buffers(0)
    outputs = model.create_output_buffers(0)
    for name, buffer in zip(signatures[key]["inputs"], inputs, strict=True):
        buffer.write(feeds[name])
    details = model.get_output_tensor_details(key)

    def run() -> dict[str, np.ndarray]:
        model.run_by_index(0, inputs, outputs)
        arrays = {}
        for name, buffer in zip(signatures[key]["outputs"], outputs, strict=True):
            detail = details[name]
            count = int(np.prod(detail["shape"]))
            arrays[name] = buffer.read(count, np.dtype(detail["dtype"])).reshape(detail["shape"])
        return arrays

    np.savez(entry["outputs"], **run())
    samples = []
    for step in range(warmup + iterations):
        started = time.perf_counter()
        run()
        if step >= warmup:
            samples.append((time.perf_counter() - started) * 1e3)
    if not samples:
        return {}
    return {"latency_ms": {"median": float(np.median(samples)), "min": float(np.min(samples)),
                           "iterations": len(samples)}}


def main(request_path: str) -> None:
    request = json.loads(Path(request_path).read_text())
    for entry in request["models"]:
        result = _run_one(entry, request.get("enforce_f32", False),
                          request.get("warmup", 0), request.get("iterations", 0))
        print(RESULT_PREFIX + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
