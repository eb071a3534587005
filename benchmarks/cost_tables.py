"""Reproduces the paper's cost tables (params, MACs) with the profiler and prints them.

    python benchmarks/cost_tables.py            # markdown tables, as in docs/plug_and_play.md
    python benchmarks/cost_tables.py --json     # the same rows as JSON

Rows: ResNet-50 vs Ghost-ResNet-50 (s=2, s=4) at 224 x 224 (paper table 5), the CIFAR-10
VGG-16 / ResNet-56 and their Ghost versions (table 3), and the Ghost-VGG-16 ablation over s and
d (tables 1 and 2). Each row shows ours, the paper's, and the ratio.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import keras
from absl import app, flags

import ghostnet_keras
from ghostnet_keras.models import cifar
from ghostnet_keras.models.ghost_resnet import GhostResNet50, resnet50_v15

FLAGS = flags.FLAGS
flags.DEFINE_boolean("json", False, "Print JSON rows instead of markdown tables.")

# (table, row label, builder, paper params (M), paper FLOPs (M))
Row = tuple[str, str, Callable[[], keras.Model], float | None, float | None]
# The official Ghost-ResNet-50 code's own count: conv and dense weights, no BN (reference doc).
OFFICIAL_CODE_PARAMS_M = {"Ghost-ResNet-50 (s=2)": 13.90, "Ghost-ResNet-50 (s=4)": 8.10}
ROWS: list[Row] = [
    ("imagenet", "ResNet-50 (v1.5, official layout)", resnet50_v15, 25.6, 4100),
    ("imagenet", "keras.applications ResNet50 (v1)",
     lambda: keras.applications.ResNet50(weights=None), 25.6, 4100),
    ("imagenet", "Ghost-ResNet-50 (s=2)", lambda: GhostResNet50(ratio=2), 13.0, 2200),
    ("imagenet", "Ghost-ResNet-50 (s=4)", lambda: GhostResNet50(ratio=4), 6.5, 1200),
    ("imagenet", "ghostify(keras ResNet50), s=2",
     lambda: ghostnet_keras.ghostify(keras.applications.ResNet50(weights=None)), None, None),
    ("cifar", "VGG-16", cifar.vgg16, 15.0, 313),
    ("cifar", "Ghost-VGG-16 (s=2, d=3)", cifar.ghost_vgg16, 7.7, 158),
    ("cifar", "ResNet-56", cifar.resnet56, 0.85, 125),
    ("cifar", "Ghost-ResNet-56 (s=2, d=3)", cifar.ghost_resnet56, 0.43, 63),
    *[("ablation_s", f"Ghost-VGG-16 s={s}, d=3", lambda s=s: cifar.ghost_vgg16(ratio=s),
       params, flops)
      for s, params, flops in ((2, 7.7, 158), (3, 5.2, 107), (4, 4.0, 80), (5, 3.3, 65))],
    *[("ablation_d", f"Ghost-VGG-16 s=2, d={d}", lambda d=d: cifar.ghost_vgg16(dw_size=d),
       None, None)
      for d in (1, 3, 5, 7)],
]


def measure() -> list[dict]:
    """Builds every model and profiles it."""
    results = []
    for table, label, build, paper_params, paper_flops in ROWS:
        stats = ghostnet_keras.profile(build())
        # Layers with MACs are the conv and dense layers: their weights, without any BN.
        conv_dense = sum(row.params for row in stats.layers if row.macs)
        results.append({
            "table": table, "model": label,
            "params_m": stats.params_without_bn_stats / 1e6, "macs_m": stats.macs / 1e6,
            "conv_dense_params_m": conv_dense / 1e6,
            "official_code_params_m": OFFICIAL_CODE_PARAMS_M.get(label),
            "paper_params_m": paper_params, "paper_flops_m": paper_flops,
        })
        keras.backend.clear_session()
    return results


def _ratio(ours: float, paper: float | None) -> str:
    return "-" if paper is None else f"{ours / paper:.3f}"


def to_markdown(rows: list[dict]) -> str:
    out = []
    for table in dict.fromkeys(row["table"] for row in rows):
        out += [f"### {table}", "",
                "| model | params | paper | ratio | conv+dense params | official code | MACs "
                "| paper FLOPs | ratio |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in (r for r in rows if r["table"] == table):
            official = row["official_code_params_m"]
            out.append(
                f"| {row['model']} | {row['params_m']:.3f}M | {row['paper_params_m'] or '-'}M "
                f"| {_ratio(row['params_m'], row['paper_params_m'])} "
                f"| {row['conv_dense_params_m']:.3f}M | {f'{official}M' if official else '-'} "
                f"| {row['macs_m']:.1f}M "
                f"| {row['paper_flops_m'] or '-'}M "
                f"| {_ratio(row['macs_m'], row['paper_flops_m'])} |"
            )
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str]) -> None:
    del argv
    rows = measure()
    print(json.dumps(rows, indent=2) if FLAGS.json else to_markdown(rows))


if __name__ == "__main__":
    app.run(main)
