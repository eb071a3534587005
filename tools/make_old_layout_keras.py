"""Writes tests/data/old_layout_*.keras and their expected outputs (tests/test_old_layout_files.py).

Run at commit 6711938 (before issue 23's regroup) from the repository root: the files' configs
name the old module paths. Rerunning it today writes files at the new layout, which is not the
point of the test; the committed files are the fixture.

Small models (width 0.1, no classifier head, 48x48 inputs) with weights on a 1/32 grid and
non-trivial BN statistics; Keras stores the archive uncompressed, so the members are rewritten
deflated (keras.saving reads any zip): about 200 KB for both.
"""

from __future__ import annotations

import os
import zipfile

import keras
import numpy as np

import ghostnet_keras as gk

DATA = "tests/data"


def _deflate(path: str) -> None:
    with zipfile.ZipFile(path) as source:
        members = [(info, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target:
        for info, data in members:
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, data)
    os.replace(path + ".tmp", path)


def main() -> None:
    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).integers(0, 256, (2, 48, 48, 3)).astype("uint8")
    shape = {"input_shape": (48, 48, 3), "include_top": False, "pooling": "avg"}
    outputs = {}
    for tag, build in (("ghostnet_v1_010", gk.GhostNet), ("ghostnetv2_010", gk.GhostNetV2)):
        model = build(width=0.1, **shape)
        for weight in model.weights:
            if "moving_variance" in weight.path:
                weight.assign(np.random.default_rng(1).uniform(0.5, 1.5, weight.shape))
            if "moving_mean" in weight.path:
                weight.assign(np.random.default_rng(2).normal(0, 0.1, weight.shape))
        for weight in model.weights:
            weight.assign(np.round(np.asarray(weight) * 32) / 32)
        path = f"{DATA}/old_layout_{tag}.keras"
        model.save(path)
        _deflate(path)
        outputs[tag] = np.asarray(model.predict(images.astype("float32"), verbose=0))
    np.savez_compressed(f"{DATA}/old_layout_expected.npz", images=images, **outputs)


if __name__ == "__main__":
    main()
