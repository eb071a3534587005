"""The trainer's programs turn TensorFlow's oneDNN CPU kernels on unless the user chose."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

# TensorFlow has no public API for "is oneDNN on"; its own tests use this private helper.
PROBE = """
import os, sys
from ghostnet_keras.training.onednn import prefer_onednn
if sys.argv[1] == "late":
    import tensorflow
if sys.argv[1] != "never":
    prefer_onednn()
print(os.environ.get("TF_ENABLE_ONEDNN_OPTS"))
from tensorflow.python.util import _pywrap_util_port
print(_pywrap_util_port.IsMklEnabled())
"""

pytestmark = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "aarch64")),
    reason="TensorFlow ships oneDNN kernels on Linux x86_64/aarch64 only",
)


def _probe(env_value: str | None, when: str) -> tuple[str, bool]:
    """(TF_ENABLE_ONEDNN_OPTS after prefer_onednn, whether TensorFlow runs oneDNN)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if env_value is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = env_value
    result = subprocess.run([sys.executable, "-c", PROBE, when], capture_output=True, text=True,
                            env=env, timeout=300, check=True)
    variable, enabled = result.stdout.strip().splitlines()[-2:]
    return variable, {"True": True, "False": False}[enabled]


def test_programs_import_no_tensorflow_before_choosing_kernels() -> None:
    code = ("import sys, ghostnet_keras.training.train, ghostnet_keras.training.main_job, "
            "ghostnet_keras.training.evaluate; "
            "print('tensorflow' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(("env_value", "expected"), [
    (None, ("1", True)),    # the programs' default
    ("0", ("0", False)),    # the user's choice wins
    ("1", ("1", True)),
])
def test_prefer_onednn_before_tensorflow(env_value: str | None, expected: tuple) -> None:
    assert _probe(env_value, "first") == expected


def test_prefer_onednn_after_tensorflow_is_imported_changes_nothing() -> None:
    variable, enabled = _probe(None, "late")
    assert variable == "None"  # not set: it would mislabel a process that did not use it
    assert enabled is _probe(None, "never")[1]  # TensorFlow's own choice for this CPU
