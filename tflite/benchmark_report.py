"""The benchmark's report: CPU and GPU tables, targets, the latency-vs-MACs plot, the machine."""

from __future__ import annotations

import io
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ghostnet_keras.atomic_write import write_atomically
from ghostnet_keras.tflite import conversion
from ghostnet_keras.tflite.benchmark_models import (
    BASELINE,
    DISPLAY_NAMES,
    TARGETS,
    Entry,
    ratio,
)


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
