"""Test fixtures on disk: tiny fake ILSVRC-2012 tars that tensorflow-datasets prepares offline."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import tensorflow as tf

FAKE_SYNSETS = ("n01440764", "n01443537")


def write_fake_ilsvrc_tars(manual: Path, per_class: int = 3, validation: int = 3) -> None:
    """`ILSVRC2012_img_train.tar` (2 synsets) and `ILSVRC2012_img_val.tar` in `manual`."""

    def add(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
        member = tarfile.TarInfo(name)
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))

    def jpeg(seed: int) -> bytes:
        image = np.random.default_rng(seed).integers(0, 256, (40, 60, 3), dtype=np.uint8)
        return tf.io.encode_jpeg(image).numpy()

    manual.mkdir(parents=True)
    with tarfile.open(manual / "ILSVRC2012_img_train.tar", "w") as outer:
        for k, synset in enumerate(FAKE_SYNSETS):
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as inner:
                for i in range(per_class):
                    add(inner, f"{synset}_{i}.JPEG", jpeg(10 * k + i))
            add(outer, f"{synset}.tar", buffer.getvalue())
    with tarfile.open(manual / "ILSVRC2012_img_val.tar", "w") as tar:
        for i in range(1, validation + 1):
            add(tar, f"ILSVRC2012_val_{i:08d}.JPEG", jpeg(100 + i))
