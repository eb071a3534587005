"""GhostNetV2/V3 through the TF Serving export: the SavedModel computes what timm computes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ghostnet_keras import GhostNetV2, GhostNetV3
from ghostnet_keras.export import serving

from .conftest import TEST_DATA_DIR


@pytest.mark.slow
# V2 brings the DFC gate (AveragePooling + NearestResize) into the serving graph; V3 in deploy
# form is plain convolutions, which the v1 serving tests cover (kept out for CI time).
@pytest.mark.parametrize("family", ["v2"])
def test_serving_export_keeps_timm_outputs(family: str, tmp_path: Path) -> None:
    if family == "v2":
        model = GhostNetV2(width=0.1, classes=10, input_shape=(None, None, 3),
                           weights=TEST_DATA_DIR / "ghostnetv2_010.safetensors")
        oracle = np.load(TEST_DATA_DIR / "ghostnetv2_010_expected.npz")
        logits = oracle["nonsquare/logits"]
    else:  # the deploy form is what one serves
        model = GhostNetV3(width=0.1, classes=10, input_shape=(None, None, 3),
                           reparameterized=True, weights=TEST_DATA_DIR / "ghostnetv3_010.pth")
        oracle = np.load(TEST_DATA_DIR / "ghostnetv3_010_expected.npz")
        logits = oracle["deploy/nonsquare/logits"]
    export = serving.export_serving_model(model, tmp_path / "ghostnet", version=1,
                                          warmup=False)
    loaded = tf.saved_model.load(str(export))
    images = tf.constant(oracle["nonsquare/images"].astype(np.float32))  # 200 x 264: odd maps
    result = loaded.signatures[serving.IMAGES_SIGNATURE](images=images)
    expected = tf.nn.softmax(logits).numpy()
    np.testing.assert_allclose(result["probabilities"].numpy(), expected, rtol=0, atol=1e-5)
    assert result["top_k_indices"].numpy()[0, 0] == expected.argmax()
