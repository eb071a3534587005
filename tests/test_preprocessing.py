"""Reference evaluation preprocessing (ghostnet_keras.preprocessing).

The geometry is checked against torchvision's arithmetic written out here (`int(size * long /
short)` for the long side, `int(round((side - crop) / 2.0))` for the crop offsets), the pixels
against PIL's bicubic resize when Pillow is installed.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ghostnet_keras import preprocessing
from ghostnet_keras.synthetic_images import synthetic_image
from tests.conftest import require_module

RESIZE = 256  # eval_resize_size(224)
CROP = 224


def _torchvision_resize_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """torchvision `_compute_resized_output_size` for `Resize(size)` (an int)."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


def _torchvision_crop_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    """torchvision `center_crop` offsets (top, left): its `int(round((h - crop) / 2.0))`."""
    return round((height - size) / 2.0), round((width - size) / 2.0)


def _coordinates(height: int, width: int) -> tf.Tensor:
    """int32 `[H, W, 2]`: channel 0 the row index, channel 1 the column index."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.int32)
    return tf.constant(np.stack([rows, cols], axis=-1))


# ----------------------------------------------------------------------------- sizes


def test_eval_resize_size_is_timm_floor() -> None:
    # timm: scale_size = math.floor(img_size / crop_pct); 0.875 is timm's DEFAULT_CROP_PCT.
    assert preprocessing.CROP_FRACTION == 0.875
    expected = {224: 256, 192: 219, 160: 182, 168: 192, 96: 109, 32: 36, 256: 292}
    assert {size: preprocessing.eval_resize_size(size) for size in expected} == expected


@pytest.mark.parametrize(
    "height, width, expected",
    [
        (300, 451, (256, 384)),  # 256 * 451 / 300 = 384.85: truncated, not rounded
        (451, 300, (384, 256)),
        (97, 131, (256, 345)),  # 345.73: upscaled
        (3, 7, (256, 597)),  # 597.33
        (300, 600, (256, 512)),  # exact
        (256, 256, (256, 256)),
        (300, 301, (256, 256)),  # 256.85
        (301, 300, (256, 256)),
    ],
)
def test_resize_shorter_side_long_side_is_truncated(
    height: int, width: int, expected: tuple[int, int]
) -> None:
    assert _torchvision_resize_shape(height, width, RESIZE) == expected
    image = tf.zeros([height, width, 3], tf.uint8)
    resized = preprocessing.resize_shorter_side(image, RESIZE)
    assert resized.dtype == tf.float32
    assert tuple(resized.shape) == (*expected, 3)


def test_resize_shorter_side_keeps_an_image_of_the_right_size() -> None:
    image = synthetic_image(256, 400, seed=0)
    resized = preprocessing.resize_shorter_side(tf.constant(image), RESIZE).numpy()
    np.testing.assert_array_equal(resized, image.astype(np.float32))


@pytest.mark.parametrize(
    "height, width, expected",
    [
        (256, 384, (16, 80)),
        (257, 385, (16, 80)),  # 16.5 and 80.5: halves go to the even neighbour
        (259, 387, (18, 82)),  # 17.5 and 81.5
        (451, 300, (114, 38)),  # 113.5 and 38
        (224, 225, (0, 0)),  # 0.5
        (224, 224, (0, 0)),
    ],
)
def test_center_crop_offsets_are_torchvision_rounding(
    height: int, width: int, expected: tuple[int, int]
) -> None:
    assert _torchvision_crop_offsets(height, width, CROP) == expected
    coordinates = _coordinates(height, width)
    crop = preprocessing.center_crop(coordinates, CROP)
    assert tuple(crop.shape) == (CROP, CROP, 2) and crop.dtype == tf.int32
    top, left = expected
    np.testing.assert_array_equal(crop, coordinates[top : top + CROP, left : left + CROP])
    # The same on a batch.
    batch = tf.stack([coordinates] * 2)
    np.testing.assert_array_equal(preprocessing.center_crop(batch, CROP), tf.stack([crop] * 2))


def test_center_crop_of_a_too_small_image_fails() -> None:
    with pytest.raises(tf.errors.InvalidArgumentError):
        preprocessing.center_crop(tf.zeros([223, 300, 3]), CROP)


def test_rank_is_checked() -> None:
    with pytest.raises(ValueError, match=r"\[H, W, C\]"):
        preprocessing.eval_preprocess(tf.zeros([300, 300]), CROP)


# ----------------------------------------------------------------------------- eval_preprocess


@pytest.mark.parametrize("height, width", [(300, 451), (451, 300), (97, 131), (257, 385)])
def test_eval_preprocess_is_resize_then_centre_crop(height: int, width: int) -> None:
    image = synthetic_image(height, width, seed=1)
    new_height, new_width = _torchvision_resize_shape(height, width, RESIZE)
    top, left = _torchvision_crop_offsets(new_height, new_width, CROP)
    expected = tf.image.resize(image, [new_height, new_width], method="bicubic", antialias=True)
    expected = tf.round(tf.clip_by_value(expected, 0.0, 255.0))
    expected = expected[top : top + CROP, left : left + CROP]
    out = preprocessing.eval_preprocess(tf.constant(image), CROP)
    assert out.dtype == tf.float32 and tuple(out.shape) == (CROP, CROP, 3)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("shape", [(300, 451, 3), (10, 7, 3), (500, 333, 3), (224, 224, 3)])
def test_eval_preprocess_values_are_integral_and_in_range(shape: tuple[int, int, int]) -> None:
    # A 0/255 checkerboard makes bicubic overshoot on both sides: clipped, then rounded.
    rows, cols = np.indices(shape[:2])
    image = np.where(((rows // 2 + cols // 2) % 2)[..., None] == 1, 255, 0)
    image = np.broadcast_to(image, shape).astype(np.uint8)
    out = preprocessing.eval_preprocess(tf.constant(image), CROP).numpy()
    assert out.shape == (CROP, CROP, 3) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 255.0
    np.testing.assert_array_equal(out, np.round(out))
    flat = preprocessing.eval_preprocess(tf.fill(shape, tf.constant(200, tf.uint8)), CROP)
    np.testing.assert_array_equal(flat, 200.0)


@pytest.mark.parametrize("height, width", [(300, 400), (400, 300)])
def test_eval_preprocess_keeps_a_centred_pattern_centred(height: int, width: int) -> None:
    # Background 40, a centred 150x150 square of 200: the shorter side 300 -> 256 makes it 128
    # pixels wide, still centred in the 224 crop (rows/cols 48..176).
    image = np.full((height, width, 3), 40, np.uint8)
    top, left = (height - 150) // 2, (width - 150) // 2
    image[top : top + 150, left : left + 150] = 200
    out = preprocessing.eval_preprocess(tf.constant(image), CROP).numpy()
    np.testing.assert_array_equal(out[52:172, 52:172], 200.0)
    for corner in (out[:44, :44], out[-44:, -44:], out[:44, -44:], out[-44:, :44]):
        np.testing.assert_array_equal(corner, 40.0)
    for profile in (out[112, :, 0], out[:, 112, 0]):
        inside = np.flatnonzero(profile > 120)
        assert abs(inside[0] - (223 - inside[-1])) <= 1 and 127 <= len(inside) <= 129


def test_eval_preprocess_keeps_the_centre_pixels() -> None:
    image = np.random.default_rng(3).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    image[96:160, 96:160] = (10, 120, 250)
    out = preprocessing.eval_preprocess(tf.constant(image), CROP).numpy()
    np.testing.assert_array_equal(out[112, 112], (10.0, 120.0, 250.0))
    # 256 -> 256: no resampling, exactly the central 224 window.
    np.testing.assert_array_equal(out, image[16:240, 16:240].astype(np.float32))


def test_eval_preprocess_uint8_float_and_batch_agree() -> None:
    image = synthetic_image(300, 451, seed=2)
    out = preprocessing.eval_preprocess(tf.constant(image), CROP).numpy()
    for dtype in (tf.float32, tf.float64, tf.int32):
        same = preprocessing.eval_preprocess(tf.cast(image, dtype), CROP)
        assert same.dtype == tf.float32
        np.testing.assert_array_equal(same, out)
    # Non-integral float input is rounded like the rest.
    shifted = preprocessing.eval_preprocess(tf.constant(image, tf.float32) + 0.25, CROP).numpy()
    np.testing.assert_array_equal(shifted, np.round(shifted))
    batched = preprocessing.eval_preprocess(tf.constant(np.stack([image, image[::-1]])), CROP)
    assert tuple(batched.shape) == (2, CROP, CROP, 3)
    np.testing.assert_array_equal(batched[0], out)
    np.testing.assert_array_equal(
        batched[1], preprocessing.eval_preprocess(tf.constant(image[::-1]), CROP)
    )


def test_eval_preprocess_in_a_graph_with_unknown_size() -> None:
    fn = tf.function(
        lambda image: preprocessing.eval_preprocess(image, CROP),
        input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)],
    )
    assert fn.get_concrete_function().structured_outputs.shape.as_list() == [CROP, CROP, 3]
    image = synthetic_image(97, 131, seed=4)
    np.testing.assert_array_equal(
        fn(tf.constant(image)), preprocessing.eval_preprocess(tf.constant(image), CROP)
    )
    dataset = tf.data.Dataset.from_tensors(tf.constant(image)).map(
        lambda x: preprocessing.eval_preprocess(x, 32)
    )
    assert dataset.element_spec.shape.as_list() == [32, 32, 3]


@pytest.mark.parametrize("height, width", [(300, 451), (500, 333), (97, 131), (256, 400)])
def test_eval_preprocess_matches_pil_and_torchvision(height: int, width: int) -> None:
    """timm's eval transform written out with PIL: `Resize(256, BICUBIC)` + `CenterCrop(224)`."""
    pil = require_module("PIL.Image", "compares with PIL's bicubic resize")
    image = synthetic_image(height, width, seed=5)
    new_height, new_width = _torchvision_resize_shape(height, width, RESIZE)
    resized = pil.fromarray(image).resize((new_width, new_height), pil.BICUBIC)
    top, left = _torchvision_crop_offsets(new_height, new_width, CROP)
    expected = np.asarray(resized, np.float32)[top : top + CROP, left : left + CROP]
    out = preprocessing.eval_preprocess(tf.constant(image), CROP).numpy()
    difference = np.abs(out - expected)
    # Same kernel, same geometry: PIL's fixed-point passes differ by a level or two at most
    # (a one-pixel shift would give a mean difference of ~10 on this image).
    assert difference.max() <= 2.0
    assert difference.mean() < 0.5
    assert np.mean(difference > 1.0) < 1e-3
