"""oneDNN CPU kernels for the trainer's programs."""

from __future__ import annotations

import os
import sys

from absl import logging

ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn() -> None:
    """Turns TensorFlow's oneDNN CPU kernels on for this process, unless the user chose.

    TensorFlow enables oneDNN by default only on x86 CPUs with AVX-512 VNNI/BF16 or AMX; on
    others (AVX2-only CPUs) it runs its Eigen kernels, and a GhostNet training step on a 2-core
    AVX2 VM ran 1.8x to 2x slower (docs/benchmarks.md). TensorFlow reads
    `TF_ENABLE_ONEDNN_OPTS` once, when it is imported, so the programs
    (`ghostnet_keras.training.train`,
    `ghostnet_keras.training.evaluate`, `ghostnet_keras.training.main_job`) call this first. A
    value the user set wins
    (`TF_ENABLE_ONEDNN_OPTS=0` turns oneDNN off). GPUs and TPUs are unaffected.
    """
    if "tensorflow" in sys.modules:
        if ONEDNN_ENV not in os.environ:
            logging.warning("TensorFlow was imported before prefer_onednn(); oneDNN left as is.")
        return
    os.environ.setdefault(ONEDNN_ENV, "1")
