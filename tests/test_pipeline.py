"""The main job's bookkeeping: stage markers and the summary (the stages themselves are the
training, QAT, TFLite and serving code, tested in their own modules; `make main` runs them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ghostnet_keras.training.main_job import Pipeline


def _write(path: Path, content: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))


def test_summary_reports_every_format_and_the_mobilenet_comparison(tmp_path: Path) -> None:
    _write(tmp_path / "evaluate" / "accuracy.json",
           {"keras_float": 0.988, "tflite_fp32": 0.988, "tflite_qat_int8": 0.986,
            "savedmodel": 0.988})
    _write(tmp_path / "benchmark" / "latency_1_thread.json",
           {"quickstart_fp32": 0.33, "quickstart_qat_int8": 0.19})
    _write(tmp_path / "benchmark" / "models_224.json", {
        "models": [
            {"model": "ghostnet_100", "display_name": "GhostNet-1.0", "macs": 141_150_512,
             "params": 5_204_476, "tflite_bytes": int(19.75 * 2**20), "xnnpack_partitions": 1,
             "latency_ms": {"1": {"median": 9.0}}},
            {"model": "mobilenetv3_large", "display_name": "MobileNetV3-Large",
             "macs": 216_600_000, "params": 5_510_000, "tflite_bytes": int(20.87 * 2**20),
             "xnnpack_partitions": 1, "latency_ms": {"1": {"median": 10.0}}},
        ],
        "gpu": "GPU: LiteRT GPU accelerator on llvmpipe: 2/2 fully delegated",
        "gpu_table": "model  mode  fully delegated",
    })
    _write(tmp_path / "gpu" / "gpu.json", {
        "fp32": {"fully_delegated": True, "precision": "fp32", "relative_diff": 2e-7,
                 "adapter": "llvmpipe", "adapter_label": "llvmpipe: software GPU",
                 "fallback_ops": [], "error": None},
        "qat_int8": {"fully_delegated": None, "note": "int8 is not a GPU format"},
    })
    _write(tmp_path / "evaluate" / "mediapipe.json",
           {"tflite_fp32": 0.988, "tflite_qat_int8": 0.986})
    (tmp_path / "tflite").mkdir()
    (tmp_path / "tflite" / "ghostnet_quickstart_fp32.tflite").write_bytes(b"\0" * 2048)
    (tmp_path / "tflite" / "ghostnet_quickstart_qat_int8.tflite").write_bytes(b"\0" * 1024)

    Pipeline(tmp_path, data_dir=None).summary()

    table = (tmp_path / "summary.md").read_text()
    assert ("| tflite_fp32 | 98.80% | 98.80% | 2 KiB | 0.330 ms | yes, fp32, 2.0e-07 |"
            in table)
    assert ("| tflite_qat_int8 | 98.60% | 98.60% | 1 KiB | 0.190 ms "
            "| not a GPU format (int8) |" in table)
    assert "| keras_float | 98.80% | - | - | - | - |" in table
    assert "| GhostNet-1.0 | 141.2M | 5.20M | 19.75 MB | 1 | 9.00 ms | 0.90 |" in table
    assert "| MobileNetV3-Large | 216.6M | 5.51M | 20.87 MB | 1 | 10.00 ms | 1.00 |" in table
    assert "GPU adapter: llvmpipe: software GPU." in table
    assert "2/2 fully delegated" in table
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [row["format"] for row in summary["formats"]] == [
        "keras_float", "tflite_fp32", "tflite_qat_int8", "savedmodel"]
    assert (tmp_path / "summary.png").read_bytes().startswith(b"\x89PNG")
    # written through temporary names, none left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "benchmark", "evaluate", "gpu", "summary.json", "summary.md", "summary.png", "tflite"]


def test_summary_says_when_mediapipe_is_unavailable(tmp_path: Path) -> None:
    _write(tmp_path / "evaluate" / "accuracy.json", {"keras_float": 0.9})
    _write(tmp_path / "evaluate" / "mediapipe.json", {"unavailable": "no venv (make it)"})
    _write(tmp_path / "benchmark" / "latency_1_thread.json", {})
    Pipeline(tmp_path, data_dir=None).summary()
    assert "MediaPipe ImageClassifier: not available here (no venv (make it))." in (
        tmp_path / "summary.md").read_text()


def test_finished_stages_are_skipped(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pipeline = Pipeline(tmp_path, data_dir=None)
    calls = []
    pipeline._stage("train", lambda: calls.append("train"))
    assert calls == ["train"] and (tmp_path / ".done" / "train").exists()
    pipeline._stage("train", lambda: calls.append("again"))
    assert calls == ["train"]
    assert "[train] done already" in capsys.readouterr().out


def test_a_failed_stage_leaves_no_marker(tmp_path: Path) -> None:
    def fail() -> None:
        raise RuntimeError("stage failed")

    with pytest.raises(RuntimeError, match="stage failed"):
        Pipeline(tmp_path, data_dir=None)._stage("qat", fail)
    assert not (tmp_path / ".done" / "qat").exists()


def test_model_picks_the_family_member_and_its_image_size(tmp_path: Path) -> None:
    assert Pipeline(tmp_path, data_dir=None).config.model == "ghostnet"
    v2 = Pipeline(tmp_path, data_dir=None, model="ghostnetv2")
    assert (v2.config.model, v2.config.image_size, v2.stem) == (
        "ghostnetv2", 48, "ghostnetv2_quickstart")
    # the user's overrides win over the family's defaults
    v3 = Pipeline(tmp_path, data_dir=None, model="ghostnetv3", params_override="image_size=40")
    assert (v3.config.model, v3.config.image_size) == ("ghostnetv3", 40)
    with pytest.raises(ValueError, match="Unknown model 'resnet56'"):
        Pipeline(tmp_path, data_dir=None, model="resnet56")
