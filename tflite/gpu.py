"""GPU deployment checked by the real runtime: LiteRT's GPU accelerator, on a GPU or lavapipe.

`check(tflite_bytes)` compiles a model for the GPU alone (so any op the GPU cannot run makes it
fail), runs it on random inputs, compares the outputs with LiteRT's CPU path and, when the model
is not fully delegated, names the op types the GPU refused (each probed alone). Everything GPU
runs in a subprocess (`tflite.gpu_worker`) with the Vulkan environment of
`accelerator_environment()`: the software GPU installed by `tools/install_software_gpu.sh`
(Mesa's lavapipe) when it is there, else the machine's own.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ghostnet_keras.tflite import inventory, latency, surgery
from ghostnet_keras.tflite.gpu_worker import RESULT_PREFIX

SOFTWARE_GPU_DIR_VARIABLE = "GHOSTNET_SOFTWARE_GPU_DIR"
SOFTWARE_LABEL = "software GPU (correctness, not speed)"
NOT_ACCELERATED = "Some ops are not accelerated"
INT8_NOTE = (
    "int8 is not a GPU format: LiteRT's GPU accelerator takes an int8 model whole but runs it by "
    "simulating the quantization in float arithmetic; in its default float16 the result drifts "
    "from the CPU's int8 result by whole quantization steps (top-1 changes), with enforce_f32 it "
    "equals it but computes in float32 like the fp32 model. Deploy fp16 or fp32 to the GPU."
)
_ADAPTER = re.compile(r"Selected adapter: (.+?), arch=.*?adapterType=([^\n]+)")
_LIBRARY_DIR = Path("root/usr/lib/x86_64-linux-gnu")


def software_gpu_dir() -> Path:
    """Where `tools/install_software_gpu.sh` puts lavapipe (same default as the script)."""
    if os.environ.get(SOFTWARE_GPU_DIR_VARIABLE):
        return Path(os.environ[SOFTWARE_GPU_DIR_VARIABLE])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ghostnet_keras" / "software_gpu"


def software_gpu_installed() -> bool:
    folder = software_gpu_dir()
    return (folder / "lvp_icd.json").is_file() and any(folder.glob("installed-*"))


def accelerator_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a GPU-accelerator process: the software GPU's if it is installed.

    Sets `VK_ICD_FILENAMES` / `VK_DRIVER_FILES` to the lavapipe ICD, puts its Vulkan loader on
    `LD_LIBRARY_PATH` and keeps Mesa's shader cache beside it (the first compile of a model's
    shaders takes seconds to tens of seconds, a cached one a fraction of a second).
    """
    env = dict(os.environ if base is None else base)
    folder = software_gpu_dir()
    if software_gpu_installed():
        icd = str(folder / "lvp_icd.json")
        env["VK_ICD_FILENAMES"] = env["VK_DRIVER_FILES"] = icd
        library = str(folder / _LIBRARY_DIR)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (library, env.get("LD_LIBRARY_PATH", "")) if p)
        env.setdefault("MESA_SHADER_CACHE_DIR", str(folder / "shader_cache"))
    return env


@dataclasses.dataclass
class GpuRun:
    """What the GPU worker reported for one model."""

    compiled: bool
    error: str | None = None
    fully_accelerated: bool | None = None
    outputs: dict[str, np.ndarray] | None = None
    latency_ms: dict[str, float] | None = None
    adapter: str | None = None
    software: bool | None = None


def run_models(
    models: Sequence[bytes],
    inputs: Sequence[dict[str, np.ndarray] | None] | None = None,
    *,
    enforce_f32: bool = False,
    warmup: int = 0,
    iterations: int = 0,
    timeout_s: float = 900.0,
) -> list[GpuRun]:
    """Compiles (and with `inputs`, runs and times) each model GPU-only, in one subprocess.

    Args:
        models: `.tflite` flatbuffers.
        inputs: per model, `{signature input name: array}` to run it on, or `None` to only
            compile it.
        enforce_f32: GPU arithmetic in float32 (default: the accelerator's float16).
        warmup, iterations: timed runs after the first (only for models with inputs).
        timeout_s: for the whole subprocess.

    Returns:
        One `GpuRun` per model. When the process itself fails (no GPU runtime, timeout), every
        run carries that error.
    """
    inputs = list(inputs) if inputs is not None else [None] * len(models)
    if len(inputs) != len(models):
        raise ValueError(f"{len(models)} models but {len(inputs)} input sets.")
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as scratch:
        entries = []
        for index, (data, feeds) in enumerate(zip(models, inputs, strict=True)):
            path = Path(scratch, f"model_{index}.tflite")
            path.write_bytes(data)
            entry = {"path": str(path), "outputs": str(Path(scratch, f"out_{index}.npz"))}
            if feeds is not None:
                entry["inputs"] = str(Path(scratch, f"in_{index}.npz"))
                np.savez(entry["inputs"], **feeds)
            entries.append(entry)
        request = Path(scratch, "request.json")
        request.write_text(json.dumps({"models": entries, "enforce_f32": enforce_f32,
                                       "warmup": warmup, "iterations": iterations}))
        try:
            process = subprocess.run(
                [sys.executable, "-m", "ghostnet_keras.tflite.gpu_worker", str(request)],
                capture_output=True, text=True, timeout=timeout_s,
                env=accelerator_environment(),
            )
        except subprocess.TimeoutExpired:
            return [GpuRun(False, f"GPU worker timed out after {timeout_s:.0f} s")] * len(models)
        results = [json.loads(line[len(RESULT_PREFIX):]) for line in process.stdout.splitlines()
                   if line.startswith(RESULT_PREFIX)]
        adapter = _ADAPTER.search(process.stderr)
        if len(results) != len(models):
            reason = _runtime_failure(process.stderr) or f"exit code {process.returncode}"
            return [GpuRun(False, f"GPU worker failed: {reason}")] * len(models)
        runs = []
        for entry, result in zip(entries, results, strict=True):
            outputs = None
            if result.get("compiled") and Path(entry["outputs"]).exists():
                with np.load(entry["outputs"]) as archive:
                    outputs = {name: archive[name] for name in archive.files}
            runs.append(GpuRun(
                compiled=bool(result.get("compiled")),
                error=_short_error(result.get("error")),
                fully_accelerated=result.get("fully_accelerated"),
                outputs=outputs,
                latency_ms=result.get("latency_ms"),
                adapter=adapter.group(1) if adapter else None,
                software=_is_software(adapter),
            ))
        return runs


def _is_software(adapter: re.Match | None) -> bool | None:
    if adapter is None:
        return None
    text = adapter.group(0).lower()
    return "llvmpipe" in text or "software" in text or "adaptertype=cpu" in text


def _short_error(error: str | None) -> str | None:
    if not error:
        return None
    if NOT_ACCELERATED in error:
        return f"{NOT_ACCELERATED} by the GPU"
    lines = [line.strip(" └") for line in error.splitlines() if line.strip(" └")]
    return lines[-1] if lines else error


def _runtime_failure(stderr: str) -> str:
    """The most telling line of the GPU runtime's own log (e.g. "No adapters found")."""
    for line in reversed(stderr.splitlines()):
        lowered = line.lower()
        if any(k in lowered for k in ("adapter", "vulkan", "webgpu")) and (
            "fail" in lowered or "error" in lowered or "no " in lowered
        ):
            return line.rsplit("] ", 1)[-1].strip()
    lines = [line for line in stderr.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def random_inputs(tflite_bytes: bytes, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for the model's first signature: images in [0, 255], or the integer range."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=tflite_bytes).get_signature_runner()
    rng = np.random.default_rng(seed)
    return {name: latency.random_input(detail, rng)
            for name, detail in runner.get_input_details().items()}


def cpu_outputs(tflite_bytes: bytes, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """LiteRT's CPU result for the first signature (the reference the GPU is compared with)."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=tflite_bytes).get_signature_runner()
    return {name: np.asarray(value) for name, value in runner(**feeds).items()}


@dataclasses.dataclass
class GpuCheck:
    """The GPU verdict on one model (see `check`)."""

    precision: str
    fully_delegated: bool
    adapter: str | None = None
    software: bool | None = None
    fallback_ops: list[str] = dataclasses.field(default_factory=list)
    max_abs_diff: float | None = None
    relative_diff: float | None = None
    top1_agrees: bool | None = None  # None: no output row is decided clearly enough to tell
    latency_ms: dict[str, float] | None = None
    error: str | None = None

    @property
    def adapter_label(self) -> str:
        if self.adapter is None:
            return "no GPU adapter"
        return f"{self.adapter}: {SOFTWARE_LABEL}" if self.software else self.adapter

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "adapter_label": self.adapter_label}


def check(
    tflite_bytes: bytes,
    *,
    enforce_f32: bool = False,
    iterations: int = 0,
    warmup: int = 2,
    seed: int = 0,
) -> GpuCheck:
    """Compiles `tflite_bytes` GPU-only, runs it and compares with the CPU.

    Args:
        tflite_bytes: the model.
        enforce_f32: float32 GPU arithmetic (default: float16, the accelerator's default).
        iterations: timed GPU runs (0: no latency).
        warmup: untimed runs before them.
        seed: of the random inputs.

    Returns:
        A `GpuCheck`: `fully_delegated` is true when the GPU-only compile succeeded; then the
        output difference to LiteRT's CPU result (max |gpu - cpu| and that divided by the
        largest |cpu output|) and whether the arg-max agrees; otherwise `fallback_ops` names the
        op types the GPU refused (`unsupported_ops`).
    """
    (result,) = check_all([tflite_bytes], enforce_f32=enforce_f32, iterations=iterations,
                          warmup=warmup, seed=seed)
    return result


def check_all(
    models: Sequence[bytes],
    *,
    enforce_f32: bool = False,
    iterations: int = 0,
    warmup: int = 2,
    seed: int = 0,
) -> list[GpuCheck]:
    """`check` for several models in one GPU process (the runtime starts once)."""
    precision = "fp32" if enforce_f32 else "fp16"
    feeds = [random_inputs(data, seed) for data in models]
    runs = run_models(models, feeds, enforce_f32=enforce_f32, warmup=warmup,
                      iterations=iterations)
    results = []
    for data, inputs, run in zip(models, feeds, runs, strict=True):
        result = GpuCheck(precision, run.compiled, run.adapter, run.software,
                          latency_ms=run.latency_ms, error=run.error)
        results.append(result)
        if not run.compiled:
            if run.error and NOT_ACCELERATED in run.error:
                result.fallback_ops = unsupported_ops(data, enforce_f32=enforce_f32)
            continue
        if run.outputs is None:  # compiled, but running failed
            continue
        expected = cpu_outputs(data, inputs)
        diffs, scales, agree = [], [], []
        for name, reference in expected.items():
            got = run.outputs[name].astype(np.float64)
            reference = reference.astype(np.float64)
            diffs.append(float(np.max(np.abs(got - reference))))
            scales.append(float(np.max(np.abs(reference))) or 1.0)
            if reference.ndim == 2 and reference.shape[-1] > 1:
                agree += _top1_agreement(got, reference, diffs[-1])
        result.max_abs_diff = max(diffs)
        result.relative_diff = max(d / s for d, s in zip(diffs, scales, strict=True))
        result.top1_agrees = all(agree) if agree else None
    return results


def _top1_agreement(got: np.ndarray, reference: np.ndarray, max_diff: float) -> list[bool]:
    """Per row whose CPU top-1 wins by more than twice the largest difference: same top-1?

    Rows decided by less (a near-uniform output, e.g. random weights) say nothing about the
    GPU and are left out.
    """
    top2 = np.sort(reference, axis=-1)[:, -2:]
    decided = (top2[:, 1] - top2[:, 0]) > 2 * max_diff
    return list(got[decided].argmax(-1) == reference[decided].argmax(-1))


def unsupported_ops(tflite_bytes: bytes, *, enforce_f32: bool = False) -> list[str]:
    """The op types of a model that LiteRT's GPU accelerator refuses, each probed alone.

    One single-op model per distinct (op, tensor types, options) is compiled GPU-only; the
    names of those that fail are returned, e.g. `["GATHER_ND"]`. An empty list with a model
    that does not compile whole means the GPU refuses a combination, not one op.
    """
    probes: dict[str, list[tuple[inventory.OpInfo, bytes]]] = {}
    for op, data in surgery.single_op_models(tflite_bytes):
        key = json.dumps([op.name, [t.dtype for t in (*op.inputs, *op.outputs)]])
        probes.setdefault(key, []).append((op, data))
    representatives = [group[0] for group in probes.values()]
    runs = run_models([data for _, data in representatives], enforce_f32=enforce_f32)
    refused = {op.name for (op, _), run in zip(representatives, runs, strict=True)
               if not run.compiled}
    return sorted(refused)
