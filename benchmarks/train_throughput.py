"""Training throughput: GhostNet-1.0 in Keras (XLA off/on) vs timm, and the input pipeline.

    python benchmarks/train_throughput.py
    python benchmarks/train_throughput.py --torch_python=/path/to/venv-with-torch/bin/python

Measures, in one run on this machine:
- Keras training images/s of GhostNet-1.0, batch 32, 224 x 224, through the trainer's own
  distributed training step (SGD + label smoothing + weight decay), each configuration in its
  own process: with TensorFlow's oneDNN CPU kernels (the trainer's default, see
  `ghostnet_keras.training.onednn`) and with TensorFlow's default kernels
  (`TF_ENABLE_ONEDNN_OPTS=0`), XLA off,
  and with oneDNN and XLA on;
- the input pipeline's images/s (in this process, TensorFlow's default CPU kernels;
  `ghostnet_keras.training.input_pipeline.build_dataset`, ImageNet training
  augmentation: decode-and-crop JPEG, flip, colour jitter) on ImageNet-sized JPEGs (500 x 375,
  quality 90) written to a temporary image folder;
- timm's `ghostnet_100` training images/s at the same batch and size (SGD, label smoothing),
  when PyTorch and timm are importable here or in `--torch_python`'s environment.
Prints a table with the ratios (Keras vs timm, pipeline vs training step).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_integer("batch_size", 32, "Training batch size.")
flags.DEFINE_integer("image_size", 224, "Training image size.")
flags.DEFINE_integer("warmup_steps", 2, "Untimed steps (tracing/compilation).")
flags.DEFINE_integer("steps", 5, "Timed training steps.")
flags.DEFINE_integer("num_jpegs", 256, "JPEGs in the synthetic ImageNet-like folder.")
flags.DEFINE_string("torch_python", "", "Python of an environment with torch and timm.")
flags.DEFINE_enum("measure", "all", ["all", "keras"],
                  "'keras': measure one Keras configuration in this process and print images/s "
                  "(used by 'all', which runs each configuration in a fresh process).")
flags.DEFINE_boolean("jit_compile", False, "XLA for --measure=keras.")

# (row name, TF_ENABLE_ONEDNN_OPTS, XLA) of the Keras configurations.
KERAS_CONFIGURATIONS = (
    ("keras_onednn", "1", False),
    ("keras_tf_default_kernels", "0", False),
    ("keras_onednn_xla", "1", True),
)

TIMM_SCRIPT = """
import sys, time, torch, timm
batch, size, warmup, steps = map(int, sys.argv[1:5])
torch.manual_seed(0)
model = timm.create_model("ghostnet_100", num_classes=1000).train()
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=4e-5)
loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
x = torch.rand(batch, 3, size, size) * 2 - 1
y = torch.randint(0, 1000, (batch,))
def step():
    opt.zero_grad(set_to_none=True)
    loss_fn(model(x), y).backward()
    opt.step()
for _ in range(warmup):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
print(batch * steps / (time.perf_counter() - start))
"""


def keras_train_images_per_s(jit_compile: bool) -> float:
    """Images/s of the trainer's step on GhostNet-1.0 with a synthetic in-memory batch."""
    import numpy as np
    import tensorflow as tf

    from ghostnet_keras.training.configs import get_config
    from ghostnet_keras.training.loop import Trainer

    config = get_config("quickstart", f"width=1.0,image_size={FLAGS.image_size},"
                        f"global_batch_size={FLAGS.batch_size},epochs=100,steps_per_epoch=10")
    strategy = tf.distribute.get_strategy()
    with tempfile.TemporaryDirectory() as model_dir:
        trainer = Trainer(config, strategy, model_dir, jit_compile=jit_compile)
        rng = np.random.default_rng(0)
        images = rng.uniform(0, 255, (FLAGS.batch_size, FLAGS.image_size, FLAGS.image_size, 3))
        labels = rng.integers(0, 10, FLAGS.batch_size).astype("int32")
        batch = tf.data.Dataset.from_tensors((images.astype("float32"), labels)).repeat()
        iterator = iter(strategy.experimental_distribute_dataset(batch))
        for _ in range(FLAGS.warmup_steps):
            trainer.train_step(iterator)
        start = time.perf_counter()
        for _ in range(FLAGS.steps):
            [float(v) for v in trainer.train_step(iterator)]
        return FLAGS.batch_size * FLAGS.steps / (time.perf_counter() - start)


def keras_in_fresh_process(onednn: str, jit_compile: bool) -> float:
    """Runs `--measure=keras` in a new process (TensorFlow reads the oneDNN switch at import)."""
    command = [sys.executable, __file__, "--measure=keras", f"--jit_compile={jit_compile}",
               f"--batch_size={FLAGS.batch_size}", f"--image_size={FLAGS.image_size}",
               f"--warmup_steps={FLAGS.warmup_steps}", f"--steps={FLAGS.steps}"]
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False,
                            timeout=3600)
    if result.returncode:
        raise RuntimeError(f"Keras measurement failed: TF_ENABLE_ONEDNN_OPTS={onednn} "
                           f"{' '.join(command)}\n{result.stderr[-3000:]}")
    return float(result.stdout.strip().splitlines()[-1])


def pipeline_images_per_s() -> float:
    """Images/s of the ImageNet training pipeline on ImageNet-sized JPEGs."""
    import numpy as np
    import tensorflow as tf

    from ghostnet_keras.training import input_pipeline as data

    with tempfile.TemporaryDirectory() as folder:
        rng = np.random.default_rng(0)
        for index in range(FLAGS.num_jpegs):
            target = Path(folder) / "train" / f"class_{index % 4}"
            target.mkdir(parents=True, exist_ok=True)
            # smooth random colour fields compress like photos, unlike pure noise
            coarse = rng.uniform(0, 255, (1, 24, 32, 3)).astype("float32")
            image = tf.cast(tf.image.resize(coarse, (375, 500), "bicubic")[0], tf.uint8)
            (target / f"{index}.jpg").write_bytes(tf.io.encode_jpeg(image, quality=90).numpy())
        dataset = data.build_dataset(
            "image_folder", "train", image_size=FLAGS.image_size, batch_size=FLAGS.batch_size,
            training=True, folder=folder, repeat=True,
        )
        iterator = iter(dataset)
        next(iterator)
        batches = max(1, 4 * FLAGS.num_jpegs // FLAGS.batch_size)
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        return FLAGS.batch_size * batches / (time.perf_counter() - start)


def timm_train_images_per_s() -> tuple[float | None, str]:
    """timm ghostnet_100 training images/s, or None and the reason."""
    args = [str(FLAGS.batch_size), str(FLAGS.image_size), str(FLAGS.warmup_steps),
            str(FLAGS.steps)]
    python = FLAGS.torch_python
    if not python:
        try:
            import timm  # noqa: F401
            import torch  # noqa: F401
        except ImportError:
            return None, "torch/timm not importable (pass --torch_python)"
        import sys

        python = sys.executable
    result = subprocess.run([python, "-c", TIMM_SCRIPT, *args], capture_output=True,
                            text=True, check=False, timeout=1800)
    if result.returncode:
        return None, f"timm run failed: {result.stderr.strip().splitlines()[-1:]}"
    return float(result.stdout.strip().splitlines()[-1]), "timm ghostnet_100 (PyTorch eager)"


def main(argv: Sequence[str]) -> None:
    del argv
    if FLAGS.measure == "keras":
        print(keras_train_images_per_s(FLAGS.jit_compile))
        return
    rows = {name: keras_in_fresh_process(onednn, xla)
            for name, onednn, xla in KERAS_CONFIGURATIONS}
    best_keras = max(rows.values())
    rows["input_pipeline"] = pipeline_images_per_s()
    timm_rate, timm_note = timm_train_images_per_s()
    print(f"\nbatch {FLAGS.batch_size}, {FLAGS.image_size}x{FLAGS.image_size}, "
          f"{os.cpu_count()} CPU cores\n")
    print("| what | images/s | ratio |")
    print("| --- | --- | --- |")
    reference = timm_rate or best_keras
    for name, rate in rows.items():
        if name == "input_pipeline":
            ratio = f"{rate / best_keras:.2f}x the training step"
        else:
            ratio = f"{rate / reference:.2f}x timm" if timm_rate else "-"
        print(f"| {name} | {rate:.1f} | {ratio} |")
    print(f"| timm_ghostnet_100 | {timm_rate:.1f} | 1.00x |" if timm_rate
          else f"| timm_ghostnet_100 | - | {timm_note} |")
    print(json.dumps({**rows, "timm": timm_rate}))


if __name__ == "__main__":
    app.run(main)
