"""The input contract, stated once: what a model takes and how images are prepared for it.

Every model of the package takes RGB images with values in [0, 255] (any real dtype), in the
layout of `keras.config.image_data_format()`; with `include_preprocessing=True` (the default)
the first layer (`normalization_layer`) applies the reference normalisation
`(x / 255 - mean) / std` with the ImageNet mean and std per channel (other channel counts: the
averaged constants of `channel_mean_std`). So `preprocess_input` is a pass-through, as in
keras.applications' EfficientNet; `normalize_input` does the normalisation in NumPy for a model
built with `include_preprocessing=False`. Training-time augmentation is
`ghostnet_keras.training.augment`.

Reference ImageNet evaluation transform (TensorFlow only, imported on first use): resize the
shorter side, then centre crop, as timm's `transforms_imagenet_eval` for `ghostnet_100`:

    Resize(floor(224 / 0.875) = 256, interpolation=bicubic)  # on a PIL image
    CenterCrop(224)

used by the TF Serving export (`ghostnet_keras.export.serving`) and by the training / evaluation
input pipeline (`ghostnet_keras.training.augment`). It works in graph mode
(`tf.data.Dataset.map`, `tf.function`, SavedModel signatures).

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
from types import ModuleType
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from ghostnet_keras.backends import require_tensorflow
from ghostnet_keras.data_format import resolve_data_format

if TYPE_CHECKING:
    import tensorflow as tf

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Inputs with other than 3 channels (grey, RGBA, multispectral; no pretrained weights) are
# normalised channel by channel with the mean of the RGB means and the mean of the RGB stds.
CHANNEL_MEAN = sum(IMAGENET_MEAN) / 3  # 0.449
CHANNEL_STD = sum(IMAGENET_STD) / 3  # 0.226

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


def _tensorflow() -> ModuleType:
    require_tensorflow("ghostnet_keras.preprocessing's evaluation transform (tf.image)",
                       backend=False)
    import tensorflow as tf

    return tf


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
    tf = _tensorflow()
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
    tf = _tensorflow()
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


def channel_mean_std(channels: int = 3) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of the normalisation of a `channels`-channel input in [0, 1].

    3 channels: RGB, the ImageNet mean and std. Any other count (1 for grey, 4 for RGBA, ...):
    `CHANNEL_MEAN` (0.449) and `CHANNEL_STD` (0.226), the averages of the RGB values, for every
    channel.
    """
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"`channels` must be a positive integer; received {channels!r}.")
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return (CHANNEL_MEAN,) * channels, (CHANNEL_STD,) * channels


def normalization_constants(channels: int = 3) -> tuple[list[float], list[float]]:
    """Scale and offset that map values in [0, 255] to the reference normalisation.

    `x * scale + offset == (x / 255 - mean) / std`, per channel, with `channel_mean_std`.
    """
    means, stds = channel_mean_std(channels)
    scale = [1.0 / (255.0 * s) for s in stds]
    offset = [-m / s for m, s in zip(means, stds, strict=True)]
    return scale, offset


def preprocess_input(x: Any, data_format: str | None = None) -> Any:
    """A placeholder method for backward compatibility.

    The preprocessing logic has been included in the GhostNet model
    (`include_preprocessing=True`, the default), so this function is a pass-through: GhostNet
    models take RGB inputs with values in [0, 255]. For a model built with
    `include_preprocessing=False`, normalise with `normalize_input` instead.

    Args:
        x: a floating point `numpy.array` or a tensor.
        data_format: optional data format of the image tensor/array. `None` means the global
            setting `keras.config.image_data_format()` is used (unless you changed it, it uses
            `"channels_last"`). Defaults to `None`.

    Returns:
        Unchanged `numpy.array` or tensor.
    """
    del data_format
    return x


def normalize_input(x: Any, data_format: str | None = None) -> np.ndarray:
    """Applies the reference normalisation `(x / 255 - mean) / std`, per channel.

    What a model built with `include_preprocessing=True` does inside; use it to feed a model
    built with `include_preprocessing=False`. RGB (3 channels) uses the ImageNet mean/std,
    any other channel count the averaged constants of `channel_mean_std`.

    Args:
        x: array-like of values in [0, 255], a batch `(N, H, W, C)` or one image `(H, W, C)`
            channels last (`(N, C, H, W)` / `(C, H, W)` channels first).
        data_format: `"channels_last"` or `"channels_first"`; `None` (default) uses
            `keras.config.image_data_format()`.

    Returns:
        A float32 `numpy.array` of the same shape.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.ndim not in (3, 4):
        raise ValueError(
            f"normalize_input expects an image or a batch of images (3 or 4 dims), got shape "
            f"{x.shape}."
        )
    first = resolve_data_format(data_format) == "channels_first"
    axis = x.ndim - 3 if first else -1
    means, stds = channel_mean_std(x.shape[axis])
    shape = (-1, 1, 1) if first else (-1,)
    mean = np.asarray(means, np.float32).reshape(shape)
    std = np.asarray(stds, np.float32).reshape(shape)
    return (x / 255.0 - mean) / std


def normalization_layer(
    layers: ModuleType = keras.layers, channels: int = 3, data_format: str | None = None
) -> Any:
    """The reference ImageNet normalisation as one `Rescaling` layer (values in [0, 255]).

    3 channels: RGB with the ImageNet mean/std; any other count: every channel with the mean
    of the three means and of the three stds (`normalization_constants`). The
    constants are shaped to broadcast on the channel axis of `data_format`.
    """
    scale, offset = normalization_constants(channels)
    if resolve_data_format(data_format, layers) == "channels_first":
        scale, offset = [[[v]] for v in scale], [[[v]] for v in offset]
    return layers.Rescaling(scale=scale, offset=offset, name="preprocessing")
