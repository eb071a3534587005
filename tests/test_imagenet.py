"""preprocess_input / decode_predictions / the shipped class index."""

from __future__ import annotations

import numpy as np
import pytest

from ghostnet_keras import decode_predictions, normalize_input
from ghostnet_keras.imagenet import class_index


def test_class_index_is_the_standard_order() -> None:
    classes = class_index()
    assert len(classes) == 1000
    assert classes[0] == ("n01440764", "tench")
    assert classes[999][0] == "n15075141"
    assert [wnid for wnid, _ in classes] == sorted(wnid for wnid, _ in classes)


def test_decode_predictions_top_k() -> None:
    preds = np.zeros((2, 1000), "float32")
    preds[0, [1, 2, 3]] = [0.1, 0.7, 0.2]
    preds[1, 999] = 1.0
    decoded = decode_predictions(preds, top=3)
    assert [entry[0] for entry in decoded[0]] == ["n01484850", "n01491361", "n01443537"]
    assert decoded[0][0][2] == pytest.approx(0.7)
    assert decoded[1][0][:2] == ("n15075141", "toilet_tissue")


@pytest.mark.parametrize("shape", [(1000,), (2, 10), (2, 1000, 1)])
def test_decode_predictions_rejects_bad_shapes(shape: tuple) -> None:
    with pytest.raises(ValueError, match="shape"):
        decode_predictions(np.zeros(shape))


def test_normalize_input_values_and_errors() -> None:
    x = np.full((1, 2, 2, 3), 255.0)
    expected = (1.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(normalize_input(x)[0, 0, 0], expected, rtol=1e-6)
    first = normalize_input(x.transpose(0, 3, 1, 2), data_format="channels_first")
    np.testing.assert_allclose(first[0, :, 0, 0], expected, rtol=1e-6)
    # Other channel counts: the averaged constants on every channel.
    grey = (1.0 - 0.449) / 0.226
    np.testing.assert_allclose(normalize_input(np.full((2, 2, 4), 255.0)), grey, rtol=1e-6)
    np.testing.assert_allclose(
        normalize_input(np.full((1, 1, 5, 5), 255.0), data_format="channels_first"), grey,
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="3 or 4 dims"):
        normalize_input(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="data_format"):
        normalize_input(x, data_format="nhwc")
