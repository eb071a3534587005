"""Max abs logit difference to the reference oracle on the active Keras backend, per width.

    KERAS_BACKEND=jax .venv-jax/bin/python benchmarks/backend_parity.py [--reference_dir=...]

Loads each `ghostnet_XXX.safetensors` of the oracle (`../shared/reference` beside the
checkout by default) into GhostNet on the active backend, runs the oracle's two 224 x 224
images (`predict`) and prints one Markdown row: the backend and the max abs logit difference for
widths 0.5, 1.0 and 1.3 (the README's backend table).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras
import numpy as np

from ghostnet_keras import GhostNet

WIDTHS = {0.5: "050", 1.0: "100", 1.3: "130"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference_dir",
                        default=str(Path(__file__).resolve().parents[2] / "shared" / "reference"))
    args = parser.parse_args()
    reference = Path(args.reference_dir)
    cells = []
    for width, tag in WIDTHS.items():
        oracle = np.load(reference / f"ghostnet_{tag}_expected.npz")
        model = GhostNet(width=width, weights=reference / f"ghostnet_{tag}.safetensors",
                         classifier_activation=None)
        logits = model.predict(oracle["images"], verbose=0)
        cells.append(f"{np.max(np.abs(logits - oracle['logits'])):.1e}")
    print(f"| {keras.backend.backend()} {keras.__version__} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
