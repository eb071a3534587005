"""The wheel installs one namespace, `ghostnet_keras`, with every console script importable."""

from __future__ import annotations

import configparser
import importlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO_DIR


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(out), str(REPO_DIR)],
        check=True, capture_output=True, text=True,
    )
    (path,) = out.glob("ghostnet_keras-*.whl")
    with zipfile.ZipFile(path) as archive:
        yield archive


def test_wheel_installs_only_the_ghostnet_keras_namespace(wheel: zipfile.ZipFile) -> None:
    top_level = {
        name.split("/")[0] for name in wheel.namelist() if ".dist-info/" not in name
    }
    assert top_level == {"ghostnet_keras"}
    names = set(wheel.namelist())
    for expected in ("ghostnet_keras/training/loop.py", "ghostnet_keras/tflite/cli/convert.py",
                     "ghostnet_keras/hub/backbone.py",
                     "ghostnet_keras/tflite/android/run_benchmark.sh",
                     "ghostnet_keras/tflite/metadata_schema.fbs",
                     "ghostnet_keras/tflite/mediapipe_client.py",
                     "ghostnet_keras/data/imagenet_class_index.json"):
        assert expected in names


def test_every_console_script_points_at_an_importable_function(
    wheel: zipfile.ZipFile,
) -> None:
    (entry_points,) = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]
    parser = configparser.ConfigParser()
    parser.read_string(wheel.read(entry_points).decode())
    scripts = dict(parser["console_scripts"])
    assert {"ghostnet-train", "ghostnet-tflite-convert", "ghostnet-main"} <= set(scripts)
    for script, target in scripts.items():
        module_name, function = target.split(":")
        assert module_name.startswith("ghostnet_keras."), script
        assert (REPO_DIR / Path(*module_name.split(".")[1:])).with_suffix(".py").exists() or (
            importlib.util.find_spec(module_name) is not None
        ), script
        assert callable(getattr(importlib.import_module(module_name), function)), script


def test_setup_cfg_lists_every_package_folder() -> None:
    """Each folder with an `__init__.py` is a listed package (else the wheel silently drops it)."""
    parser = configparser.ConfigParser()
    parser.read(REPO_DIR / "setup.cfg")
    listed = set(parser["options"]["packages"].split())
    roots = {"ghostnet_keras": "ghostnet_keras", "tflite": "ghostnet_keras.tflite",
             "training": "ghostnet_keras.training"}
    folders = {
        ".".join((package, *init.parent.relative_to(REPO_DIR / root).parts))
        for root, package in roots.items()
        for init in (REPO_DIR / root).rglob("__init__.py")
    }
    assert folders == listed


def test_wheel_holds_every_subpackage(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for folder in ("models", "layers", "weights", "export", "analysis", "cli", "tflite/cli"):
        assert f"ghostnet_keras/{folder}/__init__.py" in names, folder
