"""Per-image preprocessing and augmentation ops: pure functions of one image tensor.

Every function works in graph mode (inside `tf.data.Dataset.map` or a `tf.function`) and is
deterministic given its inputs: randomness comes only from stateless random ops keyed by an
explicit `seed`, a `[2]` int32/int64 tensor (`ghostnet_keras.training.input_pipeline`
derives one per example from the
pipeline seed and the example index).

Outputs are float32 RGB with values in [0, 255] (NOT normalised: the models normalise internally).

Recipes (see docs/ghostnet-reference.md, section 7):

* ImageNet training (`imagenet_train_preprocess`): random-resized-crop sampled with
  `tf.image.stateless_sample_distorted_bounding_box` (area 0.08-1, aspect 3/4-4/3, centre crop
  fallback) and decoded with `tf.image.decode_and_crop_jpeg` (only the crop is decoded), resized to
  `image_size`, random horizontal flip, brightness/contrast/saturation jitter 0.4, clip [0, 255].
* ImageNet evaluation (`imagenet_eval_preprocess`): decode, then
  `ghostnet_keras.preprocessing.eval_preprocess`, the reference transform shared with the
  serving export: resize the shorter side to `floor(image_size / 0.875)` (256 for 224) with
  antialiased bicubic (rounded and clipped to [0, 255], like PIL), centre crop `image_size`.
* CIFAR training (`cifar_train_preprocess`, He et al.): zero pad 4, random 32x32 crop, horizontal
  flip, then resize if `image_size != 32`.
* Digits (`digits_train_preprocess`): light random translation/zoom (random crop of side 26-32 of
  the image zero-padded by 2, resized back), no flips; grayscale tiled to RGB.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import tensorflow as tf

from ghostnet_keras.preprocessing import CROP_FRACTION, MAX_PIXEL_VALUE, eval_preprocess

_BILINEAR = "bilinear"


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def split_seed(seed: Any, num: int) -> list[tf.Tensor]:
    """Splits a stateless `[2]` seed into `num` independent `[2]` seeds."""
    seeds = tf.random.experimental.stateless_split(_as_seed(seed), num=num)
    return list(tf.unstack(seeds, num=num))


def _as_seed(seed: Any) -> tf.Tensor:
    seed = tf.convert_to_tensor(seed)
    if seed.dtype not in (tf.int32, tf.int64):
        seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.zeros_like(seed)])
    return seed


def clip_pixels(image: tf.Tensor) -> tf.Tensor:
    """Clips float pixel values to [0, 255]."""
    return tf.clip_by_value(image, 0.0, MAX_PIXEL_VALUE)


def to_rgb_float(image: tf.Tensor) -> tf.Tensor:
    """Casts to float32 and makes a statically 1-channel image RGB (4 channels: drops alpha)."""
    image = tf.convert_to_tensor(image)
    channels = image.shape[-1]
    if channels == 1:
        image = tf.image.grayscale_to_rgb(image)
    elif channels == 4:
        image = image[..., :3]
    return tf.cast(image, tf.float32)


def decode_image(image_bytes: tf.Tensor) -> tf.Tensor:
    """Decodes encoded JPEG/PNG/GIF/BMP bytes to a uint8 `[H, W, 3]` RGB image."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def imagenet_eval_preprocess(image_bytes: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decodes encoded image bytes and applies the reference evaluation preprocessing.

    `ghostnet_keras.preprocessing.eval_preprocess`: shorter side resized to
    `floor(image_size / 0.875)` (bicubic, antialiased, rounded), centre crop `image_size`.
    """
    image = eval_preprocess(decode_image(image_bytes), image_size)
    return tf.ensure_shape(image, [image_size, image_size, 3])


# ---------------------------------------------------------------------------------------------
# ImageNet training
# ---------------------------------------------------------------------------------------------


def sample_crop_window(
    image_shape: tf.Tensor,
    seed: Any,
    *,
    area_range: Sequence[float] = (0.08, 1.0),
    aspect_ratio_range: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
    max_attempts: int = 10,
    fallback_crop_fraction: float = CROP_FRACTION,
) -> tf.Tensor:
    """Samples a random-resized-crop window `[offset_y, offset_x, height, width]` (int32).

    Uses `tf.image.stateless_sample_distorted_bounding_box` with the whole image as the object
    box. When no window satisfying the constraints is found within `max_attempts` (the op then
    returns the whole image), falls back to a central square of side
    `fallback_crop_fraction * min(H, W)`, as in the TensorFlow reference ImageNet pipelines.

    Args:
        image_shape: int32 `[3]` tensor `[height, width, channels]`.
        seed: stateless seed, shape `[2]`.
        area_range: range of the crop area as a fraction of the image area.
        aspect_ratio_range: range of the crop width / height.
        max_attempts: sampling attempts before the fallback.
        fallback_crop_fraction: side of the fallback square crop relative to the shorter side.
    """
    image_shape = tf.cast(image_shape, tf.int32)
    bbox = tf.constant([0.0, 0.0, 1.0, 1.0], dtype=tf.float32, shape=[1, 1, 4])
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        image_shape,
        bounding_boxes=bbox,
        seed=_as_seed(seed),
        min_object_covered=float(area_range[0]),
        aspect_ratio_range=[float(a) for a in aspect_ratio_range],
        area_range=[float(a) for a in area_range],
        max_attempts=max_attempts,
        use_image_if_no_bounding_boxes=True,
    )
    height, width = image_shape[0], image_shape[1]
    sampled = tf.stack([begin[0], begin[1], size[0], size[1]])
    side = tf.maximum(
        tf.cast(fallback_crop_fraction * tf.cast(tf.minimum(height, width), tf.float32), tf.int32),
        1,
    )
    fallback = tf.stack([(height - side) // 2, (width - side) // 2, side, side])
    failed = tf.logical_and(tf.equal(size[0], height), tf.equal(size[1], width))
    return tf.where(failed, fallback, sampled)


def decode_and_random_crop(
    image_bytes: tf.Tensor,
    image_size: int,
    seed: Any,
    *,
    area_range: Sequence[float] = (0.08, 1.0),
    aspect_ratio_range: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
    max_attempts: int = 10,
    method: str = _BILINEAR,
) -> tf.Tensor:
    """Random-resized-crop straight from encoded bytes: float32 `[image_size, image_size, 3]`.

    JPEG: reads the shape from the header (`tf.image.extract_jpeg_shape`), samples the window
    (`sample_crop_window`) and decodes only that window (`tf.image.decode_and_crop_jpeg`).
    Other formats (PNG, GIF, BMP: e.g. in an image folder) are decoded whole, then cropped.
    The crop is resized to `image_size` and clipped to [0, 255].
    """
    image_bytes = tf.convert_to_tensor(image_bytes, tf.string)
    window_kwargs = dict(
        area_range=area_range, aspect_ratio_range=aspect_ratio_range, max_attempts=max_attempts
    )

    def _jpeg() -> tf.Tensor:
        shape = tf.image.extract_jpeg_shape(image_bytes)
        window = sample_crop_window(shape, seed, **window_kwargs)
        return tf.image.decode_and_crop_jpeg(image_bytes, window, channels=3)

    def _other() -> tf.Tensor:
        image = decode_image(image_bytes)
        window = sample_crop_window(tf.shape(image), seed, **window_kwargs)
        return tf.slice(image, [window[0], window[1], 0], [window[2], window[3], 3])

    crop = tf.cond(tf.io.is_jpeg(image_bytes), _jpeg, _other)
    crop.set_shape([None, None, 3])
    image = tf.image.resize(tf.cast(crop, tf.float32), [image_size, image_size], method=method)
    return clip_pixels(image)


def random_flip(image: tf.Tensor, seed: Any) -> tf.Tensor:
    """Random horizontal flip (probability 0.5)."""
    return tf.image.stateless_random_flip_left_right(image, _as_seed(seed))


def _random_factor(strength: float, seed: tf.Tensor) -> tf.Tensor:
    return tf.random.stateless_uniform(
        [], seed, minval=max(0.0, 1.0 - strength), maxval=1.0 + strength, dtype=tf.float32
    )


def color_jitter(
    image: tf.Tensor,
    seed: Any,
    *,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
) -> tf.Tensor:
    """Brightness, contrast and saturation jitter with PyTorch `ColorJitter` semantics.

    Each factor is drawn uniformly from `[max(0, 1 - s), 1 + s]`; applied in that fixed order, each
    one clipped to [0, 255] like PIL does:
    brightness `x * f`; contrast blends with the mean grayscale value of the image; saturation
    blends with the per-pixel grayscale image.

    Args:
        image: float `[H, W, 3]` RGB in [0, 255].
        seed: stateless seed, shape `[2]`.
        brightness: brightness strength (0 disables).
        contrast: contrast strength (0 disables).
        saturation: saturation strength (0 disables).

    Returns:
        float32 `[H, W, 3]` in [0, 255].
    """
    image = tf.cast(image, tf.float32)
    seed_b, seed_c, seed_s = split_seed(seed, 3)
    if brightness:
        image = clip_pixels(image * _random_factor(brightness, seed_b))
    if contrast:
        mean = tf.reduce_mean(tf.image.rgb_to_grayscale(image))
        image = clip_pixels(mean + (image - mean) * _random_factor(contrast, seed_c))
    if saturation:
        gray = tf.image.rgb_to_grayscale(image)
        image = clip_pixels(gray + (image - gray) * _random_factor(saturation, seed_s))
    return image


def imagenet_train_preprocess(
    image_bytes: tf.Tensor,
    image_size: int,
    seed: Any,
    *,
    jitter: float = 0.4,
) -> tf.Tensor:
    """ImageNet training augmentation from encoded bytes (paper recipe).

    `decode_and_random_crop` -> random horizontal flip -> `color_jitter(jitter)` -> clip.
    """
    seed_crop, seed_flip, seed_jitter = split_seed(seed, 3)
    image = decode_and_random_crop(image_bytes, image_size, seed_crop)
    image = random_flip(image, seed_flip)
    if jitter:
        image = color_jitter(
            image, seed_jitter, brightness=jitter, contrast=jitter, saturation=jitter
        )
    return tf.ensure_shape(clip_pixels(image), [image_size, image_size, 3])


# ---------------------------------------------------------------------------------------------
# CIFAR
# ---------------------------------------------------------------------------------------------


def _resize_if_needed(image: tf.Tensor, image_size: int, method: str = _BILINEAR) -> tf.Tensor:
    image = tf.cast(image, tf.float32)
    if tuple(image.shape[-3:-1]) != (image_size, image_size):
        image = tf.image.resize(image, [image_size, image_size], method=method)
    return image


def pad_and_random_crop(image: tf.Tensor, seed: Any, padding: int = 4) -> tf.Tensor:
    """Zero-pads `padding` pixels on each side and takes a random crop of the original size."""
    shape = tf.shape(image)
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    crop = tf.image.stateless_random_crop(padded, shape, seed=_as_seed(seed))
    crop.set_shape(image.shape)
    return crop


def cifar_train_preprocess(
    image: tf.Tensor, image_size: int, seed: Any, *, padding: int = 4
) -> tf.Tensor:
    """He et al. CIFAR augmentation: pad 4, random 32x32 crop, flip; resize if needed.

    Args:
        image: uint8 `[32, 32, 3]`.
        image_size: output size (bilinear resize when not 32).
        seed: stateless seed, shape `[2]`.
        padding: zero padding on each side before the random crop.

    Returns:
        float32 `[image_size, image_size, 3]` in [0, 255].
    """
    seed_crop, seed_flip = split_seed(seed, 2)
    image = pad_and_random_crop(image, seed_crop, padding)
    image = random_flip(image, seed_flip)
    image = clip_pixels(_resize_if_needed(to_rgb_float(image), image_size))
    return tf.ensure_shape(image, [image_size, image_size, 3])


def cifar_eval_preprocess(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """CIFAR evaluation: the image itself (bilinear resize when `image_size != 32`)."""
    image = clip_pixels(_resize_if_needed(to_rgb_float(image), image_size))
    return tf.ensure_shape(image, [image_size, image_size, 3])


# ---------------------------------------------------------------------------------------------
# Digits (quickstart)
# ---------------------------------------------------------------------------------------------


def digits_train_preprocess(
    image: tf.Tensor,
    image_size: int,
    seed: Any,
    *,
    padding: int = 2,
    min_crop_margin: int = 2,
) -> tf.Tensor:
    """Light digit augmentation: random translation/zoom, no flips; grayscale tiled to RGB.

    The `[H, W, 1]` image is zero-padded by `padding` (black, the MNIST background) and a random
    square window of side uniform in `[H - min_crop_margin, H + 2 * padding]` (26-32 for 28x28)
    is cropped at a random position and resized (bilinear) to `image_size`: shifts of up to
    about 4 pixels and scales 0.875-1.08.

    Returns:
        float32 `[image_size, image_size, 3]` in [0, 255].
    """
    image = tf.convert_to_tensor(image)
    channels = image.shape[-1]
    seed_size, seed_crop = split_seed(seed, 2)
    height = tf.shape(image)[0]
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    side = tf.random.stateless_uniform(
        [],
        seed_size,
        minval=height - min_crop_margin,
        maxval=height + 2 * padding + 1,
        dtype=tf.int32,
    )
    crop = tf.image.stateless_random_crop(
        padded, tf.stack([side, side, tf.shape(image)[-1]]), seed=seed_crop
    )
    crop.set_shape([None, None, channels])
    resized = tf.image.resize(tf.cast(crop, tf.float32), [image_size, image_size])
    image = clip_pixels(to_rgb_float(resized))
    return tf.ensure_shape(image, [image_size, image_size, 3])


def digits_eval_preprocess(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """Digits evaluation: bilinear resize to `image_size`, grayscale tiled to RGB."""
    image = clip_pixels(to_rgb_float(_resize_if_needed(image, image_size)))
    return tf.ensure_shape(image, [image_size, image_size, 3])
