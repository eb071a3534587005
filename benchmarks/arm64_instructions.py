"""ARM cost proxy: arm64 instructions executed per inference on emulated cores. NOT latency.

    python benchmarks/arm64_instructions.py                       # the zoo below, 224 px
    python benchmarks/arm64_instructions.py --models=ghostnet_100,mobilenetv3_large --modes=fp32

Each model is built with random weights and converted by the project's converter (the LiteRT
benchmark's `convert_entries`: fp32, and int8 calibrated on synthetic images with uint8 io;
converted files are reused from `--output_dir/models`), then run on LiteRT's arm64 build
(`tflite.arm64.run`, 1 thread) under qemu-aarch64 7.2 with an instruction-counting TCG plugin
(`tools/build_arm64_insn_counter.sh`, which it runs first; idempotent) on an emulated Cortex-A76
(dotprod) and Cortex-A53 (no dotprod), so XNNPACK picks the kernels a phone with that core would.
Instructions per inference = (count of a process doing 1 warm-up + N invokes - count of the same
process doing the warm-up alone) / N: start-up, imports, loading and the first invoke cancel.
Prints a Markdown table (millions of instructions, ratio to MobileNetV3-Large in the same column)
and writes `arm64_instructions.json` in `--output_dir`. Instruction counts ignore memory traffic,
caches, stalls and each instruction's cost: a proxy for relative compute, never a latency.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ghostnet_keras.atomic_write import write_atomically
from ghostnet_keras.synthetic_images import synthetic_images
from ghostnet_keras.tflite import arm64, xnnpack
from ghostnet_keras.tflite.benchmark import convert_entries
from ghostnet_keras.tflite.benchmark_models import BASELINE, DISPLAY_NAMES
from ghostnet_keras.tflite.benchmark_report import environment

MODELS = ("ghostnet_100", "ghostnet_130", "ghostnetv2_100", "ghostnetv3_100",
          "mobilenetv3_large", "mobilenetv3_small")
MODES = ("fp32", "int8")
CPUS = ("cortex-a76", "cortex-a53")  # the ones the counter has a /proc/cpuinfo for
BUILD_SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "build_arm64_insn_counter.sh"
# A single-threaded guest (one counter for all threads) and the same hashing in both runs.
GUEST_ENVIRONMENT = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def counter_dir() -> Path:
    """Where `tools/build_arm64_insn_counter.sh` builds the counter (same default as the script)."""
    if os.environ.get("GHOSTNET_ARM64_INSN_DIR"):
        return Path(os.environ["GHOSTNET_ARM64_INSN_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ghostnet_keras" / "arm64-insn"


def ensure_counter() -> str:
    """Sets up the arm64 runtime and builds the counter (both idempotent); qemu's version."""
    if arm64.is_native():
        raise SystemExit("arm64 host: the counter is a qemu plugin for x86 hosts; use perf here.")
    arm64.ensure_runtime()
    process = subprocess.run(["bash", str(BUILD_SCRIPT)], capture_output=True, text=True,
                             check=False)
    if process.returncode != 0:
        raise SystemExit(f"{BUILD_SCRIPT.name} failed:\n{process.stderr or process.stdout}")
    stamp = next(counter_dir().glob("installed-*")).read_text().splitlines()
    return stamp[0].removeprefix("qemu-user ")


def count_instructions(model: Path, inputs: np.ndarray, cpu: str, timeout: float
                       ) -> tuple[int, dict[str, Any]]:
    """arm64 instructions of a whole process that invokes `model` once per input."""
    with tempfile.TemporaryDirectory(prefix="ghostnet_insn_") as folder:
        outfile = Path(folder) / "count.txt"
        emulator = [str(counter_dir() / "count-insns"), cpu, str(outfile)]
        _, report = arm64.run(model, inputs, cpu, timeout=timeout, emulator=emulator,
                              environment=GUEST_ENVIRONMENT)
        if not outfile.exists():
            raise arm64.Arm64RunError(f"the counting plugin wrote no count for {model} ({cpu})")
        return int(outfile.read_text()), report


def measure(model: Path, cpu: str, invokes: int, input_size: int, timeout: float
            ) -> dict[str, Any]:
    """Instructions per inference: (warm-up + `invokes` runs - warm-up alone) / `invokes`."""
    images = np.stack(list(synthetic_images(1 + invokes, input_size, seed=1)()))
    inputs = arm64.model_inputs(model, images)
    warmup, _ = count_instructions(model, inputs[:1], cpu, timeout)
    total, report = count_instructions(model, inputs, cpu, timeout)
    if total <= warmup:
        raise arm64.Arm64RunError(f"{model} ({cpu}): {total} instructions with {invokes} more "
                                  f"invokes than the {warmup} of the warm-up alone")
    return {"per_inference": (total - warmup) / invokes, "process_warmup_only": warmup,
            "process_total": total, "invokes": invokes, "cpu_features": report["cpu_features"],
            "ai_edge_litert": report["ai_edge_litert"]}


def markdown_table(rows: list[dict[str, Any]], cpus: list[str], modes: list[str]) -> str:
    """Millions of instructions per inference, ratio to MobileNetV3-Large in the same column."""
    columns = [(cpu, mode) for cpu in cpus for mode in modes]
    cell = {(r["model"], r["cpu"], r["mode"]): r for r in rows}
    header = ["model", "MMACs"] + [f"{cpu} {mode}" for cpu, mode in columns]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for model in dict.fromkeys(r["model"] for r in rows):
        macs = next(r["macs"] for r in rows if r["model"] == model)
        values = [DISPLAY_NAMES.get(model, model), f"{macs / 1e6:.0f}" if macs else "-"]
        for cpu, mode in columns:
            row, base = cell.get((model, cpu, mode)), cell.get((BASELINE, cpu, mode))
            if row is None or "error" in row:
                values.append("failed" if row else "-")
                continue
            text = f"{row['per_inference'] / 1e6:.1f}"
            if base and "error" not in base:
                text += f" ({row['per_inference'] / base['per_inference']:.2f}x)"
            values.append(text)
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--modes", default=",".join(MODES), help="fp32, fp16, dynamic, int8")
    parser.add_argument("--cpus", default=",".join(CPUS), help="cortex-a76, cortex-a53")
    parser.add_argument("--input_size", type=int, default=224)
    parser.add_argument("--invokes", type=int, default=2, help="counted invokes after warm-up")
    parser.add_argument("--num_calibration", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per emulated run")
    parser.add_argument("--output_dir", type=Path, default=Path("runs/arm64_instructions"))
    args = parser.parse_args()
    models, modes, cpus = (args.models.split(","), args.modes.split(","), args.cpus.split(","))
    unknown = [cpu for cpu in cpus if cpu not in CPUS]
    if unknown or args.invokes < 1:
        parser.error(f"--cpus: choose from {', '.join(CPUS)}; --invokes >= 1")
    qemu = ensure_counter()
    entries = convert_entries(models, modes, input_size=args.input_size,
                              output_dir=args.output_dir, num_calibration=args.num_calibration,
                              reuse_converted=True)
    rows = []
    for entry in entries:
        path = args.output_dir / "models" / f"{entry.name}_{args.input_size}_{entry.mode}.tflite"
        plan = xnnpack.partitioning(entry.data)  # x86 LiteRT's plan of the same graph
        for cpu in cpus:
            row: dict[str, Any] = {"model": entry.name, "mode": entry.mode, "cpu": cpu,
                                   "macs": entry.macs, "xnnpack_partitions": plan.partitions,
                                   "outside_xnnpack": plan.undelegated_counts()}
            try:
                row.update(measure(path, cpu, args.invokes, args.input_size, args.timeout))
                print(f"{entry.key} {cpu}: {row['per_inference'] / 1e6:.2f} M instructions",
                      flush=True)
            except arm64.Arm64RunError as error:
                row["error"] = str(error)
                print(f"{entry.key} {cpu}: failed: {error}", flush=True)
            rows.append(row)
    table = markdown_table(rows, cpus, modes)
    result = {"what": "arm64 instructions per inference (emulated, qemu TCG plugin): a proxy, "
                      "not latency", "qemu_user": qemu, "input_size": args.input_size,
              "threads": 1, "host": environment(), "rows": rows, "table": table}
    write_atomically({args.output_dir / "arm64_instructions.json":
                      json.dumps(result, indent=2) + "\n"})
    print(f"\nqemu-user {qemu}, 1 thread, {args.input_size}x{args.input_size}; millions of arm64 "
          f"instructions per inference (ratio to {DISPLAY_NAMES[BASELINE]}); not latency\n")
    print(table)


if __name__ == "__main__":
    main()
