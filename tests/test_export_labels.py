"""Exports into one folder keep their own labels: `x.labels.txt` and `x.json` per export."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ghostnet_keras.export import sidecar as export_sidecar

BIN = Path(sys.executable).parent
FRUIT = ["apple", "banana", "cherry"]
TOOLS = ["hammer", "saw", "drill"]


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{module} is not installed (CI=true: the test must run)")
        pytest.skip(f"{module} is not installed")


@pytest.fixture(scope="module")
def tiny_model():
    from ghostnet_keras import GhostNet

    return GhostNet(width=0.1, classes=3, input_shape=(32, 32, 3))


def _labels_of(output: Path) -> tuple[list[str], dict]:
    sidecar = json.loads(export_sidecar.sidecar_path(output).read_text())
    assert sidecar["file"] == output.name
    return (output.parent / sidecar["labels"]).read_text().splitlines(), sidecar


@pytest.mark.slow
def test_two_tflite_exports_in_one_folder_keep_their_own_labels(tiny_model, tmp_path):
    _require("tensorflow")
    from ghostnet_keras.tflite import conversion, metadata, sidecar

    folder = tmp_path / "out"
    tiny_model.save(tmp_path / "tiny.keras")
    (tmp_path / "fruit.txt").write_text("\n".join(FRUIT) + "\n")
    # The first through the command line, the second through the library the main job uses.
    result = subprocess.run(
        [str(BIN / "ghostnet-tflite-convert"), f"--model={tmp_path / 'tiny.keras'}",
         f"--labels={tmp_path / 'fruit.txt'}", f"--output={folder / 'fruit.tflite'}",
         "--nocheck_gpu"], capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    data = metadata.with_image_classifier_metadata(
        conversion.convert(tiny_model, "fp32"), TOOLS, name="tools")
    sidecar.write_outputs(data, folder / "tools.tflite", sidecar.describe(data, "fp32"), TOOLS)

    assert sorted(p.name for p in folder.iterdir()) == [
        "fruit.json", "fruit.labels.txt", "fruit.tflite",
        "tools.json", "tools.labels.txt", "tools.tflite"]
    for name, labels in (("fruit", FRUIT), ("tools", TOOLS)):
        output = folder / f"{name}.tflite"
        written, described = _labels_of(output)
        assert written == labels and described["labels"] == f"{name}.labels.txt"
        assert metadata.labels(output.read_bytes()) == labels  # packed in the model too


def test_a_sidecar_of_another_export_is_not_overwritten(tmp_path):
    export_sidecar.write_export(tmp_path / "m.onnx", b"onnx", {"format": "x"}, FRUIT)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match=r"m\.json is the sidecar of m\.onnx"):
        export_sidecar.write_export(tmp_path / "m.tflite", b"tflite", {"format": "y"}, TOOLS)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    (tmp_path / "notes.json").write_text("[1, 2]")
    with pytest.raises(FileExistsError, match="not the sidecar of an export"):
        export_sidecar.write_export(tmp_path / "notes.tflite", b"tflite", {}, TOOLS)
    # The same export again replaces its own files.
    export_sidecar.write_export(tmp_path / "m.onnx", b"onnx2", {"format": "x"}, TOOLS)
    assert (tmp_path / "m.labels.txt").read_text().splitlines() == TOOLS
    assert (tmp_path / "m.onnx").read_bytes() == b"onnx2"


def test_labels_must_match_the_classes():
    with pytest.raises(ValueError, match="3 classes but 2 labels"):
        export_sidecar.check_labels(["a", "b"], 3)
    with pytest.raises(ValueError, match="empty or spans lines"):
        export_sidecar.check_labels(["a", "b\nc", "d"], 3)
    assert export_sidecar.labels_path("out/x.v2.tflite") == Path("out/x.v2.labels.txt")


@pytest.mark.slow
def test_two_onnx_exports_in_one_folder_keep_their_own_labels(tiny_model, tmp_path):
    for module in ("onnx", "onnxruntime", "tf2onnx"):
        _require(module)
    from ghostnet_keras.export import onnx as onnx_export

    for name, labels in (("fruit", FRUIT), ("tools", TOOLS)):
        sidecar = onnx_export.export_onnx(tiny_model, tmp_path / f"{name}.onnx",
                                          dynamic_batch=False, labels=labels)
        assert sidecar["labels"] == f"{name}.labels.txt"
    with pytest.raises(ValueError, match="3 classes but 2 labels"):
        onnx_export.export_onnx(tiny_model, tmp_path / "short.onnx", labels=FRUIT[:2])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fruit.json", "fruit.labels.txt", "fruit.onnx",
        "tools.json", "tools.labels.txt", "tools.onnx"]
    for name, labels in (("fruit", FRUIT), ("tools", TOOLS)):
        assert _labels_of(tmp_path / f"{name}.onnx")[0] == labels
