"""LiteRT benchmark: GhostNet vs MobileNetV3 on the CPU (XNNPACK) and the GPU accelerator.

Every model is built with random weights (latency does not depend on them), converted by
`tflite.conversion` (batch 1; int8 calibrated on synthetic images) and run with LiteRT's
`Interpreter` and its default XNNPACK delegate. For each thread count all models are loaded
together and timed in interleaved blocks, so load changes on a shared machine hit every model
alike. Each row also shows how many XNNPACK partitions the model runs as (`tflite.xnnpack`: one
is what a fast model looks like) and its ratio to MobileNetV3-Large fp32 and to its own fp32
at the same thread count. The fp32 and fp16 models are then checked on LiteRT's GPU
accelerator (`tflite.gpu`: fully delegated or not, GPU vs CPU outputs, latency, the adapter;
a software adapter such as lavapipe is labelled "correctness, not speed").

```
ghostnet-tflite-benchmark --output_dir=runs/tflite_bench          # fp32/fp16/int8, 1/2/4 threads
ghostnet-tflite-benchmark --models=ghostnet_100,mobilenetv3_large --modes=fp32,int8 --threads=1
```

Outputs (atomic writes) in `--output_dir`: `benchmark.json`, `latency_vs_macs.png`, the
converted models under `models/`, and with `--profile_ops` the per-op profile of every model
(`op_profile.json`; each op run alone as a one-op model).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from absl import app, flags

from ghostnet_keras.files import write_atomically
from ghostnet_keras.synthetic_images import synthetic_images
from ghostnet_keras.tflite import conversion, gpu, latency, xnnpack

BASELINE = "mobilenetv3_large"
DISPLAY_NAMES = {
    "ghostnet_050": "GhostNet-0.5",
    "ghostnet_100": "GhostNet-1.0",
    "ghostnet_130": "GhostNet-1.3",
    "mobilenetv3_large": "MobileNetV3-Large",
    "mobilenetv3_small": "MobileNetV3-Small",
    "ghostnetv2_100": "GhostNetV2-1.0",
    "ghostnetv2_130": "GhostNetV2-1.3",
    "ghostnetv2_160": "GhostNetV2-1.6",
    "ghostnetv3_100": "GhostNetV3-1.0",  # its deploy form, as TFLite runs it
}
DEFAULT_MODELS = ("ghostnet_050", "ghostnet_100", "ghostnet_130", "mobilenetv3_large",
                  "mobilenetv3_small")
MODES = ("fp32", "fp16", "dynamic", "int8")
GPU_MODES = ("fp32", "fp16")  # int8 is not a GPU format (gpu.INT8_NOTE)
# Targets at 1 thread, as latency ratios: (model, mode, reference model, reference mode, limit).
TARGETS = (
    ("ghostnet_100", "int8", "ghostnet_100", "fp32", 0.5),
    ("ghostnet_100", "int8", BASELINE, "fp32", 0.6),
    ("ghostnet_130", "int8", BASELINE, "fp32", 0.8),
    ("ghostnet_100", "fp32", BASELINE, "fp32", 0.75),
    ("ghostnet_130", "fp32", BASELINE, "fp32", 1.05),
)


def build_model(name: str, input_size: int = 224) -> Any:
    """Builds one of the benchmarked Keras 3 models, random weights, softmax head."""
    import keras

    shape = (input_size, input_size, 3)
    if name.startswith("ghostnet") and name in DISPLAY_NAMES:
        from ghostnet_keras.ghostnet import create_ghostnet

        family, width = name.split("_")
        version = family.removeprefix("ghostnet") or "v1"
        return create_ghostnet(version, width=int(width) / 100, input_shape=shape, name=name,
                               reparameterized=version == "v3")
    applications = {"mobilenetv3_large": keras.applications.MobileNetV3Large,
                    "mobilenetv3_small": keras.applications.MobileNetV3Small}
    if name not in applications:
        raise ValueError(f"Unknown model {name!r}; expected one of {', '.join(DISPLAY_NAMES)}.")
    return applications[name](input_shape=shape, weights=None, include_preprocessing=True)


@dataclasses.dataclass
class Entry:
    """One converted model in the benchmark."""

    name: str
    mode: str
    data: bytes = dataclasses.field(repr=False)
    macs: int | None = None
    params: int | None = None
    latency_ms: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)
    partitioning: xnnpack.Partitioning | None = None
    gpu: gpu.GpuCheck | None = None

    @property
    def key(self) -> str:
        return f"{self.name}/{self.mode}"

    @property
    def display_name(self) -> str:
        return DISPLAY_NAMES.get(self.name, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "display_name": self.display_name,
            "mode": self.mode,
            "macs": self.macs,
            "params": self.params,
            "tflite_bytes": len(self.data),
            "latency_ms": {str(k): v for k, v in sorted(self.latency_ms.items())},
            "xnnpack_partitions": self.partitioning.partitions if self.partitioning else None,
            "outside_xnnpack": (self.partitioning.undelegated_counts()
                                if self.partitioning else None),
            "gpu": self.gpu.as_dict() if self.gpu else None,
        }


def ratio(entries: Sequence[Entry], entry: Entry, model: str, mode: str,
          threads: int) -> float | None:
    """`entry`'s median latency over `model`/`mode`'s at `threads` (None if either is missing)."""
    reference = next((e for e in entries if (e.name, e.mode) == (model, mode)), None)
    if reference is None or threads not in reference.latency_ms or threads not in entry.latency_ms:
        return None
    return entry.latency_ms[threads]["median"] / reference.latency_ms[threads]["median"]


# --------------------------------------------------------------------------------------------
# Running


def convert_entries(
    models: Sequence[str], modes: Sequence[str], *, input_size: int, output_dir: Path,
    num_calibration: int, reuse_converted: bool, log: Callable[[str], None] = print,
) -> list[Entry]:
    """Converts (or reuses from `output_dir/models`) every model in every mode, with its cost."""
    from ghostnet_keras import profile

    models_dir = output_dir / "models"
    entries = []
    for name in models:
        paths = {mode: models_dir / f"{name}_{input_size}_{mode}.tflite" for mode in modes}
        cost_path = models_dir / f"{name}_{input_size}.cost.json"
        missing = [mode for mode in modes if not (reuse_converted and paths[mode].exists())]
        keras_model = None
        if missing:
            keras_model = build_model(name, input_size)
            start = time.perf_counter()
            converted = conversion.convert_modes(  # one export for every mode
                keras_model, missing, synthetic_images(num_calibration, input_size))
            write_atomically({paths[mode]: data for mode, data in converted.items()})
            log(f"converted {name} ({', '.join(missing)}) in {time.perf_counter() - start:.0f} s")
        if not (reuse_converted and cost_path.exists()):
            result = profile(keras_model or build_model(name, input_size))
            write_atomically({cost_path: json.dumps(
                {"macs": result.macs, "params": result.params}) + "\n"})
        cost = json.loads(cost_path.read_text())
        entries += [Entry(name, mode, paths[mode].read_bytes(), cost["macs"], cost["params"])
                    for mode in modes]
    return entries


def time_entries(entries: Sequence[Entry], threads: Sequence[int], *, warmup: int,
                 iterations: int, block: int, log: Callable[[str], None] = print) -> None:
    """XNNPACK partitioning (1 thread) and interleaved latency at each thread count."""
    for entry in entries:
        entry.partitioning = xnnpack.partitioning(entry.data)
    for count in threads:
        runners = {e.key: latency.make_interpreter(e.data, count).invoke for e in entries}
        log(f"timing {len(runners)} model(s) with {count} thread(s): {warmup} warm-up + "
            f"{iterations} timed invokes each, interleaved in blocks of {block}")
        samples = latency.time_interleaved(runners, warmup, iterations, block)
        for entry in entries:
            entry.latency_ms[count] = latency.summarize(samples[entry.key])


def check_entries_on_gpu(entries: Sequence[Entry], *, iterations: int) -> str:
    """Runs the fp32 (float32 arithmetic) and fp16 entries on the GPU; returns a status line."""
    for mode in GPU_MODES:
        group = [e for e in entries if e.mode == mode]
        if group:
            checks = gpu.check_all([e.data for e in group], enforce_f32=mode == "fp32",
                                   iterations=iterations)
            for entry, result in zip(group, checks, strict=True):
                entry.gpu = result
    checked = [e.gpu for e in entries if e.gpu]
    if not checked:
        return "GPU: no fp32/fp16 model to check"
    if all(c.adapter is None for c in checked):
        return f"GPU: no adapter ({checked[0].error}); run tools/install_software_gpu.sh"
    adapter = next(c for c in checked if c.adapter).adapter_label
    whole = sum(c.fully_delegated for c in checked)
    return f"GPU: LiteRT GPU accelerator on {adapter}: {whole}/{len(checked)} fully delegated"


# --------------------------------------------------------------------------------------------
# Report


def _render(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines)


def format_table(entries: Sequence[Entry], threads: Sequence[int]) -> str:
    """CPU table: cost, XNNPACK partitions, median (p90) per thread count and latency ratios."""
    base = DISPLAY_NAMES[BASELINE]
    header = ["model", "mode", "MACs (M)", "params (M)", "size (MB)", "XNNPACK partitions"]
    header += [f"{t} thr ms" for t in threads]
    header += [f"x {base} fp32 @{t}" for t in threads]
    header += [f"x own fp32 @{t}" for t in threads]
    rows = []
    for e in entries:
        outside = e.partitioning.undelegated_counts() if e.partitioning else {}
        partitions = str(e.partitioning.partitions) if e.partitioning else "-"
        if outside:
            partitions += " (outside: " + ", ".join(f"{n} {op}" for op, n in outside.items()) + ")"
        row = [e.display_name, e.mode, f"{e.macs / 1e6:.1f}" if e.macs else "-",
               f"{e.params / 1e6:.2f}" if e.params else "-", f"{len(e.data) / 2**20:.2f}",
               partitions]
        for t in threads:
            lat = e.latency_ms.get(t)
            row.append(f"{lat['median']:.2f} ({lat['p90']:.2f})" if lat else "-")
        for reference in (BASELINE, e.name):
            for t in threads:
                value = ratio(entries, e, reference, "fp32", t)
                row.append("-" if value is None else f"{value:.2f}")
        rows.append(row)
    return _render(header, rows)


def format_gpu_table(entries: Sequence[Entry]) -> str:
    """GPU table: fully delegated or the refused ops, |GPU - CPU| / max |CPU|, latency."""
    header = ["model", "mode", "GPU precision", "fully delegated", "|GPU-CPU| / max|CPU|",
              "top-1 = CPU", "GPU median ms"]
    rows = []
    for e in entries:
        check = e.gpu
        if check is None:
            if e.mode in conversion.INT8_MODES:
                rows.append([e.display_name, e.mode, "-", "not a GPU format", "-", "-", "-"])
            continue
        delegated = "yes" if check.fully_delegated else (
            "no: " + (", ".join(check.fallback_ops) or check.error or "?"))
        rows.append([
            e.display_name, e.mode, check.precision, delegated,
            "-" if check.relative_diff is None else f"{check.relative_diff:.1e}",
            "-" if check.top1_agrees is None else ("yes" if check.top1_agrees else "NO"),
            f"{check.latency_ms['median']:.1f}" if check.latency_ms else "-",
        ])
    return _render(header, rows)


def target_report(entries: Sequence[Entry], threads: int = 1) -> list[dict[str, Any]]:
    """Each target of `TARGETS` that this run measured: the ratio and whether it is met."""
    report = []
    for name, mode, reference, reference_mode, limit in TARGETS:
        entry = next((e for e in entries if (e.name, e.mode) == (name, mode)), None)
        value = ratio(entries, entry, reference, reference_mode, threads) if entry else None
        if value is not None:
            report.append({"model": name, "mode": mode, "reference": reference,
                           "reference_mode": reference_mode, "threads": threads,
                           "ratio": value, "target": limit, "met": bool(value <= limit)})
    return report


def format_targets(report: Sequence[dict[str, Any]]) -> str:
    return "\n".join(
        f"target {DISPLAY_NAMES[t['model']]} {t['mode']} / "
        f"{DISPLAY_NAMES[t['reference']]} {t['reference_mode']} ({t['threads']} thread): "
        f"{t['ratio']:.2f} <= {t['target']}: {'met' if t['met'] else 'MISSED'}"
        for t in report
    )


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
    write_atomically({path: buffer.getvalue()})
    return path


def _family(name: str) -> str:
    if name.startswith("ghostnet"):
        return "GhostNet"
    if name.startswith("mobilenetv3"):
        return "MobileNetV3"
    return "other"


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with the results (CPU model and SIMD flags matter)."""
    from importlib import metadata

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                           if line.startswith("model name"))
        flags_line = next(line for line in cpuinfo.splitlines() if line.startswith("flags"))
        wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16")
        info["cpu_flags"] = [f for f in wanted if f in flags_line.split()]
    except (OSError, StopIteration):  # not Linux
        info["cpu"] = platform.processor() or None
    for package in ("ai-edge-litert", "tensorflow", "keras"):
        try:
            info[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            info[package] = None
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        pass
    return info


# --------------------------------------------------------------------------------------------
# Driver


def run_benchmark(
    models: Sequence[str],
    modes: Sequence[str],
    threads: Sequence[int],
    *,
    output_dir: Path,
    input_size: int = 224,
    warmup: int = 10,
    iterations: int = 50,
    block: int = 5,
    num_calibration: int = 20,
    gpu_iterations: int = 5,
    reuse_converted: bool = False,
    extra: dict[str, tuple[str, bytes]] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[Entry], str]:
    """Converts, times on the CPU, checks on the GPU (`gpu_iterations=0`: no GPU check).

    `extra` adds prebuilt models, `{name: (mode, .tflite bytes)}`, timed with the others.
    """
    entries = convert_entries(models, modes, input_size=input_size, output_dir=output_dir,
                              num_calibration=num_calibration, reuse_converted=reuse_converted,
                              log=log)
    entries += [Entry(name, mode, data) for name, (mode, data) in (extra or {}).items()]
    time_entries(entries, threads, warmup=warmup, iterations=iterations, block=block, log=log)
    status = "GPU: not checked"
    if gpu_iterations:
        log("checking the fp32/fp16 models on LiteRT's GPU accelerator")
        status = check_entries_on_gpu(entries, iterations=gpu_iterations)
    return entries, status


def define_flags() -> None:
    flags.DEFINE_list("models", list(DEFAULT_MODELS), f"Models: {', '.join(DISPLAY_NAMES)}.")
    flags.DEFINE_list("modes", ["fp32", "fp16", "int8"], f"Modes: {', '.join(MODES)}.")
    flags.DEFINE_list("threads", ["1", "2", "4"], "XNNPACK thread counts (num_threads).")
    flags.DEFINE_integer("input_size", 224, "Input height and width.")
    flags.DEFINE_integer("warmup", 10, "Untimed invokes per model before timing.")
    flags.DEFINE_integer("iterations", 50, "Timed invokes per model and thread count.")
    flags.DEFINE_integer("block", 5, "Consecutive invokes of one model per interleaving round.")
    flags.DEFINE_integer("num_calibration", 20, "Synthetic calibration images for int8.")
    flags.DEFINE_integer("gpu_iterations", 5, "Timed GPU runs per fp32/fp16 model; 0: no GPU.")
    flags.DEFINE_string("output_dir", "runs/tflite_benchmark", "Where results are written.")
    flags.DEFINE_bool("reuse_converted", False, "Reuse .tflite files already in output_dir.")
    flags.DEFINE_bool("profile_ops", False, "Per-op timing of every model (1 thread).")


def main(argv: Sequence[str]) -> None:
    del argv
    values = flags.FLAGS
    unknown = [m for m in values.models if m not in DISPLAY_NAMES]
    bad_modes = [m for m in values.modes if m not in MODES]
    if unknown or bad_modes:
        raise app.UsageError(f"unknown model(s) {unknown} or mode(s) {bad_modes}; expected "
                             f"{list(DISPLAY_NAMES)} and {list(MODES)}.")
    threads = [int(t) for t in values.threads]
    output_dir = Path(values.output_dir)
    before = environment()
    entries, gpu_status = run_benchmark(
        values.models, values.modes, threads, output_dir=output_dir,
        input_size=values.input_size, warmup=values.warmup, iterations=values.iterations,
        block=values.block, num_calibration=values.num_calibration,
        gpu_iterations=values.gpu_iterations, reuse_converted=values.reuse_converted,
    )
    table, gpu_table = format_table(entries, threads), format_gpu_table(entries)
    targets = target_report(entries)
    print(f"\nLiteRT {before.get('ai-edge-litert')} XNNPACK, batch 1, {values.input_size}x"
          f"{values.input_size}, {values.iterations} timed invokes after {values.warmup} "
          f"warm-up; {before.get('cpu')} ({', '.join(before.get('cpu_flags', []))}); "
          f"load average at start {before.get('loadavg')}")
    print(table)
    print(f"\n{gpu_status}\n{gpu_table}\n{format_targets(targets)}")
    files: dict[Path, bytes | str] = {}
    if values.profile_ops:
        profiles = {}
        for entry in entries:
            rows = latency.op_profile(entry.data, 1)
            profiles[entry.key] = {"ops": rows, "by_type": latency.summarize_op_profile(rows)}
            print(f"\nper-op profile {entry.display_name} {entry.mode} (1 thread, sum of one-op "
                  f"medians {sum(r['median_ms'] for r in rows):.2f} ms):")
            for op, row in profiles[entry.key]["by_type"].items():
                print(f"  {op:<20} x{row['count']:<4} {row['ms']:7.2f} ms  {row['share']:6.1%}")
        files[output_dir / "op_profile.json"] = json.dumps(profiles, indent=2) + "\n"
    results = {
        "settings": {"models": values.models, "modes": values.modes, "threads": threads,
                     "input_size": values.input_size, "warmup": values.warmup,
                     "iterations": values.iterations, "block": values.block, "batch": 1},
        "environment": {**before, "loadavg_end": list(os.getloadavg())},
        "gpu": gpu_status,
        "baseline": BASELINE,
        "results": [e.to_dict() for e in entries],
        "targets": targets,
        "table": table,
        "gpu_table": gpu_table,
    }
    files[output_dir / "benchmark.json"] = json.dumps(results, indent=2) + "\n"
    write_atomically(files)
    plot = plot_latency_vs_macs(entries, threads, output_dir / "latency_vs_macs.png")
    print(f"wrote {', '.join(str(p) for p in files)} and {plot}")


def main_entry() -> None:
    """Console-script entry point (`ghostnet-tflite-benchmark`)."""
    define_flags()
    app.run(main)


if __name__ == "__main__":
    main_entry()
