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
(`op_profile.json`; each op run alone as a one-op model). The models and result rows are in
`tflite.benchmark_models`, the tables and the plot in `tflite.benchmark_report`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from absl import app, flags

from ghostnet_keras.atomic_write import write_atomically
from ghostnet_keras.cli import runner as cli
from ghostnet_keras.synthetic_images import synthetic_images
from ghostnet_keras.tflite import conversion, gpu, latency, xnnpack
from ghostnet_keras.tflite.benchmark_models import (
    BASELINE,
    DEFAULT_MODELS,
    DISPLAY_NAMES,
    GPU_MODES,
    MODES,
    Entry,
    build_zoo_model,
)
from ghostnet_keras.tflite.benchmark_report import (
    environment,
    format_gpu_table,
    format_table,
    format_targets,
    plot_latency_vs_macs,
    target_report,
)


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
            keras_model = build_zoo_model(name, input_size)
            start = time.perf_counter()
            converted = conversion.convert_modes(  # one export for every mode
                keras_model, missing, synthetic_images(num_calibration, input_size))
            write_atomically({paths[mode]: data for mode, data in converted.items()})
            log(f"converted {name} ({', '.join(missing)}) in {time.perf_counter() - start:.0f} s")
        if not (reuse_converted and cost_path.exists()):
            result = profile(keras_model or build_zoo_model(name, input_size))
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
    flags.DEFINE_integer("input_size", 224, "Input height and width.", lower_bound=32)
    flags.DEFINE_integer("warmup", 10, "Untimed invokes per model before timing.", lower_bound=0)
    flags.DEFINE_integer("iterations", 50, "Timed invokes per model and thread count.",
                         lower_bound=1)
    flags.DEFINE_integer("block", 5, "Consecutive invokes of one model per interleaving round.",
                         lower_bound=1)
    flags.DEFINE_integer("num_calibration", 20, "Synthetic calibration images for int8.",
                         lower_bound=1)
    flags.DEFINE_integer("gpu_iterations", 5, "Timed GPU runs per fp32/fp16 model; 0: no GPU.",
                         lower_bound=0)
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
    try:
        threads = [int(t) for t in values.threads]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise app.UsageError(f"--threads takes positive integers; received "
                             f"{','.join(values.threads)!r}.")
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
    cli.run(main, define_flags)


if __name__ == "__main__":
    main_entry()
