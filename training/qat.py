"""Quantization-aware fine-tuning (tfmot) of a trained float GhostNet, resumable, on any strategy.

Files of `train_qat` in `model_dir`: `qat_backup/` (resume state, removed at the end),
`qat_history.csv`, `qat_history.json` and `qat_saved_model/` (the QAT model, which
`ghostnet_keras.training.qat_export.convert_qat` turns into int8 TFLite).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ghostnet_keras.atomic_write import write_atomically
from ghostnet_keras.training.qat_export import save_qat_model
from ghostnet_keras.training.qat_model import build_qat_model, classifier_activation, qat_modules

if TYPE_CHECKING:  # heavy imports, for type checkers only
    import keras
    import tensorflow as tf
    import tf_keras

    from ghostnet_keras.training.configs import TrainConfig
    from ghostnet_keras.training.loop import DataSource

BACKUP_DIR = "qat_backup"
HISTORY_CSV = "qat_history.csv"
HISTORY_JSON = "qat_history.json"
SAVED_MODEL_DIR = "qat_saved_model"
QAT_LEARNING_RATE_FACTOR = 0.01
"""Default QAT peak learning rate: this fraction of the recipe's (cosine decay, no warm-up).

Measured on quickstart (3 QAT epochs from the 15-epoch float model, 97.8% on the 500 test
digits): int8 TFLite 98.0% with 1/100 of the peak rate, 97.2% with 1/10 (which perturbs the
converged model: 96.6% after its first epoch)."""


def _weight_decay_loss(model: tf_keras.Model, weight_decay: float) -> Callable[[], Any]:
    """`weight_decay * sum(||w||^2) / 2` over the trainable conv/dense kernels (grad += wd * w).

    The kernels are found by variable name: tfmot's wrappers replace a wrapped layer's `kernel`
    attribute by its fake-quantized tensor, so the layer attributes cannot be used.
    """
    import tensorflow as tf

    names = ("kernel", "depthwise_kernel")
    kernels = [
        v for v in model.trainable_weights if v.name.split("/")[-1].split(":")[0] in names
    ]
    return lambda: weight_decay * tf.add_n([tf.nn.l2_loss(k) for k in kernels])


def _history_callback(tf_keras: ModuleType, path: Path | None, rows: list[dict]) -> Any:
    """Keeps `rows` (one per finished epoch, across resumes) and writes them as JSON."""

    class JsonHistory(tf_keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            del rows[epoch:]  # a resumed run restarts at `epoch`; later rows are stale
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            optimizer = self.model.optimizer
            row = {"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}}
            rate = optimizer.learning_rate  # the current rate (a variable), or a schedule
            if isinstance(rate, tf_keras.optimizers.schedules.LearningRateSchedule):
                rate = rate(optimizer.iterations - 1)
            row["learning_rate"] = float(tf_keras.backend.get_value(rate))
            row["seconds"] = time.perf_counter() - self._start
            rows.append(row)
            if path is not None:
                write_atomically({path: json.dumps(rows, indent=2) + "\n"})

    return JsonHistory()


def load_float_model(path: str | os.PathLike) -> keras.Model:
    """Loads a trained float GhostNet (`.keras`, e.g. `runs/quickstart/model.keras`)."""
    from ghostnet_keras.weights.keras_files import load_keras_file

    path = Path(path)
    if path.suffix != ".keras" or not path.is_file():
        raise FileNotFoundError(f"--init_from must be an existing .keras model; got {path}.")
    return load_keras_file(path)


def train_qat(
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
    model_dir: str | os.PathLike,
    source: DataSource,
    init_from: str,
    epochs: int,
    learning_rate: float | None = None,
) -> list[dict]:
    """Quantization-aware fine-tuning of a trained float GhostNet with tf_keras `fit`.

    The QAT model (`build_qat_model`) is built inside `strategy.scope()` from the float model at
    `init_from` and trained on `config`'s dataset through
    `ghostnet_keras.training.input_pipeline.build_dataset` (the
    recipe's augmentation and global batch), with SGD (the recipe's momentum and Nesterov
    flag) on a cosine schedule without warm-up from `learning_rate` (default: 1/100 of the
    recipe's peak rate, `QAT_LEARNING_RATE_FACTOR`), categorical cross-entropy with the
    recipe's label smoothing and the recipe's L2 weight decay on conv/dense kernels. tf_keras
    `fit` works under every strategy, `MultiWorkerMirroredStrategy` included (Keras 3 `fit`
    does not). A `OneDeviceStrategy` is replaced by the default strategy (same device), as
    tf_keras' `BackupAndRestore` rejects it.

    A restarted run resumes from `model_dir/qat_backup` (`BackupAndRestore`, at epoch
    boundaries). Writes `model_dir/qat_history.csv` (`CSVLogger`), `model_dir/qat_history.json`
    and at the end `model_dir/qat_saved_model` (a SavedModel of the QAT model, written to a
    temporary directory and renamed), which `convert_qat` turns into an int8 TFLite model. Only
    the chief writes these files.

    Args:
        config: the recipe (`ghostnet_keras.training.configs.TrainConfig`); `config.epochs` is not
        used.
        strategy: the distribution strategy.
        model_dir: the run directory.
        source: where the data comes from (`ghostnet_keras.training.loop.DataSource`).
        init_from: the trained float model, a `.keras` file.
        epochs: number of QAT epochs.
        learning_rate: peak learning rate; default `config.learning_rate / 100`.

    Returns:
        The history: one dict per finished epoch (`loss`, `accuracy`, `top5_accuracy`,
        `val_loss`, `val_accuracy`, `val_top5_accuracy`, `learning_rate`, `seconds`), this
        run's and the resumed run's. As tf_keras reports them, both losses include the label
        smoothing and the weight-decay term.
    """
    import tensorflow as tf

    from ghostnet_keras.training import datasets
    from ghostnet_keras.training import input_pipeline as data
    from ghostnet_keras.training.loop import is_chief
    from ghostnet_keras.training.models import GHOSTNET_VERSIONS

    if config.model not in GHOSTNET_VERSIONS:
        raise ValueError(f"QAT supports the GhostNet family ({', '.join(GHOSTNET_VERSIONS)}); "
                         f"the config has model={config.model!r}.")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1; got {epochs}.")
    tf_keras, _ = qat_modules()
    model_dir = Path(model_dir)
    chief = is_chief(strategy)
    info = datasets.dataset_info(
        config.dataset, data_dir=source.data_dir, manual_dir=source.manual_dir,
        folder=source.folder, download=source.download,
    )
    num_train = info.num_examples[info.train_split]
    steps_per_epoch = config.steps_per_epoch or num_train // config.global_batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"{config.dataset!r} has {num_train} training examples, fewer than one "
                         f"global batch of {config.global_batch_size}.")
    peak = config.learning_rate * QAT_LEARNING_RATE_FACTOR if learning_rate is None \
        else float(learning_rate)

    if isinstance(strategy, tf.distribute.OneDeviceStrategy):
        # tf_keras' BackupAndRestore rejects OneDeviceStrategy; the default strategy places the
        # model on the same device (the first GPU, else the CPU).
        strategy = tf.distribute.get_strategy()
    float_model = load_float_model(init_from)
    with strategy.scope():
        model = build_qat_model(
            float_model, width=config.width, num_classes=info.num_classes,
            image_size=config.image_size, dropout_rate=config.dropout_rate,
            version=GHOSTNET_VERSIONS[config.model],
        )
        from_logits = classifier_activation(float_model) is None
        if config.weight_decay:
            model.add_loss(_weight_decay_loss(model, config.weight_decay))
        schedule = tf_keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=peak, decay_steps=epochs * steps_per_epoch)
        model.compile(
            optimizer=tf_keras.optimizers.SGD(
                learning_rate=schedule, momentum=config.momentum, nesterov=config.nesterov),
            loss=tf_keras.losses.CategoricalCrossentropy(
                from_logits=from_logits, label_smoothing=config.label_smoothing),
            metrics=[
                tf_keras.metrics.CategoricalAccuracy(name="accuracy"),
                tf_keras.metrics.TopKCategoricalAccuracy(
                    k=min(5, info.num_classes), name="top5_accuracy"),
            ],
        )
    del float_model

    def one_hot(images: Any, labels: Any) -> tuple[Any, Any]:
        return images, tf.one_hot(labels, info.num_classes)

    def train_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return data.build_dataset(
            config.dataset, info.train_split, image_size=config.image_size,
            batch_size=context.get_per_replica_batch_size(config.global_batch_size),
            training=True, data_dir=source.data_dir, manual_dir=source.manual_dir,
            folder=source.folder, download=source.download, input_context=context,
            seed=config.seed, repeat=True, augmentation=config.augmentation,
        ).map(one_hot)

    train_data = strategy.distribute_datasets_from_function(train_fn)
    eval_data = data.build_dataset(
        config.dataset, info.eval_split, image_size=config.image_size,
        batch_size=config.global_batch_size, training=False, data_dir=source.data_dir,
        manual_dir=source.manual_dir, folder=source.folder, download=source.download,
    ).map(one_hot)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    eval_data = eval_data.with_options(options)

    model_dir.mkdir(parents=True, exist_ok=True)
    backup_dir = model_dir / BACKUP_DIR
    resuming = backup_dir.is_dir() and any(backup_dir.iterdir())
    json_path = model_dir / HISTORY_JSON
    rows: list[dict] = []
    if chief:
        if resuming and json_path.exists():
            rows = json.loads(json_path.read_text())
        elif not resuming:  # a fresh run: drop the files of an earlier, finished run
            for name in (HISTORY_CSV, HISTORY_JSON):
                (model_dir / name).unlink(missing_ok=True)
        csv_path = model_dir / HISTORY_CSV
    else:
        scratch = Path(tempfile.mkdtemp(prefix="qat_worker_"))
        csv_path = scratch / HISTORY_CSV
    # History before the backup: a crash in between redoes the epoch and replaces its row.
    callbacks = [
        _history_callback(tf_keras, json_path if chief else None, rows),
        tf_keras.callbacks.CSVLogger(str(csv_path), append=resuming),
        tf_keras.callbacks.BackupAndRestore(backup_dir=str(backup_dir)),
    ]
    model.fit(
        train_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
        validation_data=eval_data, callbacks=callbacks, verbose=2 if chief else 0,
    )
    # Every worker saves (the variables are read collectively); all but the chief to a scratch
    # directory they delete again.
    save_qat_model(model, (model_dir if chief else scratch) / SAVED_MODEL_DIR)
    # BackupAndRestore empties its directory after a successful fit (each worker its part).
    with contextlib.suppress(OSError):
        backup_dir.rmdir()
    if chief:
        print(f"wrote {model_dir / SAVED_MODEL_DIR}", flush=True)
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return rows
