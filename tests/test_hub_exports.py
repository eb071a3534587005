"""The exports and a KerasHub `GhostNetImageClassifier`: each entry point names what to pass,
and `to_functional_model` gives the TFLite converter what it takes, outputs unchanged."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from .conftest import require_module

require_module("keras_hub", 'pip install "ghostnet-keras[hub]"')
require_module("ai_edge_litert", 'pip install "ghostnet-keras[tflite]"')

from ai_edge_litert.interpreter import Interpreter

from ghostnet_keras.hub import to_functional_model
from ghostnet_keras.hub.presets import build_classifier
from ghostnet_keras.preprocessing import normalize_input

SIZE = 48
HINT = r"ghostnet_keras\.hub\.to_functional_model"


@pytest.fixture(scope="module")
def classifier() -> keras.Model:
    return build_classifier(width=0.1, num_classes=4, image_size=(SIZE, SIZE))


def test_tflite_serving_and_onnx_exports_say_what_to_pass(classifier, tmp_path: Path) -> None:
    from ghostnet_keras.export.onnx import export_onnx
    from ghostnet_keras.export.serving import export_serving_model
    from ghostnet_keras.tflite.conversion import convert

    with pytest.raises(TypeError, match=HINT):
        convert(classifier, "fp32")
    with pytest.raises(TypeError, match=HINT):
        export_serving_model(classifier, tmp_path / "serving")
    with pytest.raises(TypeError, match=HINT):
        export_onnx(classifier, tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


def test_tflite_of_the_functional_model_computes_what_the_classifier_does(classifier) -> None:
    from ghostnet_keras.tflite.conversion import convert

    interpreter = Interpreter(model_content=convert(to_functional_model(classifier), "fp32"))
    interpreter.allocate_tensors()
    (input_detail,) = interpreter.get_input_details()
    (output_detail,) = interpreter.get_output_details()
    assert tuple(input_detail["shape"]) == (1, SIZE, SIZE, 3)
    image = np.random.default_rng(0).uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32)
    interpreter.set_tensor(input_detail["index"], image)
    interpreter.invoke()
    expected = keras.ops.convert_to_numpy(classifier(normalize_input(image, "channels_last")))
    np.testing.assert_allclose(interpreter.get_tensor(output_detail["index"]), expected,
                               rtol=0, atol=1e-4)
