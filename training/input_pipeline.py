"""Input pipelines of the trainer: tensorflow-datasets + tf.data.

`build_dataset` yields `(images, labels)` batches: images float32 `[B, image_size, image_size, 3]`
RGB in [0, 255] (not normalised: the models normalise internally), labels int32 `[B]`.

Datasets (`ghostnet_keras.training.datasets.DATASETS`):

* `quickstart`: grayscale tiled to RGB, bilinear resize, light translation/zoom.
* `cifar10`: CIFAR augmentation (`ghostnet_keras.training.augment`).
* `imagenet2012`, `image_folder`: ImageNet-style preprocessing.

What each dataset is and where its data comes from: `ghostnet_keras.training.datasets`.

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
from collections.abc import Callable

import tensorflow as tf
import tensorflow_datasets as tfds

from ghostnet_keras.training import augment
from ghostnet_keras.training.datasets import (
    check_name,
    dataset_builder,
    image_folder_builder,
    split_sizes,
)

AUGMENTATIONS = ("default", "none")
IMAGENET_SHUFFLE_BUFFER = 10_000
"""Encoded JPEGs (~110 kB each): about 1 GB of host memory per input pipeline."""

_AUTOTUNE = tf.data.AUTOTUNE


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
    splits = split_sizes(builder)
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
    splits = split_sizes(builder)
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
    check_name(name)
    if augmentation not in AUGMENTATIONS:
        raise ValueError(f"Unknown augmentation {augmentation!r}: expected one of {AUGMENTATIONS}.")
    if int(image_size) <= 0 or int(batch_size) <= 0:
        raise ValueError(f"image_size and batch_size must be positive: {image_size}, {batch_size}")
    builder = dataset_builder(
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
    builder = image_folder_builder(folder)
    splits = split_sizes(builder)
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
