"""Shared fixtures: the reference oracle in ../shared/reference (CI has shared/ beside it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import pytest

REPO_DIR = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_DIR.parent / "shared" / "reference"
TEST_DATA_DIR = REPO_DIR / "tests" / "data"
WIDTH_TAGS = {0.5: "050", 1.0: "100", 1.3: "130"}


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not (REFERENCE_DIR / "ghostnet_100.safetensors").exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI runs the parity tests: reference oracle not found at {REFERENCE_DIR}")
        pytest.skip(f"reference oracle not found at {REFERENCE_DIR}")
    return REFERENCE_DIR


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts (and ends) with the default float32 policy."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def software_gpu() -> None:
    """LiteRT's GPU accelerator has an adapter: a GPU, or lavapipe from the project's script.

    `make test` installs the software GPU first; this installs it when the suite runs alone.
    Under CI a missing adapter fails the tests that need it instead of skipping them.
    """
    from ghostnet_keras.tflite import gpu

    script = REPO_DIR / "tools" / "install_software_gpu.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        message = f"software GPU not installed: {result.stderr.strip()[-500:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    if not gpu.software_gpu_installed() and "real device" not in result.stdout:
        pytest.fail(f"{script} reported success but left no ICD in {gpu.software_gpu_dir()}")
