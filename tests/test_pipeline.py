"""The main job's bookkeeping: stage records and the summary (the stages themselves are the
training, QAT, TFLite and serving code, tested in their own modules; `make main` runs them).

The stage machinery is tested through small real stages that run in milliseconds."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ghostnet_keras.training.main_job import Pipeline
from ghostnet_keras.training.stages import Stage, StageRunner


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


class TinyJob:
    """Three small stages through the main job's stage machinery: `make` writes a number from
    its configuration, `double` reads exactly the file `make` recorded, `report` reads `double`'s.
    Each run appends the stage's name to `ran`."""

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.ran: list[str] = []
        self.log: list[str] = []

    def make(self, folder: Path, inputs: dict) -> dict:
        self.ran.append("make")
        (folder / "value.txt").write_text(str(self.value))
        return {"value": folder / "value.txt"}

    def double(self, folder: Path, inputs: dict) -> dict:
        self.ran.append("double")
        value = int(inputs["make"]["value"].read_text()) * self.factor
        (folder / "double.txt").write_text(str(value))
        return {"double": folder / "double.txt"}

    def report(self, folder: Path, inputs: dict) -> dict:
        self.ran.append("report")
        (folder / "report.txt").write_text(f"result {inputs['double']['double'].read_text()}")
        return {"report": folder / "report.txt"}

    def run(self, value: int = 3, factor: int = 2, force: bool = False) -> str:
        self.value, self.factor = value, factor
        self.ran, self.log = [], []
        outputs = StageRunner(self.output_dir, force=force, log=self.log.append).run([
            Stage("make", self.make, {"value": value}),
            Stage("double", self.double, {"factor": factor}, reads=("make",)),
            Stage("report", self.report, reads=("double",)),
        ])
        return outputs["report"]["report"].read_text()


def test_a_rerun_with_the_same_configuration_skips_every_stage(tmp_path: Path) -> None:
    job = TinyJob(tmp_path)
    assert job.run() == "result 6" and job.ran == ["make", "double", "report"]
    record = json.loads((tmp_path / ".stages" / "double.json").read_text())
    assert record["status"] == "done" and record["config"] == {"factor": 2}
    assert record["inputs"]["make/value"]["path"] == "make/value.txt"
    assert record["inputs"]["make/value"]["sha256"] == hashlib.sha256(b"3").hexdigest()
    assert job.run() == "result 6" and job.ran == []
    assert all("up to date" in line for line in job.log)


def test_a_changed_configuration_redoes_that_stage_and_every_later_one(tmp_path: Path) -> None:
    job = TinyJob(tmp_path)
    job.run()
    assert job.run(factor=5) == "result 15"
    assert job.ran == ["double", "report"]
    assert "[double] redoing: configuration changed: factor: 2 -> 5" in job.log
    assert "[report] redoing: an earlier stage (double) was redone" in job.log
    # the first stage's change redoes all three
    assert job.run(value=4, factor=5) == "result 20" and job.ran == ["make", "double", "report"]
    assert "[make] redoing: configuration changed: value: 3 -> 4" in job.log


def test_a_changed_input_file_redoes_the_stage_that_reads_it(tmp_path: Path) -> None:
    job = TinyJob(tmp_path)
    job.run()
    (tmp_path / "make" / "value.txt").write_text("7")  # the file `double` read, changed
    # `make`'s own record sees its output changed: it is redone, and everything after it
    job.run()
    assert job.ran == ["make", "double", "report"]
    assert "[make] redoing: output value (make/value.txt) changed since the stage wrote it" in (
        job.log)
    # a file another stage reads, changed while its writer's record still holds
    job.run()
    (tmp_path / "double" / "double.txt").write_text("100")
    record_path = tmp_path / ".stages" / "double.json"
    record = json.loads(record_path.read_text())
    record["outputs"]["double"]["sha256"] = hashlib.sha256(b"100").hexdigest()
    record_path.write_text(json.dumps(record))
    assert job.run() == "result 100"
    assert job.ran == ["report"]
    assert any(line.startswith("[report] redoing: input double/double changed") for line in job.log)


def test_force_redoes_everything(tmp_path: Path) -> None:
    job = TinyJob(tmp_path)
    job.run()
    job.run(force=True)
    assert job.ran == ["make", "double", "report"]
    assert "[make] redoing: --force" in job.log


def test_a_failed_stage_is_redone_and_a_stale_folder_cleared(tmp_path: Path) -> None:
    job = TinyJob(tmp_path)
    job.run()

    def fail(folder: Path, inputs: dict) -> dict:
        (folder / "checkpoint").write_text("half done")
        raise RuntimeError("stage failed")

    with pytest.raises(RuntimeError, match="stage failed"):
        StageRunner(tmp_path, log=job.log.append).run([
            Stage("make", job.make, {"value": 3}), Stage("double", fail, {"factor": 9},
                                                         reads=("make",))])
    assert json.loads((tmp_path / ".stages" / "double.json").read_text())["status"] == "running"
    # the same configuration resumes in its folder (the checkpoint is kept) ...
    kept = []
    StageRunner(tmp_path, log=job.log.append).run([
        Stage("make", job.make, {"value": 3}),
        Stage("double", lambda folder, inputs: kept.append((folder / "checkpoint").exists())
              or job.double(folder, inputs), {"factor": 9}, reads=("make",))])
    assert kept == [True]
    assert "[double] resuming an interrupted run with the same configuration" in job.log
    # ... another configuration starts from an empty folder
    (tmp_path / "double" / "checkpoint").write_text("stale")
    job.run(factor=4)
    assert not (tmp_path / "double" / "checkpoint").exists()


def test_a_stage_reading_a_later_stage_is_refused(tmp_path: Path) -> None:
    job = TinyJob(tmp_path)
    with pytest.raises(ValueError, match="stage 'double' reads \\['report'\\]"):
        StageRunner(tmp_path).run([Stage("double", job.double, reads=("report",))])


def test_the_main_jobs_stages_record_what_their_results_depend_on(tmp_path: Path) -> None:
    stages = {stage.name: stage for stage in Pipeline(tmp_path, data_dir=None).stages()}
    assert list(stages) == ["train", "qat", "tflite", "gpu", "serving", "evaluate", "arm64",
                            "benchmark"]
    assert stages["train"].config["epochs"] == Pipeline(tmp_path, None).config.epochs
    longer = {s.name: s for s in Pipeline(tmp_path, None, params_override="epochs=3").stages()}
    assert longer["train"].config["epochs"] == 3 != stages["train"].config["epochs"]
    # QAT's epochs change QAT, not the float model's training
    more_qat = {s.name: s
                for s in Pipeline(tmp_path, None, params_override="qat_epochs=5").stages()}
    assert more_qat["train"].config == stages["train"].config
    assert more_qat["qat"].config != stages["qat"].config
    v2 = {s.name: s for s in Pipeline(tmp_path, None, model="ghostnetv2").stages()}
    assert v2["train"].config["model"] == "ghostnetv2" and v2["tflite"].config["stem"] == (
        "ghostnetv2_quickstart")
    assert stages["evaluate"].reads == ("train", "tflite", "serving")
    assert stages["arm64"].reads == ("tflite",)
    fewer = {s.name: s for s in Pipeline(tmp_path, None, benchmark_iterations=5).stages()}
    assert fewer["benchmark"].config["iterations"] == 5


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
