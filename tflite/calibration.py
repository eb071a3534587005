"""Representative (calibration) images for int8 conversion: from a folder, or synthetic.

Every source yields float32 RGB images in [0, 255] at the model's input height and width (what
GhostNet takes: it normalises inside the model), square or not.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ghostnet_keras.synthetic_images import synthetic_images

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

RepresentativeData = Callable[[], Iterable[np.ndarray]]


class RepresentativeDataError(ValueError):
    """Representative (calibration) data is missing or unusable."""


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
