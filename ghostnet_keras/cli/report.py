"""The model report: builds GhostNet at each width, profiles it, checks it and times it.

    ghostnet-report --output_dir=runs/report

For each width it builds the model, counts parameters and MACs with the profiler next to the
paper's figures, runs a forward pass on a batch and measures inference images/s on this
machine, and, when the reference oracle (`../shared/reference`) is present, loads the reference
checkpoint and reports the max abs logit difference against the PyTorch outputs. It writes
`report.json` and `report.md` to `--output_dir` (each via a temporary file).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import app, flags, logging

from ghostnet_keras.atomic_write import write_atomically
from ghostnet_keras.cli import runner as cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the command-line flags (only when run as a program, so that importing
    this module never clashes with another module's flags)."""
    flags.DEFINE_string("output_dir", "runs/main", "Where report.json and report.md are written.")
    flags.DEFINE_list("widths", ["0.5", "1.0", "1.3"], "Width multipliers to report.")
    flags.DEFINE_integer("batch_size", 8, "Batch size of the timed forward passes.",
                         lower_bound=1)
    flags.DEFINE_integer("timed_batches", 5, "Number of timed batches (after one warm-up).",
                         lower_bound=1)
    flags.DEFINE_string(
        "reference_dir",
        str(Path(__file__).resolve().parents[2] / "shared" / "reference"),
        "Folder with the reference oracle (ghostnet_XXX.safetensors, ghostnet_XXX_expected.npz); "
        "skipped when absent.",
    )

# Paper (table 7): params (M), FLOPs (M), top-1 (%).
PAPER = {0.5: (2.6, 42, 66.2), 1.0: (5.2, 141, 73.9), 1.3: (7.3, 226, 75.7)}


def report_width(width: float, batch_size: int, timed_batches: int, reference_dir: Path) -> dict:
    """Builds, profiles, checks and times one width; returns its row of the report."""
    import ghostnet_keras

    model = ghostnet_keras.GhostNet(width=width, classifier_activation=None)
    stats = ghostnet_keras.profile(model)
    row: dict[str, Any] = {
        "width": width,
        "params": stats.params_without_bn_stats,
        "params_with_bn_stats": stats.params,
        "macs": stats.macs,
        "paper": dict(zip(("params_m", "flops_m", "top1"), PAPER.get(width, (None,) * 3),
                          strict=True)),
    }
    tag = f"{round(width * 100):03d}"
    checkpoint = reference_dir / f"ghostnet_{tag}.safetensors"
    if checkpoint.exists():
        from ghostnet_keras.weights.loading import load_ghostnet_weights

        load_ghostnet_weights(model, checkpoint)
        oracle = np.load(reference_dir / f"ghostnet_{tag}_expected.npz")
        logits = model.predict(oracle["images"], verbose=0)
        row["max_abs_logit_diff_vs_pytorch"] = float(np.abs(logits - oracle["logits"]).max())

    images = np.random.default_rng(0).uniform(0, 255, (batch_size, 224, 224, 3))
    images = images.astype("float32")
    model.predict_on_batch(images)  # warm-up: traces the graph
    start = time.perf_counter()
    for _ in range(timed_batches):
        model.predict_on_batch(images)
    elapsed = time.perf_counter() - start
    row["inference_images_per_s"] = batch_size * timed_batches / elapsed
    return row


def to_markdown(rows: list[dict]) -> str:
    lines = [
        "| width | params | paper params | MACs | paper FLOPs | max abs logit diff vs PyTorch "
        "| inference img/s (batch, this CPU) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        paper = row["paper"]
        diff = row.get("max_abs_logit_diff_vs_pytorch")
        lines.append(
            f"| {row['width']} | {row['params'] / 1e6:.3f}M | {paper['params_m'] or '-'}M "
            f"| {row['macs'] / 1e6:.2f}M | {paper['flops_m'] or '-'}M "
            f"| {'n/a' if diff is None else f'{diff:.2e}'} "
            f"| {row['inference_images_per_s']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def parse_widths(values: Sequence[str]) -> list[float]:
    """`--widths` as positive floats."""
    try:
        widths = [float(value) for value in values]
    except ValueError:
        widths = []
    if not widths or min(widths) <= 0:
        raise app.UsageError(f"--widths takes positive numbers; received {','.join(values)!r}.")
    return widths


def main(argv: Sequence[str]) -> None:
    del argv
    output_dir = Path(FLAGS.output_dir)
    reference_dir = Path(FLAGS.reference_dir)
    widths = parse_widths(FLAGS.widths)
    rows = []
    for width in widths:
        logging.info("GhostNet width %s: building, profiling, timing", width)
        rows.append(report_width(width, FLAGS.batch_size, FLAGS.timed_batches, reference_dir))
        print(json.dumps(rows[-1]), flush=True)
    markdown = to_markdown(rows)
    write_atomically({output_dir / "report.json": json.dumps(rows, indent=2) + "\n",
                      output_dir / "report.md": markdown})
    print(markdown)
    print(f"wrote {output_dir / 'report.json'} and {output_dir / 'report.md'}")


def main_entry() -> None:
    """Console-script entry point (`ghostnet-report`)."""
    cli.run(main, define_flags)


if __name__ == "__main__":
    main_entry()
