"""The trainer's programs turn TensorFlow's oneDNN CPU kernels on unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import sys
from training.onednn import prefer_onednn
if sys.argv[1] == "late":
    import tensorflow
if sys.argv[1] != "never":
    prefer_onednn()
from tensorflow.python.util import _pywrap_util_port
print(_pywrap_util_port.IsMklEnabled())
"""


def _onednn_enabled(env_value: str | None, when: str = "first") -> bool:
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    result = subprocess.run([sys.executable, "-c", PROBE, when], capture_output=True, text=True,
                            env=env, timeout=300, check=True)
    return {"True": True, "False": False}[result.stdout.strip().splitlines()[-1]]


def test_programs_import_no_tensorflow_before_choosing_kernels() -> None:
    code = ("import sys, training.train, training.pipeline, training.evaluate; "
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(("env_value", "when", "expected"), [
    (None, "first", True),      # the programs' default
    ("0", "first", False),      # the user's choice wins
    ("1", "first", True),
])
def test_prefer_onednn(env_value: str | None, when: str, expected: bool) -> None:
    assert _onednn_enabled(env_value, when) is expected


def test_prefer_onednn_after_tensorflow_is_imported_changes_nothing() -> None:
    tensorflow_default = _onednn_enabled(None, "never")  # TensorFlow's choice for this CPU
    assert _onednn_enabled(None, "late") is tensorflow_default
