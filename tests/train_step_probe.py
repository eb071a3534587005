"""One step of the trainer, observed from outside, and the same step computed by hand.

Used by tests/test_training.py; also run as a script, in its own process, because the logical
CPU devices of a two-replica strategy must be set before TensorFlow starts:

    python -m tests.train_step_probe DATA_DIR REPLICAS OUTPUT.npz

The hand computation shares nothing with the trainer but the model builder: a float32 copy of
the model, the label-smoothed cross-entropy written out, the batch split as the replicas see it.
"""

from __future__ import annotations

import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from ghostnet_keras.training.configs import TrainConfig, get_config
from ghostnet_keras.training.loop import DataSource, Trainer
from ghostnet_keras.training.models import build_training_model
from ghostnet_keras.training.optimization import decayed_variables

# Plain SGD (no momentum) at learning rate 1 (base 8.0 x batch 8 / base batch 64), a large
# decay, no dropout: one step is w1 = w0 - (dL/dw + wd * w0) on the decayed kernels,
# w0 - dL/dw elsewhere.
OVERRIDE = ("width=0.25,dropout_rate=0,momentum=0,nesterov=false,warmup_epochs=0,"
            "base_learning_rate=8.0,global_batch_size=8,steps_per_epoch=2,epochs=1,"
            "weight_decay=0.05,"
            "label_smoothing=0.1,log_every_steps=1000")
CLASSES = 10


def probe_config(extra: str = "") -> TrainConfig:
    return get_config("quickstart", OVERRIDE + ("," + extra if extra else ""))


def fixed_batch(config: TrainConfig, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    size = config.image_size
    images = rng.integers(0, 256, (config.global_batch_size, size, size, 3)).astype("float32")
    return images, rng.integers(0, CLASSES, config.global_batch_size).astype("int64")


def distributed_batches(trainer: Trainer, images: np.ndarray, labels: np.ndarray):
    """The batch as the trainer's pipeline hands it out: replica r gets the r-th slice."""
    strategy = trainer.strategy

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        per_replica = context.get_per_replica_batch_size(len(images))
        return tf.data.Dataset.from_tensor_slices((images, labels)).batch(per_replica).repeat()

    return iter(strategy.distribute_datasets_from_function(dataset_fn))


def trainables(model: keras.Model) -> list[np.ndarray]:
    return [np.array(v.numpy(), dtype="float32") for v in model.trainable_variables]


def hand_gradients(
    trainer: Trainer, images: np.ndarray, labels: np.ndarray, replicas: int
) -> list[np.ndarray]:
    """dL/dw of the mean smoothed cross-entropy, each replica's BN seeing only its own slice."""
    config = trainer.config
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        plain = build_training_model(config, CLASSES, classifier_activation=None)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    plain.set_weights(trainer.model.get_weights())
    for mine, theirs in zip(plain.trainable_variables, trainer.model.trainable_variables,
                            strict=True):
        assert tuple(mine.shape) == tuple(theirs.shape), (mine.path, theirs.path)
    smoothing = config.label_smoothing
    total = [np.zeros(v.shape, "float32") for v in plain.trainable_variables]
    for part_images, part_labels in zip(np.split(images, replicas), np.split(labels, replicas),
                                        strict=True):
        target = np.eye(CLASSES, dtype="float32")[part_labels] * (1 - smoothing) + (
            smoothing / CLASSES
        )
        with tf.GradientTape() as tape:
            logits = plain(part_images, training=True)
            loss = -tf.reduce_sum(target * tf.nn.log_softmax(logits)) / len(images)
        for index, grad in enumerate(tape.gradient(loss, plain.trainable_variables)):
            total[index] += grad.numpy()
    return total


def observe_one_step(
    trainer: Trainer, images: np.ndarray, labels: np.ndarray, replicas: int,
    without_decay: Trainer | None = None,
) -> dict[str, object]:
    """Weights before/after one `train_step`, the hand gradient, lr, wd, the decayed mask.

    With `without_decay` (the same trainer with weight_decay=0), also its weights after the
    same step from the same weights: the difference isolates the decay term exactly.
    """
    decayed = {id(v) for v in decayed_variables(trainer.model)}
    before = trainables(trainer.model)
    gradients = hand_gradients(trainer, images, labels, replicas)
    learning_rate = float(trainer.optimizer.learning_rate)
    result = {"before": before, "gradients": gradients, "learning_rate": learning_rate,
              "weight_decay": trainer.config.weight_decay,
              "decayed": [id(v) in decayed for v in trainer.model.trainable_variables]}
    if without_decay is not None:
        without_decay.model.set_weights(trainer.model.get_weights())
        without_decay.train_step(distributed_batches(without_decay, images, labels))
        result["after_without_decay"] = trainables(without_decay.model)
    trainer.train_step(distributed_batches(trainer, images, labels))
    result["after"] = trainables(trainer.model)
    return result


def main(data_dir: str, replicas: str, output: str) -> None:
    count = int(replicas)
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * count
    )
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(count)])
    keras.utils.set_random_seed(0)
    config = probe_config()
    with tempfile.TemporaryDirectory() as model_dir:
        source = DataSource(data_dir=data_dir)
        trainer = Trainer(config, strategy, model_dir, source=source)
        without = Trainer(probe_config("weight_decay=0"), strategy, model_dir, source=source)
        assert strategy.num_replicas_in_sync == count
        result = observe_one_step(trainer, *fixed_batch(config), count, without_decay=without)
    arrays = {"learning_rate": result["learning_rate"], "weight_decay": result["weight_decay"],
              "decayed": np.array(result["decayed"])}
    for key in ("before", "after", "after_without_decay", "gradients"):
        for index, value in enumerate(result[key]):
            arrays[f"{key}_{index}"] = value
    np.savez(output, **arrays)


if __name__ == "__main__":
    main(*sys.argv[1:4])
