"""Reference ImageNet evaluation preprocessing: resize the shorter side, then centre crop.

The one implementation of the evaluation transform of the PyTorch reference, timm's
`transforms_imagenet_eval` for `ghostnet_100`:

    Resize(floor(224 / 0.875) = 256, interpolation=bicubic)  # on a PIL image
    CenterCrop(224)

used by the TF Serving export (`ghostnet_keras.export.serving`) and by the training / evaluation
input pipeline (`ghostnet_keras.training.augment`). It works in graph mode (`tf.data.Dataset.map`,
`tf.function`,
SavedModel signatures).

The geometry follows torchvision to the pixel:

* `Resize(size)`: the shorter side becomes `size`, the longer one `int(size * long / short)`
  (truncated), e.g. 300x451 -> 256x384.
* `CenterCrop(size)`: offsets `int(round((side - size) / 2.0))` (Python's `round`: halves go to
  the even neighbour), e.g. 384 -> 224 starts at column 80.

The pixels follow PIL's bicubic resize: `tf.image.resize(..., method="bicubic",
antialias=True)` (the same Keys kernel, a = -0.5, widened when downscaling), then rounded and
clipped to [0, 255] like PIL's uint8 output; values may differ from PIL's by a level or two
(PIL resamples in fixed point, rounding between its two passes).
"""

from __future__ import annotations

import math

from ghostnet_keras.backends import require_tensorflow

require_tensorflow("ghostnet_keras.preprocessing (tf.image / tf.data)", backend=False)

import tensorflow as tf  # noqa: E402

CROP_FRACTION = 0.875
"""Fraction of the resized shorter side kept by the evaluation centre crop (224 of 256)."""

MAX_PIXEL_VALUE = 255.0
"""Largest pixel value: images are RGB in [0, 255] (the models normalise internally)."""


def eval_resize_size(image_size: int) -> int:
    """Shorter side before the evaluation centre crop: `floor(image_size / 0.875)`.

    As timm's `scale_size = math.floor(img_size / crop_pct)`: 224 -> 256, 192 -> 219,
    160 -> 182, 32 -> 36.

    Args:
        image_size: side of the square centre crop.

    Returns:
        The size the shorter side is resized to.
    """
    return math.floor(image_size / CROP_FRACTION)


def _check_rank(image: tf.Tensor) -> None:
    rank = image.shape.rank
    if rank is not None and rank not in (3, 4):
        raise ValueError(
            f"Expected an image [H, W, C] or a batch [B, H, W, C]; got shape {image.shape}."
        )


def resize_shorter_side(image: tf.Tensor, size: int) -> tf.Tensor:
    """Resizes so that the shorter side is `size`, keeping the aspect ratio, like PIL + torchvision.

    The longer side becomes `int(size * long / short)` (torchvision's `Resize(size)`); a square
    image becomes `size x size`. Bicubic with antialiasing, rounded and clipped to [0, 255] (PIL's
    bicubic resize of a uint8 image). An image whose shorter side already is `size` is returned
    unchanged (its values rounded).

    Args:
        image: `[H, W, C]` image, or a `[B, H, W, C]` batch of same-sized images; uint8, or a
            real dtype with values in [0, 255].
        size: the new shorter side.

    Returns:
        float32 `[H', W', C]` (or batched) with integral values in [0, 255].
    """
    image = tf.convert_to_tensor(image)
    _check_rank(image)
    shape = tf.shape(image)
    height, width = shape[-3], shape[-2]
    short = tf.cast(tf.minimum(height, width), tf.float64)
    long = tf.cast(tf.maximum(height, width), tf.float64)
    # Exact in float64 (like Python's int / int), then truncated like `int(...)`.
    new_long = tf.cast(size * long / short, tf.int32)
    landscape = width > height
    new_height = tf.where(landscape, size, new_long)
    new_width = tf.where(landscape, new_long, size)
    resized = tf.image.resize(
        tf.cast(image, tf.float32),
        tf.stack([new_height, new_width]),
        method="bicubic",
        antialias=True,
    )
    return tf.round(tf.clip_by_value(resized, 0.0, MAX_PIXEL_VALUE))


def center_crop(image: tf.Tensor, size: int) -> tf.Tensor:
    """Crops the central `size x size` window, with torchvision's `CenterCrop` offsets.

    The top and left offsets are `round((side - size) / 2)`, halves rounded to even like
    Python's `round` (torchvision: `int(round((h - size) / 2.0))`).

    Args:
        image: `[H, W, C]` image or `[B, H, W, C]` batch, H and W at least `size` (torchvision
            pads smaller images; this raises `InvalidArgumentError`).
        size: side of the crop.

    Returns:
        `[size, size, C]` (or batched), the dtype of `image`.
    """
    image = tf.convert_to_tensor(image)
    _check_rank(image)
    shape = tf.shape(image)

    def offset(side: tf.Tensor) -> tf.Tensor:
        return tf.cast(tf.round(tf.cast(side - size, tf.float64) / 2.0), tf.int32)

    return tf.image.crop_to_bounding_box(image, offset(shape[-3]), offset(shape[-2]), size, size)


def eval_preprocess(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """Reference ImageNet evaluation preprocessing of a decoded image.

    `resize_shorter_side(image, eval_resize_size(image_size))` (256 for 224; bicubic,
    antialiased, rounded and clipped to [0, 255]), then `center_crop(..., image_size)`: timm's
    `Resize(256, bicubic)` + `CenterCrop(224)` on a PIL image.

    Args:
        image: `[H, W, C]` image (RGB: C = 3), or a `[B, H, W, C]` batch of same-sized images;
            uint8, or a real dtype with values in [0, 255].
        image_size: output height and width.

    Returns:
        float32 `[image_size, image_size, C]` (or batched), integral values in [0, 255]; not
        normalised (the models take RGB in [0, 255]).
    """
    resized = resize_shorter_side(image, eval_resize_size(image_size))
    return center_crop(resized, image_size)
