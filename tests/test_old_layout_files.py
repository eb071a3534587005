"""`.keras` files saved before the package was regrouped (issue 23) load and predict the same.

`tests/data/old_layout_*.keras` were written by `tools/make_old_layout_keras.py` at commit
6711938, when the custom layers lived in `ghostnet_keras.nearest_resize` (GhostNetV2's
`NearestResize`) and the models in `ghostnet_keras.ghostnet`: their configs name those old
modules. Keras finds the layers by their registered name (`ghostnet_keras>NearestResize`), which
the move kept. (rewrite_imports: skip: this file names the old modules on purpose.)
"""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from tests.conftest import REPO_DIR

DATA = REPO_DIR / "tests" / "data"


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(DATA / "old_layout_expected.npz") as archive:
        return dict(archive)


@pytest.mark.parametrize("tag", ["ghostnet_v1_010", "ghostnetv2_010"])
def test_keras_file_saved_at_the_old_layout_loads_and_predicts_the_same(
    tag: str, expected: dict[str, np.ndarray]
) -> None:
    from ghostnet_keras.weights.keras_files import load_keras_file

    path = DATA / f"old_layout_{tag}.keras"
    model = load_keras_file(path)
    outputs = model.predict(expected["images"].astype("float32"), verbose=0)
    np.testing.assert_allclose(outputs, expected[tag], rtol=1e-5, atol=1e-5)
    assert float(np.std(expected[tag])) > 0.01  # a real feature vector, not a constant


def test_old_layout_file_does_name_the_old_modules() -> None:
    """The fixture is what it claims: a V2 config that names the pre-regroup layer module."""
    with zipfile.ZipFile(DATA / "old_layout_ghostnetv2_010.keras") as archive:
        config = json.loads(archive.read("config.json"))
    custom = [layer for layer in config["config"]["layers"]
              if layer["class_name"] == "NearestResize"]
    assert custom
    assert {layer["module"] for layer in custom} == {"ghostnet_keras.nearest_resize"}
    assert {layer["registered_name"] for layer in custom} == {"ghostnet_keras>NearestResize"}
