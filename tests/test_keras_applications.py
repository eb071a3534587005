"""keras' own applications test suite, run on the GhostNet constructors.

The tests are those of `keras/src/applications/applications_test.py` in the installed keras
wheel, generated when this module is imported, so they follow keras upgrades: the file's
`MODEL_LIST` is replaced by the one below and only `test_application_base` (it downloads
ImageNet weights and a photo of an elephant) is removed. Everything else runs as keras runs it
on its own applications: both data formats, custom input shapes and tensors, 1 and 4 input
channels, pooling, the classifier activation. The skips are keras' own.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
import types
from pathlib import Path

import pytest

import ghostnet_keras

pytestmark = pytest.mark.portable

# (constructor, channels of the last feature map, module with preprocess_input and
# decode_predictions): keras' MODEL_LIST format. Add new constructors here.
MODEL_LIST = [
    (ghostnet_keras.GhostNet050, 480, ghostnet_keras),
    (ghostnet_keras.GhostNet100, 960, ghostnet_keras),
    (ghostnet_keras.GhostNet130, 1248, ghostnet_keras),
]
KERAS_TEST_MODULE = "keras.src.applications.applications_test"
DESELECTED = "test_application_base"


def _keras_test_file() -> Path:
    spec = importlib.util.find_spec(KERAS_TEST_MODULE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"The installed keras has no {KERAS_TEST_MODULE} (the wheel's test file): cannot "
            "run keras' applications tests on GhostNet."
        )
    return Path(spec.origin)


def generate_keras_applications_test(model_list: list[tuple]) -> types.ModuleType:
    """keras' applications test module with `MODEL_LIST = model_list`, without the download test.

    The source is compiled with the wheel file's name and line numbers, so failures point at
    keras' own test code.
    """
    path = _keras_test_file()
    tree = ast.parse(path.read_text(), filename=str(path))
    assignments = [
        node for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "MODEL_LIST" for t in node.targets)
    ]
    if len(assignments) != 1:
        raise AssertionError(f"{path}: expected one `MODEL_LIST = ...`, found {len(assignments)}.")
    assignments[0].value = ast.copy_location(
        ast.Name(id="_GHOSTNET_MODEL_LIST", ctx=ast.Load()), assignments[0].value
    )
    module = types.ModuleType("ghostnet_keras_applications_test")
    module.__file__ = str(path)
    module._GHOSTNET_MODEL_LIST = list(model_list)
    sys.modules[module.__name__] = module
    exec(compile(tree, str(path), "exec"), module.__dict__)

    test_class = module.ApplicationsTest
    removed = [name for name in list(vars(test_class)) if name.startswith(DESELECTED)]
    if not removed:
        raise AssertionError(f"{path}: no {DESELECTED} tests to deselect; the file changed.")
    for name in removed:
        delattr(test_class, name)
    return module


ApplicationsTest = generate_keras_applications_test(MODEL_LIST).ApplicationsTest


def test_every_constructor_and_format_is_generated() -> None:
    names = [name for name in dir(ApplicationsTest) if name.startswith("test_")]
    for constructor, _, _ in MODEL_LIST:
        for data_format in ("channels_first", "channels_last"):
            suffix = f"_{constructor.__name__}_{data_format}"
            assert any(name.endswith(suffix) for name in names), suffix
    assert not any(name.startswith(DESELECTED) for name in names)
