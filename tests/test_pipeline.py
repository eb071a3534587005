"""The main job's bookkeeping: stage markers and the summary (the stages themselves are the
training, QAT, TFLite and serving code, tested in their own modules; `make main` runs them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ghostnet_keras.training.pipeline import Pipeline


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
        "ghostnet_100": {"macs": 141_150_512, "params": 5_204_476, "size_mb": 19.75,
                         "latency_ms": 9.0},
        "mobilenetv3_large": {"macs": 216_600_000, "params": 5_510_000, "size_mb": 20.87,
                              "latency_ms": 10.0},
        "gpu": "GPU: not available on this machine (test)",
    })
    (tmp_path / "tflite").mkdir()
    (tmp_path / "tflite" / "ghostnet_quickstart_fp32.tflite").write_bytes(b"\0" * 2048)
    (tmp_path / "tflite" / "ghostnet_quickstart_qat_int8.tflite").write_bytes(b"\0" * 1024)

    Pipeline(tmp_path, data_dir=None).summary()

    table = (tmp_path / "summary.md").read_text()
    assert "| tflite_fp32 | 98.80% | 2 KiB | 0.330 ms |" in table
    assert "| tflite_qat_int8 | 98.60% | 1 KiB | 0.190 ms |" in table
    assert "| keras_float | 98.80% | - | - |" in table
    assert "| GhostNet-1.0 | 141.2M | 5.20M | 19.75 MB | 9.00 ms | 0.90 |" in table
    assert "| MobileNetV3-Large | 216.6M | 5.51M | 20.87 MB | 10.00 ms | 1.00 |" in table
    assert "GPU: not available" in table
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [row["format"] for row in summary["formats"]] == [
        "keras_float", "tflite_fp32", "tflite_qat_int8", "savedmodel"]
    assert (tmp_path / "summary.png").read_bytes().startswith(b"\x89PNG")
    # written through temporary names, none left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "benchmark", "evaluate", "summary.json", "summary.md", "summary.png", "tflite"]


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
