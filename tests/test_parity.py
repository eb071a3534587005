"""Parity with the reference PyTorch GhostNet from the compact oracle in tests/data.

Every clone has this oracle (tools/make_test_oracles.py wrote it with timm): the logits, the
pre-logits and the output of each of timm's ten `blocks`, at a square and an odd non-square
size. No TensorFlow here: the same tests run on every Keras backend.
"""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

from ghostnet_keras import GhostNet
from ghostnet_keras.weights.strict import WeightsError

from .conftest import (
    COMPACT_CLASSES,
    COMPACT_EXPECTED,
    COMPACT_SIZES,
    COMPACT_WEIGHTS,
    COMPACT_WIDTH,
)

pytestmark = pytest.mark.portable

PARITY_ATOL = 1e-4
SIZE_IDS = [f"{h}x{w}" for h, w in COMPACT_SIZES]


@pytest.fixture(scope="module")
def oracle() -> dict[str, np.ndarray]:
    with np.load(COMPACT_EXPECTED) as data:
        return dict(data)


def _stage_outputs(model: keras.Model) -> list[str]:
    """The layer ending each of timm's `blocks[0..8]` (its last `_add`), then `top_relu`."""
    names = [layer.name for layer in model.layers]
    ends = [[n for n in names if re.fullmatch(rf"block{i}[a-z]_add", n)][-1] for i in range(9)]
    return [*ends, "top_relu"]


@pytest.fixture(scope="module")
def probe() -> keras.Model:
    model = GhostNet(width=COMPACT_WIDTH, classes=COMPACT_CLASSES, weights=COMPACT_WEIGHTS,
                     input_shape=(None, None, 3), classifier_activation=None)
    outputs = [model.get_layer(n).output for n in _stage_outputs(model)]
    return keras.Model(model.inputs, [*outputs, model.get_layer("flatten").output, model.output])


@pytest.mark.parametrize("size", SIZE_IDS)
def test_every_stage_pre_logits_and_logits_match_timm(probe, oracle, size: str) -> None:
    images = oracle[f"images_{size}"].astype("float32")
    *stages, pre_logits, logits = probe.predict(images, verbose=0)
    for index, features in enumerate(stages):
        expected = oracle[f"blocks.{index}_{size}"]
        assert features.shape == expected.shape, f"blocks.{index}"
        np.testing.assert_allclose(features, expected, rtol=0, atol=PARITY_ATOL,
                                   err_msg=f"blocks.{index} at {size}")
    np.testing.assert_allclose(pre_logits, oracle[f"pre_logits_{size}"], rtol=0, atol=PARITY_ATOL)
    np.testing.assert_allclose(logits, oracle[f"logits_{size}"], rtol=0, atol=PARITY_ATOL)
    assert (logits.argmax(1) == oracle[f"logits_{size}"].argmax(1)).all()


def test_backbone_loads_the_checkpoint_without_its_head(oracle) -> None:
    backbone = GhostNet(width=COMPACT_WIDTH, include_top=False, weights=COMPACT_WEIGHTS,
                        input_shape=(None, None, 3))
    for size in SIZE_IDS:
        np.testing.assert_allclose(
            backbone.predict(oracle[f"images_{size}"].astype("float32"), verbose=0),
            oracle[f"blocks.9_{size}"], rtol=0, atol=PARITY_ATOL, err_msg=size,
        )


def test_wrong_width_or_classes_is_an_error() -> None:
    with pytest.raises(WeightsError, match="has shape"):
        GhostNet(width=0.5, classes=COMPACT_CLASSES, weights=COMPACT_WEIGHTS)
    with pytest.raises(WeightsError, match=r"classifier\.weight"):
        GhostNet(width=COMPACT_WIDTH, weights=COMPACT_WEIGHTS)
