"""NearestResize: PyTorch's legacy `F.interpolate(mode="nearest")` at any size, any backend."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from ghostnet_keras.layers.nearest_resize import NearestResize, gather_resize

pytestmark = pytest.mark.portable

# Source rows picked by torch 2.14.1 `F.interpolate(x, size=(out, 1), mode="nearest")` for an
# input of `in` rows, (in, out) -> indices. (3, 7): the stride-32 gate at 224 x 224; (6, 13) and
# (3, 9): odd maps, where the 2x2 pool floors (a 2x repetition with the first row once more).
TORCH_INDICES = {
    (3, 7): [0, 0, 0, 1, 1, 2, 2],
    (6, 13): [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
    (3, 9): [0, 0, 0, 1, 1, 1, 2, 2, 2],
    (4, 8): [0, 0, 1, 1, 2, 2, 3, 3],
    (2, 5): [0, 0, 0, 1, 1],
    (1, 3): [0, 0, 0],
    (4, 9): [0, 0, 0, 1, 1, 2, 2, 3, 3],
}
CASES = [((3, 7), (4, 9)), ((6, 13), (2, 5)), ((3, 9), (3, 7)), ((4, 8), (1, 3))]


def _images(height: int, width: int, channels: int = 3) -> np.ndarray:
    return np.arange(2 * height * width * channels, dtype=np.float32).reshape(
        2, height, width, channels
    )


@pytest.mark.parametrize(("rows", "cols"), CASES)
def test_matches_pytorch_legacy_nearest(rows, cols) -> None:
    x = _images(rows[0], cols[0])
    reference = np.zeros((2, rows[1], cols[1], 1), np.float32)
    expected = x[:, TORCH_INDICES[rows]][:, :, TORCH_INDICES[cols]]
    layer_out = keras.ops.convert_to_numpy(NearestResize()([x, reference]))
    np.testing.assert_array_equal(layer_out, expected)
    # The keras.ops formulation (used on JAX/torch) is checked on every backend too.
    ops_out = keras.ops.convert_to_numpy(
        gather_resize(keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(reference))
    )
    np.testing.assert_array_equal(ops_out, expected)


def test_dynamic_sizes_and_serialization(tmp_path: Path) -> None:
    gate = keras.Input((None, None, 3))
    reference = keras.Input((None, None, 5))
    out = NearestResize(name="resize")([gate, reference])
    model = keras.Model([gate, reference], out)
    assert model.output.shape == (None, None, None, 3)
    model.save(tmp_path / "resize.keras")
    restored = keras.saving.load_model(tmp_path / "resize.keras")
    assert isinstance(restored.get_layer("resize"), NearestResize)
    for rows, cols in CASES[:2]:
        x = _images(rows[0], cols[0])
        ref = np.zeros((2, rows[1], cols[1], 5), np.float32)
        expected = x[:, TORCH_INDICES[rows]][:, :, TORCH_INDICES[cols]]
        np.testing.assert_array_equal(restored.predict([x, ref], verbose=0), expected)


def test_static_output_shape() -> None:
    out = NearestResize()([keras.Input((3, 4, 8)), keras.Input((7, 9, 16))])
    assert out.shape == (None, 7, 9, 8)
