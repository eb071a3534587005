"""Shared fixtures: the reference oracle in ../shared/reference (CI has shared/ beside it)."""

from __future__ import annotations

import os
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
