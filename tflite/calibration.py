"""Representative (calibration) images for int8 conversion: from a folder, or synthetic.

Every source yields float32 RGB images in [0, 255] at the model's input height and width (what
GhostNet takes: it normalises inside the model), square or not.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

RepresentativeData = Callable[[], Iterable[np.ndarray]]


class RepresentativeDataError(ValueError):
    """Representative (calibration) data is missing or unusable."""


def synthetic_images(
    num_images: int = 100, size: int | tuple[int, int] = 224, seed: int = 0
) -> RepresentativeData:
    """Deterministic "real-ish" RGB images in [0, 255]: smooth colour fields with edges.

    Each image is a sum of a few random low-frequency colour gratings, a couple of flat shapes
    and a little noise, stretched to a random contrast range (every fourth image to the full
    0-255 range, so that a calibrated int8 input covers it), so activations cover ranges
    similar to photographs (unlike uniform noise). Good for tests and smoke runs; calibrate real
    deployments on real images (`folder_images`).

    Args:
        num_images: how many images each call yields.
        size: output height and width (an int for square images).
        seed: random seed; the same seed gives the same images.

    Returns:
        A callable yielding float32 arrays of shape `(H, W, 3)`.
    """
    height, width = (size, size) if isinstance(size, int) else size

    def generate() -> Iterator[np.ndarray]:
        rng = np.random.default_rng(seed)
        yy, xx = np.meshgrid(
            np.linspace(0.0, 1.0, height, dtype=np.float32),
            np.linspace(0.0, 1.0, width, dtype=np.float32),
            indexing="ij",
        )
        for index in range(num_images):
            image = np.zeros((height, width, 3), np.float32)
            for _ in range(4):
                fx, fy = rng.uniform(-4.0, 4.0, size=2)
                phase = rng.uniform(0.0, 2.0 * math.pi)
                grating = np.cos(2.0 * math.pi * (fx * xx + fy * yy) + phase)
                image += grating[..., None] * rng.uniform(-1.0, 1.0, size=3).astype(np.float32)
            for _ in range(2):
                cy, cx = rng.uniform(0.0, 1.0, size=2)
                ry, rx = rng.uniform(0.1, 0.4, size=2)
                mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 < 1.0
                image[mask] += rng.uniform(-1.5, 1.5, size=3).astype(np.float32)
            image += rng.normal(0.0, 0.05, size=image.shape).astype(np.float32)
            low, high = image.min(), image.max()
            lo, hi = rng.uniform(0.0, 60.0), rng.uniform(190.0, 255.0)
            if index % 4 == 0:  # full range, so that calibrated input ranges span 0-255
                lo, hi = 0.0, 255.0
            image = (image - low) / max(float(high - low), 1e-6) * (hi - lo) + lo
            yield np.clip(image, 0.0, 255.0).astype(np.float32)

    return generate


def eval_crop(image: Any, size: tuple[int, int]) -> np.ndarray:
    """The reference evaluation resize + centre crop, for any input height and width.

    Square sizes use `ghostnet_keras.preprocessing.eval_preprocess` (shorter side to
    `size / 0.875`, bicubic, centre crop). For a non-square `(height, width)` the image is
    resized (bicubic, antialiased, aspect kept) so that it covers `(height / 0.875,
    width / 0.875)`, then centre-cropped to `(height, width)`: the same framing per side.
    """
    import tensorflow as tf

    from ghostnet_keras.preprocessing import CROP_FRACTION, eval_preprocess

    height, width = size
    if height == width:
        return np.asarray(eval_preprocess(image, height), dtype=np.float32)
    image = tf.convert_to_tensor(image)
    source = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.reduce_max(tf.constant([height, width], tf.float32) / CROP_FRACTION / source)
    covered = tf.cast(tf.math.ceil(source * scale), tf.int32)
    resized = tf.image.resize(tf.cast(image, tf.float32), covered, method="bicubic",
                              antialias=True)
    resized = tf.clip_by_value(tf.round(resized), 0.0, 255.0)
    top = (covered[0] - height) // 2
    left = (covered[1] - width) // 2
    return np.asarray(resized[top:top + height, left:left + width], dtype=np.float32)


def folder_images(
    folder: str | os.PathLike, num_images: int = 100, size: int | tuple[int, int] = 224
) -> RepresentativeData:
    """Images from a folder (searched recursively), eval-preprocessed, RGB in [0, 255].

    Files are taken in sorted order (the first `num_images`); each is decoded to RGB, its
    shorter side resized to `size / 0.875` (bicubic) and centre-cropped to `size` (`eval_crop`;
    `size` may be `(height, width)` for a non-square model).

    Raises:
        RepresentativeDataError: when the folder has no image.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RepresentativeDataError(f"Representative image folder {folder} does not exist.")
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )[:num_images]
    if not files:
        raise RepresentativeDataError(
            f"No image ({', '.join(IMAGE_EXTENSIONS)}) found under {folder}."
        )
    height, width = (size, size) if isinstance(size, int) else size

    def generate() -> Iterator[np.ndarray]:
        import tensorflow as tf

        for path in files:
            image = tf.io.decode_image(
                tf.io.read_file(str(path)), channels=3, expand_animations=False
            )
            yield eval_crop(image, (height, width))

    return generate


def representative_source(
    spec: str, num_images: int = 100, size: int | tuple[int, int] = 224
) -> RepresentativeData:
    """`random` (synthetic images) or an image folder path -> representative data."""
    if spec == "random":
        return synthetic_images(num_images, size)
    return folder_images(spec, num_images, size)
