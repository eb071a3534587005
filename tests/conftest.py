"""Shared fixtures: the parity oracles (compact in tests/data; larger in ../shared/reference)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
from pathlib import Path
from types import ModuleType
from typing import NoReturn

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import pytest

REPO_DIR = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_DIR.parent / "shared" / "reference"
TEST_DATA_DIR = REPO_DIR / "tests" / "data"
WIDTH_TAGS = {0.5: "050", 1.0: "100", 1.3: "130"}

# The compact oracle every clone has (tools/make_test_oracles.py): timm's GhostNet v1 at width
# 0.2 with 10 classes, random weights, outputs at 64 x 64 and 80 x 112.
COMPACT_WIDTH = 0.2
COMPACT_CLASSES = 10
COMPACT_WEIGHTS = TEST_DATA_DIR / "ghostnet_020_c10.safetensors"
COMPACT_EXPECTED = TEST_DATA_DIR / "ghostnet_020_c10_expected.npz"
COMPACT_SIZES = ((64, 64), (80, 112))


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Without TensorFlow (the JAX and PyTorch backend suites) only portable modules load.

    A test module is portable when it says so (`pytestmark = pytest.mark.portable` or marks on
    its tests); the others are TensorFlow's and would fail to import.
    """
    if collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    if importlib.util.find_spec("tensorflow") is not None:
        return None
    return "pytest.mark.portable" not in collection_path.read_text()


def unavailable(message: str) -> NoReturn:
    """Skips (also at module level) what this machine lacks; under CI=true, fails instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: every optional dependency and file must be there)",
                    pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require_module(name: str, reason: str) -> ModuleType:
    """Imports an optional dependency for a test or a test module (`unavailable` if missing)."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        unavailable(f"{name} cannot be imported ({error}): {reason}")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """The larger oracles beside the checkout; under CI=true their absence is a failure."""
    if not (REFERENCE_DIR / "ghostnet_100.safetensors").exists():
        unavailable(f"reference oracle not found at {REFERENCE_DIR}")
    return REFERENCE_DIR


@pytest.fixture(autouse=True)
def _float32_policy():
    """Every test starts (and ends) with the default float32 policy."""
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture(scope="session")
def quickstart_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tensorflow-datasets dir with the quickstart digits prepared once for the session."""
    from ghostnet_keras.training import datasets
    from ghostnet_keras.training.quickstart_dataset import mnist_5k_path

    try:
        mnist_5k_path()
    except (ModuleNotFoundError, FileNotFoundError) as error:
        unavailable(f"the quickstart digits: {error}")
    path = str(tmp_path_factory.mktemp("tfds"))
    datasets.dataset_info("quickstart", data_dir=path)
    return path


@pytest.fixture(scope="session")
def quickstart_run(quickstart_dir: str, tmp_path_factory: pytest.TempPathFactory
                   ) -> tuple[Path, list[dict]]:
    """The `quickstart` recipe trained for 3 epochs (once per session): its folder (with
    `model.keras`) and its history. Chance on the 500 held-out digits is 10%; this reaches
    about 90%."""
    import tensorflow as tf

    from ghostnet_keras.training.configs import get_config
    from ghostnet_keras.training.loop import DataSource, Trainer

    folder = tmp_path_factory.mktemp("quickstart_run")
    trainer = Trainer(get_config("quickstart", "epochs=3,log_every_steps=1000"),
                      tf.distribute.get_strategy(), folder,
                      source=DataSource(data_dir=quickstart_dir))
    return folder, trainer.train()


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
        unavailable(f"software GPU not installed: {result.stderr.strip()[-500:]}")
    if not gpu.software_gpu_installed() and "real device" not in result.stdout:
        pytest.fail(f"{script} reported success but left no ICD in {gpu.software_gpu_dir()}")
