"""The training loop: one custom loop for every tf.distribute strategy.

Keras 3 `fit` is broken under `MultiWorkerMirroredStrategy` (keras-team/keras#20585), so the
trainer runs its own loop (`strategy.run` over a `tf.function` step) with the Keras 3 model and
optimizer, for one device, mirrored, multi-worker and TPU alike. A run lives in `model_dir`:

- `checkpoints/`: `tf.train.Checkpoint` of model, optimizer and progress, every epoch (and every
  `checkpoint_every_steps`); a restarted run resumes from the latest one;
- `history.json`, `history.csv`: one row per finished epoch (written before the epoch's
  checkpoint, so a crash never loses or repeats an epoch);
- `tensorboard/`: scalars; `config.json`: the run's config;
- at the end `model.keras` (softmax outputs, preprocessing included) and `model.weights.h5`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from ghostnet_keras.atomic_write import write_atomically
from ghostnet_keras.layers.batch_norm import with_fused_batch_norm
from ghostnet_keras.training import datasets
from ghostnet_keras.training import input_pipeline as data
from ghostnet_keras.training.configs import TrainConfig
from ghostnet_keras.training.models import build_training_model
from ghostnet_keras.training.optimization import decayed_variables, make_optimizer


@dataclasses.dataclass(frozen=True)
class DataSource:
    """Where the data comes from (the non-recipe part of a run's input)."""

    data_dir: str | None = None
    manual_dir: str | None = None
    folder: str | None = None
    download: bool = False


def _format_eta(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run's files (the chief, or the only process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


class Trainer:
    """Trains `config`'s model on `strategy`, checkpointing into `model_dir`."""

    def __init__(
        self,
        config: TrainConfig,
        strategy: tf.distribute.Strategy,
        model_dir: str | os.PathLike,
        source: DataSource = DataSource(),
        jit_compile: bool = False,
        deterministic: bool = False,
        max_steps: int | None = None,
    ) -> None:
        self.config = config
        self.strategy = strategy
        self.model_dir = Path(model_dir)
        self.source = source
        self.jit_compile = jit_compile
        self.deterministic = deterministic
        self.max_steps = max_steps  # stop early after this many steps in this process (tests)
        self.chief = is_chief(strategy)
        self.info = datasets.dataset_info(
            config.dataset, data_dir=source.data_dir, manual_dir=source.manual_dir,
            folder=source.folder, download=source.download,
        )
        per_epoch = self.info.num_examples[self.info.train_split] // config.global_batch_size
        self.steps_per_epoch = config.steps_per_epoch or per_epoch
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"{config.dataset!r} has {self.info.num_examples[self.info.train_split]} "
                f"training examples, fewer than one global batch of {config.global_batch_size}."
            )
        with strategy.scope():
            # Trained with TF's fused batch norm, saved with the built-in layer (`_finish`).
            # Both models are built in the scope: under MultiWorkerMirroredStrategy only
            # variables created there start from the chief's values, and the copy takes the
            # original's weights.
            self.model = with_fused_batch_norm(
                build_training_model(config, self.info.num_classes, classifier_activation=None)
            )
            optimizer = make_optimizer(config, self.steps_per_epoch)
            if keras.mixed_precision.global_policy().name == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.optimizer.build(self.model.trainable_variables)
        # Host-side progress counters (not replicated).
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        self.step_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        self.decayed = {id(v) for v in decayed_variables(self.model)}
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, epoch=self.epoch,
            step_in_epoch=self.step_in_epoch,
        )
        checkpoint_dir = self.model_dir / "checkpoints"
        if not self.chief:  # other workers write to a scratch dir they delete again
            task = strategy.cluster_resolver
            checkpoint_dir = self.model_dir / ".workers" / f"{task.task_type}_{task.task_id}"
        self.manager = tf.train.CheckpointManager(self.checkpoint, checkpoint_dir, max_to_keep=3)
        self.train_step = self._make_train_step()
        self._eval_step = self._make_eval_step()

    # ----------------------------------------------------------------------------- steps
    def _per_example_loss(self, labels: Any, logits: Any, smoothing: float) -> Any:
        one_hot = tf.one_hot(labels, self.info.num_classes)
        loss = keras.losses.categorical_crossentropy(
            one_hot, tf.cast(logits, tf.float32), from_logits=True, label_smoothing=smoothing
        )
        return loss

    @staticmethod
    def _counts(labels: Any, logits: Any) -> tuple[Any, Any]:
        labels = tf.cast(labels, tf.int32)
        top1 = tf.reduce_sum(tf.cast(tf.equal(tf.argmax(logits, -1, tf.int32), labels),
                                     tf.float32))
        k = min(5, logits.shape[-1])
        top5 = tf.reduce_sum(tf.cast(tf.nn.in_top_k(labels, tf.cast(logits, tf.float32), k),
                                     tf.float32))
        return top1, top5

    def _make_train_step(self) -> Any:
        config, model, optimizer = self.config, self.model, self.optimizer
        global_batch = config.global_batch_size

        def replica_step(images: Any, labels: Any) -> tuple[Any, ...]:
            with tf.GradientTape() as tape:
                logits = model(images, training=True)
                per_example = self._per_example_loss(labels, logits, config.label_smoothing)
                loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
            variables = model.trainable_variables
            grads = tape.gradient(scaled, variables)
            if config.weight_decay:  # L2 (PyTorch convention: grad += wd * w) on kernels only
                scale = optimizer.scale_loss(1.0) if hasattr(optimizer, "scale_loss") else 1.0
                grads = [
                    g + config.weight_decay * scale * tf.cast(v, g.dtype)
                    / self.strategy.num_replicas_in_sync
                    if id(v) in self.decayed else g
                    for g, v in zip(grads, variables, strict=True)
                ]
            optimizer.apply_gradients(zip(grads, variables, strict=True))
            top1, top5 = self._counts(labels, logits)
            return tf.reduce_sum(per_example), top1, top5, tf.cast(tf.size(labels), tf.float32)

        compiled = tf.function(replica_step, jit_compile=self.jit_compile or None)

        @tf.function
        def train_step(iterator: Any) -> Any:
            images, labels = next(iterator)
            results = self.strategy.run(compiled, args=(images, labels))
            return [self.strategy.reduce("SUM", r, axis=None) for r in results]

        return train_step

    def _make_eval_step(self) -> Any:
        """Evaluation runs in every process on the whole split, outside `strategy.run`.

        Distributed evaluation would hand some replicas empty final batches (and padding them
        needs masks); the eval split is small next to training, and every process holds the
        same weights, so each evaluates it locally and exactly.
        """
        model = self.model

        @tf.function
        def eval_step(images: Any, labels: Any) -> Any:
            logits = model(images, training=False)
            loss = tf.reduce_sum(self._per_example_loss(labels, logits, 0.0))
            top1, top5 = self._counts(labels, logits)
            return loss, top1, top5, tf.cast(tf.size(labels), tf.float32)

        return eval_step

    # ------------------------------------------------------------------------------ data
    def _dataset(self, split: str, training: bool, epoch: int, skip: int) -> Any:
        config, source = self.config, self.source

        def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
            dataset = data.build_dataset(
                config.dataset, split, image_size=config.image_size,
                batch_size=context.get_per_replica_batch_size(config.global_batch_size),
                training=training, data_dir=source.data_dir, manual_dir=source.manual_dir,
                folder=source.folder, download=source.download, input_context=context,
                deterministic=self.deterministic, seed=config.seed + epoch,
                repeat=training, augmentation=config.augmentation,
            )
            return dataset.skip(skip) if skip else dataset

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    # ------------------------------------------------------------------------------ run
    def evaluate(self) -> dict[str, float]:
        """Loss, top-1 and top-5 accuracy on the eval split."""
        config, source = self.config, self.source
        batches = data.build_dataset(
            config.dataset, self.info.eval_split, image_size=config.image_size,
            batch_size=config.global_batch_size, training=False, data_dir=source.data_dir,
            manual_dir=source.manual_dir, folder=source.folder, download=source.download,
        )
        totals = [0.0, 0.0, 0.0, 0.0]
        for images, labels in batches:
            step = self._eval_step(images, labels)
            totals = [t + float(v) for t, v in zip(totals, step, strict=True)]
        loss, top1, top5, count = totals
        count = max(count, 1.0)
        return {"val_loss": loss / count, "val_accuracy": top1 / count,
                "val_top5_accuracy": top5 / count}

    def _history_path(self) -> Path:
        return self.model_dir / "history.json"

    def _load_history(self, completed_epochs: int) -> list[dict]:
        path = self._history_path()
        if not path.exists():
            return []
        return [row for row in json.loads(path.read_text()) if row["epoch"] < completed_epochs]

    def _write_history(self, history: list[dict]) -> None:
        write_atomically({self._history_path(): json.dumps(history, indent=2) + "\n"})
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
        write_atomically({self.model_dir / "history.csv": buffer.getvalue()})

    def _log(self, message: str) -> None:
        if self.chief:
            print(message, flush=True)

    def train(self) -> list[dict]:
        """Runs (or resumes) the training and returns the per-epoch history."""
        config = self.config
        self.model_dir.mkdir(parents=True, exist_ok=True)
        if self.manager.latest_checkpoint:
            self.checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            self._log(f"resumed from {self.manager.latest_checkpoint}: epoch "
                      f"{int(self.epoch) + 1}, step {int(self.step_in_epoch)}")
        if self.chief:
            write_atomically({self.model_dir / "config.json": config.to_json() + "\n"})
        history = self._load_history(int(self.epoch))
        writer = tf.summary.create_file_writer(str(self.model_dir / "tensorboard")) \
            if self.chief else tf.summary.create_noop_writer()
        steps_done_here = 0
        total_steps = config.epochs * self.steps_per_epoch
        run_start = time.perf_counter()
        while int(self.epoch) < config.epochs:
            epoch = int(self.epoch)
            start_step = int(self.step_in_epoch)
            iterator = iter(self._dataset(self.info.train_split, True, epoch, start_step))
            totals = [0.0, 0.0, 0.0, 0.0]
            epoch_start = time.perf_counter()
            for step in range(start_step, self.steps_per_epoch):
                results = self.train_step(iterator)
                totals = [t + float(v) for t, v in zip(totals, results, strict=True)]
                steps_done_here += 1
                self.step_in_epoch.assign(step + 1)
                elapsed = time.perf_counter() - run_start
                if (step + 1) % config.log_every_steps == 0 or step + 1 == self.steps_per_epoch:
                    remaining = total_steps - (epoch * self.steps_per_epoch + step + 1)
                    self._log(
                        f"epoch {epoch + 1}/{config.epochs} step {step + 1}/"
                        f"{self.steps_per_epoch} loss {totals[0] / totals[3]:.4f} "
                        f"acc {totals[1] / totals[3]:.4f} "
                        f"{totals[3] / (time.perf_counter() - epoch_start):.1f} img/s "
                        f"ETA {_format_eta(elapsed / steps_done_here * remaining)}"
                    )
                if config.checkpoint_every_steps and (step + 1) % config.checkpoint_every_steps \
                        == 0 and step + 1 < self.steps_per_epoch:
                    self.manager.save(checkpoint_number=self.optimizer.iterations)
                if self.max_steps and steps_done_here >= self.max_steps:
                    self.manager.save(checkpoint_number=self.optimizer.iterations)
                    return history
            seconds = time.perf_counter() - epoch_start
            row = {
                "epoch": epoch,
                "loss": totals[0] / max(totals[3], 1),
                "accuracy": totals[1] / max(totals[3], 1),
                "learning_rate": float(self.optimizer.learning_rate),
                "images_per_s": totals[3] / seconds,
                "seconds": seconds,
                **self.evaluate(),
            }
            history.append(row)
            self._log(
                f"epoch {epoch + 1}/{config.epochs}: loss {row['loss']:.4f} acc "
                f"{row['accuracy']:.4f} val_loss {row['val_loss']:.4f} val_acc "
                f"{row['val_accuracy']:.4f} ({seconds:.0f} s)"
            )
            with writer.as_default(step=epoch + 1):
                for key, value in row.items():
                    if key != "epoch":
                        tf.summary.scalar(key, value)
            if self.chief:  # history first: a crash before the checkpoint redoes the epoch
                self._write_history(history)
            self.epoch.assign(epoch + 1)
            self.step_in_epoch.assign(0)
            self.manager.save(checkpoint_number=self.optimizer.iterations)
        self._finish()
        return history

    def _finish(self) -> None:
        """Writes the final `.keras` model (softmax outputs) and `.weights.h5`."""
        if self.config.ema_decay:
            self.optimizer.finalize_variable_values(self.model.trainable_variables)
        if not self.chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)
            return
        final = build_training_model(
            self.config, self.info.num_classes, classifier_activation="softmax"
        )
        final.set_weights(self.model.get_weights())
        from ghostnet_keras.weights.loading import write_weights_atomically

        write_weights_atomically(final, self.model_dir / "model.keras")
        write_weights_atomically(final, self.model_dir / "model.weights.h5")
        self._log(f"wrote {self.model_dir / 'model.keras'} and model.weights.h5")
