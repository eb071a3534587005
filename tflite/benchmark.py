"""LiteRT latency benchmark: GhostNet vs MobileNetV3, per conversion mode and thread count.

Every model is built with random weights (latency does not depend on them), converted with
`ghostnet_keras.tflite.convert.convert` (batch 1) and run with
`ai_edge_litert.interpreter.Interpreter` and its
default XNNPACK delegate, batch 1. For each thread count all models are loaded together and
timed in interleaved blocks (a few invokes of each model in turn), so load changes on a shared
machine hit every model alike; medians and 90th percentiles are reported after a warm-up.
Compare ratios within one run: absolute numbers drift between machines and runs.

GPU: with `--gpu_delegate=/path/libtensorflowlite_gpu_delegate.so` the classic GPU delegate is
loaded with `load_delegate`; otherwise LiteRT's own GPU accelerator (`CompiledModel` with
`HardwareAccelerator.GPU`, a WebGPU backend in the ai-edge-litert 2.3 wheel) is probed in a
subprocess. When neither works the run prints "GPU: not available on this machine (reason)" and
reports CPU only.

Outputs (atomic writes) in `--output_dir`: `benchmark.json`, `latency_vs_macs.png` and the
converted models under `models/`. With `--profile_ops`, a per-op breakdown (each op of the
fp32 model run alone as a one-op model; XNNPACK fuses some ops in the full graph, e.g. a PAD
into the following convolution, so the per-op sum overestimates those) goes to
`op_profile.json` and is printed.

```
python -m ghostnet_keras.tflite.benchmark --output_dir=runs/tflite_bench                   # fp32,
1/2/4 threads
python -m ghostnet_keras.tflite.benchmark
--models=ghostnet_100,ghostnet_130,mobilenetv3_large,mobilenetv3_small \
    --threads=1 --modes=fp32,fp16,int8 --output_dir=runs/tflite_bench
```
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ghostnet_keras.tflite import convert as tflite_convert
from ghostnet_keras.tflite import surgery

BASELINE = "mobilenetv3_large"
DISPLAY_NAMES = {
    "ghostnet_050": "GhostNet-0.5",
    "ghostnet_100": "GhostNet-1.0",
    "ghostnet_130": "GhostNet-1.3",
    "mobilenetv3_large": "MobileNetV3-Large",
    "mobilenetv3_small": "MobileNetV3-Small",
}
DEFAULT_MODELS = tuple(DISPLAY_NAMES)
# The targets (fp32, 1 thread): latency / MobileNetV3-Large latency.
TARGETS = {"ghostnet_100": 0.75, "ghostnet_130": 1.05}


def build_model(name: str, input_size: int = 224) -> Any:
    """Builds one of the benchmarked Keras 3 models, random weights, softmax head."""
    import keras

    shape = (input_size, input_size, 3)
    if name.startswith("ghostnet_"):
        from ghostnet_keras import GhostNet

        width = int(name.split("_")[1]) / 100
        return GhostNet(width=width, input_shape=shape, name=name)
    if name == "mobilenetv3_large":
        return keras.applications.MobileNetV3Large(
            input_shape=shape, weights=None, minimalistic=False, include_preprocessing=True
        )
    if name == "mobilenetv3_small":
        return keras.applications.MobileNetV3Small(
            input_shape=shape, weights=None, minimalistic=False, include_preprocessing=True
        )
    raise ValueError(f"Unknown model {name!r}; expected one of {', '.join(DISPLAY_NAMES)}.")


@dataclasses.dataclass
class Entry:
    """One converted model in the benchmark."""

    name: str
    mode: str
    data: bytes = dataclasses.field(repr=False)
    macs: int | None = None
    params: int | None = None
    latency_ms: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)
    gpu_ms: dict[str, float] | None = None

    @property
    def key(self) -> str:
        return f"{self.name}/{self.mode}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "display_name": DISPLAY_NAMES.get(self.name, self.name),
            "mode": self.mode,
            "macs": self.macs,
            "params": self.params,
            "tflite_bytes": len(self.data),
            "latency_ms": {str(k): v for k, v in sorted(self.latency_ms.items())},
            "gpu_latency_ms": self.gpu_ms,
        }


def summarize(samples_s: Sequence[float]) -> dict[str, float]:
    """Median, p90, mean and min of a list of durations in seconds, in milliseconds."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    return {
        "median": float(np.median(ms)),
        "p90": float(np.percentile(ms, 90)),
        "mean": float(ms.mean()),
        "min": float(ms.min()),
        "n": int(ms.size),
    }


def _random_input(detail: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    shape = tuple(int(d) for d in detail["shape"])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.uniform(0.0, 255.0, size=shape).astype(dtype)


def make_interpreter(data: bytes, num_threads: int) -> Any:
    """A LiteRT interpreter (default XNNPACK delegate) with a random input set."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=num_threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], _random_input(detail, rng))
    return interpreter


def time_interleaved(
    runners: dict[str, Callable[[], Any]], warmup: int, iterations: int, block: int = 5
) -> dict[str, list[float]]:
    """Times callables in interleaved blocks; returns seconds per call, per key.

    Each round runs `block` calls of every callable in turn (the order rotates every round),
    until each has `iterations` timed calls; `warmup` untimed calls of each come first.
    """
    keys = list(runners)
    for key in keys:
        for _ in range(warmup):
            runners[key]()
    samples: dict[str, list[float]] = {key: [] for key in keys}
    round_index = 0
    while any(len(samples[k]) < iterations for k in keys):
        order = keys[round_index % len(keys) :] + keys[: round_index % len(keys)]
        for key in order:
            run = runners[key]
            for _ in range(min(block, iterations - len(samples[key]))):
                start = time.perf_counter()
                run()
                samples[key].append(time.perf_counter() - start)
        round_index += 1
    return samples


# --------------------------------------------------------------------------------------------
# GPU


def probe_gpu(data: bytes, gpu_delegate: str | None = None, timeout_s: float = 120.0) -> str:
    """Returns "" when a GPU path works for `data`, else the reason it does not.

    The probe runs in a subprocess (a failing GPU runtime may abort the process).
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "probe.tflite"
        model_path.write_bytes(data)
        command = [
            sys.executable,
            "-c",
            "import sys; from ghostnet_keras.tflite.benchmark import _gpu_worker; "
            "_gpu_worker(sys.argv[1], sys.argv[2], 0, 1)",
            str(model_path),
            gpu_delegate or "",
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s, cwd=_repo_root()
            )
        except subprocess.TimeoutExpired:
            return f"GPU probe timed out after {timeout_s:.0f} s"
    native = _native_gpu_reason(result.stderr)
    for line in result.stdout.splitlines():
        if line.startswith("GPU_RESULT "):
            error = json.loads(line[len("GPU_RESULT ") :]).get("error", "")
            return f"{error}; {native}" if error and native else error
    return native or _last_error_line(result.stderr) or f"probe exit code {result.returncode}"


def _native_gpu_reason(stderr: str) -> str:
    """The most telling line of the GPU runtime's own log (e.g. WebGPU: "No adapters found")."""
    lines = stderr.splitlines()
    for keys in (("adapter", "vulkan", "no device"), ("webgpu", "opencl", "opengl", "gpu")):
        for line in reversed(lines):
            lowered = line.lower()
            if any(k in lowered for k in keys) and ("fail" in lowered or "error" in lowered):
                return line.rsplit("] ", 1)[-1].strip()
    return ""


def gpu_latency(
    data: bytes, gpu_delegate: str | None, warmup: int, iterations: int, timeout_s: float = 600.0
) -> dict[str, float] | str:
    """Times `data` on the GPU in a subprocess; returns a summary or the failure reason."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "model.tflite"
        model_path.write_bytes(data)
        command = [
            sys.executable,
            "-c",
            "import sys; from ghostnet_keras.tflite.benchmark import _gpu_worker; "
            "_gpu_worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))",
            str(model_path),
            gpu_delegate or "",
            str(warmup),
            str(iterations),
        ]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout_s, cwd=_repo_root()
            )
        except subprocess.TimeoutExpired:
            return f"GPU run timed out after {timeout_s:.0f} s"
    for line in result.stdout.splitlines():
        if line.startswith("GPU_RESULT "):
            payload = json.loads(line[len("GPU_RESULT ") :])
            return payload.get("error") or payload["latency_ms"]
    return _last_error_line(result.stderr) or f"GPU worker exited with code {result.returncode}"


def _gpu_worker(model_path: str, gpu_delegate: str, warmup: int, iterations: int) -> None:
    """Subprocess body: runs a model on the GPU, prints `GPU_RESULT {json}`."""
    try:
        data = Path(model_path).read_bytes()
        if gpu_delegate:
            from ai_edge_litert.interpreter import Interpreter, load_delegate

            delegate = load_delegate(gpu_delegate)
            interpreter = Interpreter(model_content=data, experimental_delegates=[delegate])
            interpreter.allocate_tensors()
            rng = np.random.default_rng(0)
            for detail in interpreter.get_input_details():
                interpreter.set_tensor(detail["index"], _random_input(detail, rng))
            run = interpreter.invoke
        else:
            from ai_edge_litert.compiled_model import CompiledModel
            from ai_edge_litert.hardware_accelerator import HardwareAccelerator

            model = CompiledModel.from_buffer(data, hardware_accel=HardwareAccelerator.GPU)
            if not model.is_fully_accelerated():
                raise RuntimeError("LiteRT GPU accelerator did not take the whole model")
            inputs = model.create_input_buffers(0)
            outputs = model.create_output_buffers(0)

            def run() -> None:
                model.run_by_index(0, inputs, outputs)

        samples = time_interleaved({"gpu": run}, warmup, max(iterations, 1))["gpu"]
        payload: dict[str, Any] = {"latency_ms": summarize(samples)}
    except Exception as error:  # report any failure as the reason
        payload = {"error": f"{type(error).__name__}: {_first_line(str(error))}"}
    print("GPU_RESULT " + json.dumps(payload), flush=True)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else text


def _last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if "error" in line.lower()]
    return lines[-1] if lines else ""


def _repo_root() -> str:
    return str(Path(__file__).resolve().parents[1])


def _gpu_reason_hint(reason: str) -> str:
    if "no adapters" in reason.lower():
        return (
            "LiteRT's GPU accelerator (WebGPU) found no GPU adapter, i.e. no Vulkan device; "
            f"{reason}"
        )
    return reason


# --------------------------------------------------------------------------------------------
# Per-op profile


def op_profile(
    data: bytes, num_threads: int = 1, warmup: int = 3, iterations: int = 20
) -> list[dict[str, Any]]:
    """Times every op of a model alone (one-op models, XNNPACK); returns one row per op."""
    rows = []
    for op_info, op_model in surgery.single_op_models(data):
        interpreter = make_interpreter(op_model, num_threads)
        samples = time_interleaved({"op": interpreter.invoke}, warmup, iterations, block=iterations)
        out_shape = list(op_info.outputs[0].shape) if op_info.outputs else []
        rows.append(
            {
                "index": op_info.index,
                "op": op_info.name,
                "output_shape": out_shape,
                "median_ms": summarize(samples["op"])["median"],
            }
        )
    return rows


def summarize_op_profile(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per op type: count, total median ms and share of the per-op sum."""
    total = sum(row["median_ms"] for row in rows) or 1.0
    table: dict[str, dict[str, float]] = {}
    for row in rows:
        entry = table.setdefault(row["op"], {"count": 0, "ms": 0.0})
        entry["count"] += 1
        entry["ms"] += row["median_ms"]
    for entry in table.values():
        entry["share"] = entry["ms"] / total
    return dict(sorted(table.items(), key=lambda item: -item[1]["ms"]))


# --------------------------------------------------------------------------------------------
# Report


def format_table(entries: Sequence[Entry], threads: Sequence[int], baseline: str = BASELINE) -> str:
    """One table: model, mode, MACs, params, size, median (p90) per thread count, ratios."""
    base = {e.mode: e for e in entries if e.name == baseline}
    header = ["model", "mode", "MACs (M)", "params (M)", "size (MB)"]
    header += [f"{t} thr median (p90) ms" for t in threads]
    header += [f"x {DISPLAY_NAMES.get(baseline, baseline)} @{t}" for t in threads]
    if any(e.gpu_ms for e in entries):
        header.append("GPU median ms")
    rows = []
    for e in entries:
        row = [
            DISPLAY_NAMES.get(e.name, e.name),
            e.mode,
            f"{e.macs / 1e6:.1f}" if e.macs else "-",
            f"{e.params / 1e6:.2f}" if e.params else "-",
            f"{len(e.data) / 2**20:.2f}",
        ]
        for t in threads:
            lat = e.latency_ms.get(t)
            row.append(f"{lat['median']:.2f} ({lat['p90']:.2f})" if lat else "-")
        for t in threads:
            ref = base.get(e.mode)
            if ref and t in ref.latency_ms and t in e.latency_ms:
                row.append(f"{e.latency_ms[t]['median'] / ref.latency_ms[t]['median']:.2f}")
            else:
                row.append("n/a")
        if "GPU median ms" in header:
            row.append(f"{e.gpu_ms['median']:.2f}" if e.gpu_ms else "-")
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def target_report(entries: Sequence[Entry], threads: int = 1) -> list[dict[str, Any]]:
    """The issue's targets (fp32): GhostNet-1.0 <= 0.75x, GhostNet-1.3 <= 1.05x MNV3-Large."""
    by_key = {(e.name, e.mode): e for e in entries}
    base = by_key.get((BASELINE, "fp32"))
    report = []
    for name, limit in TARGETS.items():
        entry = by_key.get((name, "fp32"))
        if not base or not entry or threads not in entry.latency_ms:
            continue
        ratio = entry.latency_ms[threads]["median"] / base.latency_ms[threads]["median"]
        report.append(
            {
                "model": name,
                "threads": threads,
                "ratio": ratio,
                "target": limit,
                "met": bool(ratio <= limit),
            }
        )
    return report


def plot_latency_vs_macs(entries: Sequence[Entry], threads: Sequence[int], path: Path) -> Path:
    """Latency (median) vs MACs, one series per (mode, threads); atomic PNG write."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    series = list(dict.fromkeys((e.mode, t) for e in entries for t in threads))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"GhostNet": ("o", "-"), "MobileNetV3": ("s", "--")}
    for color_index, (mode, t) in enumerate(series):
        color = colors[color_index % len(colors)]
        for family, (marker, line) in {**styles, "other": ("^", ":")}.items():
            points = sorted(
                (e.macs / 1e6, e.latency_ms[t]["median"], e.name)
                for e in entries
                if e.mode == mode and e.macs and t in e.latency_ms and _family(e.name) == family
            )
            if not points:
                continue
            xs, ys, _ = zip(*points, strict=True)
            axes.plot(
                xs,
                ys,
                marker=marker,
                linestyle=line,
                color=color,
                label=f"{family}, {mode}, {t} thread(s)",
            )
            for x, y, name in points:
                axes.annotate(
                    DISPLAY_NAMES.get(name, name),
                    (x, y),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                )
    axes.set_xlabel("multiply-adds (M)")
    axes.set_ylabel("LiteRT latency, median (ms)")
    axes.set_title("Latency vs MACs (batch 1, XNNPACK)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7)
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    tflite_convert.write_atomically({path: buffer.getvalue()})
    return path


def _family(name: str) -> str:
    if name.startswith("ghostnet"):
        return "GhostNet"
    if name.startswith("mobilenetv3"):
        return "MobileNetV3"
    return "other"


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with the results."""
    import ai_edge_litert

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "ai_edge_litert": getattr(ai_edge_litert, "__version__", None),
    }
    try:
        from importlib import metadata

        info["ai_edge_litert"] = metadata.version("ai-edge-litert")
        info["tensorflow"] = metadata.version("tensorflow")
        info["keras"] = metadata.version("keras")
    except Exception:  # pragma: no cover - metadata missing in odd installs
        pass
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:  # pragma: no cover
        pass
    return info


# --------------------------------------------------------------------------------------------
# Driver


def run_benchmark(
    models: Sequence[str],
    modes: Sequence[str],
    threads: Sequence[int],
    *,
    input_size: int = 224,
    warmup: int = 10,
    iterations: int = 50,
    block: int = 5,
    output_dir: Path,
    num_calibration: int = 20,
    gpu: bool = True,
    gpu_delegate: str | None = None,
    reuse_converted: bool = False,
    extra_tflite: dict[str, Path] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[Entry], str]:
    """Converts, times and returns the entries and the GPU status line."""
    models_dir = output_dir / "models"
    entries: list[Entry] = []
    for name in models:
        keras_model = None
        paths = {mode: models_dir / f"{name}_{input_size}_{mode}.tflite" for mode in modes}
        missing = [mode for mode in modes if not (reuse_converted and paths[mode].exists())]
        if missing:
            keras_model = build_model(name, input_size)
            start = time.perf_counter()
            converted = tflite_convert.convert_modes(  # one export for every mode
                keras_model, missing,
                tflite_convert.synthetic_images(num_calibration, input_size),
            )
            for mode, data in converted.items():
                log(f"converted {name} {mode}: {len(data) / 2**20:.2f} MB")
                tflite_convert.write_atomically({paths[mode]: data})
            log(f"converted {name} in {time.perf_counter() - start:.0f} s")
        for mode in modes:
            path = paths[mode]
            data = path.read_bytes()
            macs = params = None
            sidecar = path.with_suffix(".cost.json")
            if sidecar.exists() and reuse_converted:
                cost = json.loads(sidecar.read_text())
                macs, params = cost.get("macs"), cost.get("params")
            else:
                if keras_model is None:
                    keras_model = build_model(name, input_size)
                from ghostnet_keras import profile

                result = profile(keras_model)
                macs, params = result.macs, result.params
                tflite_convert.write_atomically(
                    {sidecar: json.dumps({"macs": macs, "params": params}).encode()}
                )
            entries.append(Entry(name, mode, data, macs, params))
    for label, path in (extra_tflite or {}).items():
        entries.append(Entry(label, "file", Path(path).read_bytes()))

    for t in threads:
        runners = {}
        for entry in entries:
            runners[entry.key] = make_interpreter(entry.data, t).invoke
        log(
            f"timing {len(runners)} model(s) with {t} thread(s): {warmup} warm-up + "
            f"{iterations} timed invokes each, interleaved in blocks of {block}"
        )
        samples = time_interleaved(runners, warmup, iterations, block)
        for entry in entries:
            entry.latency_ms[t] = summarize(samples[entry.key])
        del runners

    gpu_status = "GPU: skipped (--nogpu)"
    if gpu and entries:
        reason = probe_gpu(entries[0].data, gpu_delegate)
        if reason:
            gpu_status = f"GPU: not available on this machine ({_gpu_reason_hint(reason)})"
        else:
            backend = gpu_delegate or "LiteRT GPU accelerator"
            gpu_status = f"GPU: {backend}"
            for entry in entries:
                result = gpu_latency(entry.data, gpu_delegate, warmup, iterations)
                if isinstance(result, dict):
                    entry.gpu_ms = result
                else:
                    log(f"GPU run of {entry.key} failed: {result}")
    return entries, gpu_status


def _define_flags() -> None:
    from absl import flags

    flags.DEFINE_list("models", list(DEFAULT_MODELS), f"Models: {', '.join(DISPLAY_NAMES)}.")
    flags.DEFINE_list("modes", ["fp32"], "Conversion modes: fp32, fp16, dynamic, int8.")
    flags.DEFINE_list("threads", ["1", "2", "4"], "XNNPACK thread counts (num_threads).")
    flags.DEFINE_integer("input_size", 224, "Input height and width.")
    flags.DEFINE_integer("warmup", 10, "Untimed invokes per model before timing.")
    flags.DEFINE_integer("iterations", 50, "Timed invokes per model and thread count.")
    flags.DEFINE_integer("block", 5, "Consecutive invokes of one model per interleaving round.")
    flags.DEFINE_integer("num_calibration", 20, "Synthetic calibration images for int8.")
    flags.DEFINE_string("output_dir", "runs/tflite_benchmark", "Where results are written.")
    flags.DEFINE_bool("gpu", True, "Probe and time a GPU path (CPU results are always given).")
    flags.DEFINE_string(
        "gpu_delegate", None, "Path of a classic TFLite GPU delegate .so (load_delegate)."
    )
    flags.DEFINE_bool("reuse_converted", False, "Reuse .tflite files already in output_dir.")
    flags.DEFINE_list("tflite", [], "Extra prebuilt models as name=path.tflite (mode 'file').")
    flags.DEFINE_bool(
        "profile_ops", False, "Per-op timing of each fp32 model (1 thread, one-op models)."
    )


def main(argv: Sequence[str]) -> None:
    from absl import flags

    del argv
    values = flags.FLAGS
    unknown = [m for m in values.models if m not in DISPLAY_NAMES]
    if unknown:
        raise SystemExit(f"error: unknown model(s) {unknown}; expected {list(DISPLAY_NAMES)}.")
    bad_modes = [m for m in values.modes if m not in ("fp32", "fp16", "dynamic", "int8")]
    if bad_modes:
        raise SystemExit(f"error: unknown mode(s) {bad_modes}; qat_int8 needs a QAT model.")
    threads = [int(t) for t in values.threads]
    extra = {}
    for item in values.tflite:
        label, _, path = item.partition("=")
        if not path:
            raise SystemExit(f"error: --tflite expects name=path, got {item!r}.")
        extra[label] = Path(path)
    output_dir = Path(values.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    env_before = environment()
    entries, gpu_status = run_benchmark(
        values.models,
        values.modes,
        threads,
        input_size=values.input_size,
        warmup=values.warmup,
        iterations=values.iterations,
        block=values.block,
        output_dir=output_dir,
        num_calibration=values.num_calibration,
        gpu=values.gpu,
        gpu_delegate=values.gpu_delegate,
        reuse_converted=values.reuse_converted,
        extra_tflite=extra,
    )
    table = format_table(entries, threads)
    targets = target_report(entries)
    print()
    print(
        f"LiteRT {env_before.get('ai_edge_litert')} XNNPACK, batch 1, "
        f"{values.input_size}x{values.input_size}, {values.iterations} timed invokes after "
        f"{values.warmup} warm-up; load average at start {env_before.get('loadavg')}"
    )
    print(table)
    print(gpu_status)
    for target in targets:
        print(
            f"target {DISPLAY_NAMES[target['model']]}: {target['ratio']:.2f}x "
            f"MobileNetV3-Large (fp32, {target['threads']} thread) <= {target['target']}: "
            f"{'met' if target['met'] else 'MISSED'}"
        )
    op_profiles = {}
    if values.profile_ops:
        for entry in entries:
            if entry.mode != "fp32":
                continue
            rows = op_profile(entry.data, 1)
            op_profiles[entry.name] = {"ops": rows, "by_type": summarize_op_profile(rows)}
            total = sum(r["median_ms"] for r in rows)
            print(
                f"\nper-op profile {DISPLAY_NAMES.get(entry.name, entry.name)} (1 thread, "
                f"sum of one-op medians {total:.2f} ms):"
            )
            for op, row in op_profiles[entry.name]["by_type"].items():
                print(f"  {op:<20} x{row['count']:<4} {row['ms']:7.2f} ms  {row['share']:6.1%}")
        tflite_convert.write_atomically(
            {output_dir / "op_profile.json": (json.dumps(op_profiles, indent=2) + "\n").encode()}
        )
    plot_path = plot_latency_vs_macs(entries, threads, output_dir / "latency_vs_macs.png")
    results = {
        "settings": {
            "models": values.models,
            "modes": values.modes,
            "threads": threads,
            "input_size": values.input_size,
            "warmup": values.warmup,
            "iterations": values.iterations,
            "block": values.block,
            "batch": 1,
        },
        "environment": {**env_before, "loadavg_end": list(os.getloadavg())},
        "gpu": gpu_status,
        "baseline": BASELINE,
        "results": [e.to_dict() for e in entries],
        "targets": targets,
        "table": table,
    }
    json_path = output_dir / "benchmark.json"
    tflite_convert.write_atomically({json_path: (json.dumps(results, indent=2) + "\n").encode()})
    print(f"wrote {json_path} and {plot_path}")


def main_entry() -> None:
    """Console-script entry point."""
    from absl import app

    _define_flags()
    app.run(main)


if __name__ == "__main__":
    main_entry()
