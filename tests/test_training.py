"""The trainer: recipes, schedules, weight decay, strategies, resume, evaluation."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import ghostnet_keras
from ghostnet_keras.training.configs import RECIPES, get_config
from ghostnet_keras.training.optimization import decayed_variables, learning_rate_schedule

from .fakes import write_fake_ilsvrc_tars

REPO_DIR = Path(__file__).resolve().parents[1]
# A tiny quickstart run: 32 x 32 GhostNet 0.5x, few steps.
TINY = "epochs=2,steps_per_epoch=3,global_batch_size=16,log_every_steps=1"


def _train_command(model_dir: Path, data_dir: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "ghostnet_keras.training.train", f"--model_dir={model_dir}",
            f"--data_dir={data_dir}", *flags]


def _run(command: list[str], env: dict | None = None, timeout: int = 600):
    return subprocess.run(command, cwd=REPO_DIR, capture_output=True, text=True, check=False,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_recipes_and_overrides() -> None:
    imagenet = get_config("imagenet")
    assert (imagenet.global_batch_size, imagenet.learning_rate, imagenet.epochs) == (1024, 0.4, 400)
    assert imagenet.nesterov and imagenet.momentum == 0.9 and imagenet.weight_decay == 4e-5
    assert imagenet.label_smoothing == 0.1 and imagenet.dropout_rate == 0.2
    assert get_config("imagenet", "global_batch_size=256").learning_rate == pytest.approx(0.1)
    cifar = get_config("cifar10", "model=ghost_vgg16,ratio=3,step_boundaries_epochs=1:2")
    assert (cifar.model, cifar.ratio, cifar.step_boundaries_epochs) == ("ghost_vgg16", 3,
                                                                        (1.0, 2.0))
    assert set(RECIPES) == {"imagenet", "cifar10", "quickstart"}


@pytest.mark.parametrize(
    ("recipe", "override", "message"),
    [("nope", "", "Unknown recipe"), ("imagenet", "epochz=3", "Bad --params_override"),
     ("imagenet", "epochs=many", "Bad value for 'epochs'"),
     ("imagenet", "nesterov=maybe", "Bad value for 'nesterov'")],
)
def test_bad_configs(recipe: str, override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_config(recipe, override)


def test_imagenet_schedule_warmup_then_cosine() -> None:
    config = get_config("imagenet")
    steps_per_epoch = 1251  # 1,281,167 images / 1024
    schedule = learning_rate_schedule(config, steps_per_epoch)
    lr = lambda step: float(schedule(step))  # noqa: E731
    warmup = 5 * steps_per_epoch
    assert lr(0) == pytest.approx(0.0, abs=1e-9)
    assert lr(warmup // 2) == pytest.approx(0.2, rel=1e-3)
    assert lr(warmup) == pytest.approx(0.4, rel=1e-4)
    total = 400 * steps_per_epoch
    assert lr((warmup + total) // 2) == pytest.approx(0.2, rel=1e-3)  # cosine midpoint
    assert lr(total) == pytest.approx(0.0, abs=1e-6)
    after = [lr(s) for s in range(warmup, total, 10_000)]
    assert after == sorted(after, reverse=True)


def test_cifar_step_schedule() -> None:
    config = get_config("cifar10")
    schedule = learning_rate_schedule(config, 391)
    assert float(schedule(0)) == pytest.approx(0.1)
    assert float(schedule(82 * 391 + 1)) == pytest.approx(0.01)
    assert float(schedule(123 * 391 + 1)) == pytest.approx(0.001)


def test_weight_decay_applies_to_conv_and_dense_kernels_only() -> None:
    model = ghostnet_keras.GhostNet(width=0.5, input_shape=(32, 32, 3), classes=10)
    decayed = {id(v) for v in decayed_variables(model)}
    for layer in model.layers:
        for variable in layer.trainable_variables:
            is_kernel = variable is getattr(layer, "kernel", None)
            assert (id(variable) in decayed) == is_kernel, (layer.name, variable.path)
    assert id(model.get_layer("block3a_se_reduce_conv").bias) not in decayed
    assert id(model.get_layer("stem_bn").gamma) not in decayed
    assert id(model.get_layer("block3a_ghost1_cheap_dwconv").kernel) in decayed


@pytest.mark.slow
def test_quickstart_short_run_learns(quickstart_dir: str, quickstart_run, tmp_path: Path) -> None:
    from ghostnet_keras.training.loop import DataSource, Trainer

    trainer = Trainer(get_config("quickstart", "epochs=3"), tf.distribute.get_strategy(),
                      tmp_path / "unused", source=DataSource(data_dir=quickstart_dir))
    assert any(isinstance(layer, ghostnet_keras.FusedBatchNormalization)
               for layer in trainer.model.layers)  # trains with the fused kernel
    run, history = quickstart_run  # that recipe, trained (tests/conftest.py)
    assert [row["epoch"] for row in history] == [0, 1, 2]
    # The saved model has the built-in layers only: it loads without ghostnet_keras.
    assert "FusedBatchNormalization" not in json.dumps(
        keras.models.load_model(run / "model.keras").get_config())
    # 500 held-out digits; chance is 10%.
    assert history[-1]["val_accuracy"] >= 0.85, history
    model = keras.models.load_model(run / "model.keras")
    from ghostnet_keras.training.evaluate import evaluate_model

    result = evaluate_model(model, "quickstart", image_size=32, data_dir=quickstart_dir)
    assert result["examples"] == 500
    assert result["top1"] == pytest.approx(history[-1]["val_accuracy"], abs=1e-6)
    for name in ("history.json", "history.csv", "config.json", "model.weights.h5"):
        assert (run / name).exists()
    assert list((run / "tensorboard").iterdir())


@pytest.mark.slow
def test_mirrored_strategy_on_two_cpu_devices(quickstart_dir: str, tmp_path: Path) -> None:
    result = _run(_train_command(tmp_path / "run", quickstart_dir, "--strategy=mirrored",
                                 "--cpu_devices=2", f"--params_override={TINY}"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 replica(s)" in result.stdout
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1]
    assert all(np.isfinite(row["loss"]) for row in history)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_mirrored_two_local_workers(quickstart_dir: str, tmp_path: Path) -> None:
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    model_dir = tmp_path / "run"
    # 2 epochs of 2 steps, stopping after step 4: both workers save their last checkpoint.
    override = "epochs=2,steps_per_epoch=2,global_batch_size=16,log_every_steps=1"
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen(
            _train_command(model_dir, quickstart_dir, "--strategy=multi_worker",
                           f"--params_override={override}", "--max_steps=4"),
            cwd=REPO_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    outputs = [p.communicate(timeout=600) for p in processes]
    for process, (_, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    assert "2 replica(s)" in outputs[0][0]
    chief = tf.train.load_checkpoint(str(model_dir / "checkpoints"))
    other = tf.train.load_checkpoint(str(model_dir / ".workers" / "worker_1"))
    # The trainable weights (checkpointed through the optimizer) are identical; BN moving
    # statistics are per worker (each sees its own local batches).
    names = [name for name, _ in tf.train.list_variables(str(model_dir / "checkpoints"))
             if name.startswith("optimizer/_trainable_variables/")]
    assert len(names) == len(ghostnet_keras.GhostNet(width=0.5, classes=10).trainable_weights)
    for name in names:
        np.testing.assert_array_equal(chief.get_tensor(name), other.get_tensor(name), name)
    history = json.loads((model_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0]


@pytest.mark.slow
def test_resume_after_sigkill(quickstart_dir: str, tmp_path: Path) -> None:
    model_dir = tmp_path / "run"
    override = ("epochs=3,steps_per_epoch=4,global_batch_size=16,log_every_steps=1,"
                "checkpoint_every_steps=2")
    command = _train_command(model_dir, quickstart_dir, f"--params_override={override}")
    process = subprocess.Popen(command, cwd=REPO_DIR, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    # the run is finite: either a checkpoint appears or the process ends (a failure)
    while not (model_dir / "checkpoints" / "checkpoint").exists():
        assert process.poll() is None, "the run ended before its first checkpoint"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    result = _run(command)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stdout
    history = json.loads((model_dir / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert (model_dir / "model.keras").exists()


def test_missing_model_dir_flag_and_bad_strategy(tmp_path: Path) -> None:
    result = _run([sys.executable, "-m", "ghostnet_keras.training.train"], timeout=120)
    assert result.returncode != 0 and "model_dir" in result.stderr
    from ghostnet_keras.training.strategy import make_strategy

    with pytest.raises(ValueError, match="TF_CONFIG"):
        os.environ.pop("TF_CONFIG", None)
        make_strategy("multi_worker")
    with pytest.raises(ValueError, match="Unknown --strategy"):
        make_strategy("parameter_server")


@pytest.mark.slow
def test_evaluate_end_to_end_on_fake_ilsvrc_tars(tmp_path: Path) -> None:
    manual = tmp_path / "manual"
    write_fake_ilsvrc_tars(manual)
    result = _run([
        sys.executable, "-m", "ghostnet_keras.training.evaluate", "--width=0.5", "--image_size=64",
        f"--weights={_save_random_ghostnet(tmp_path)}", "--batch_size=2",
        f"--manual_dir={manual}", f"--data_dir={tmp_path / 'tfds'}",
    ])
    assert result.returncode == 0, result.stderr[-3000:]
    scores = json.loads(result.stdout.strip().splitlines()[-1])
    assert scores["examples"] == 3
    assert 0.0 <= scores["top1"] <= scores["top5"] <= 1.0


def _save_random_ghostnet(tmp_path: Path) -> Path:
    path = tmp_path / "ghostnet_050.weights.h5"
    ghostnet_keras.GhostNet(width=0.5, input_shape=(None, None, 3)).save_weights(path)
    return path


# --------------------------------------------------------------------------------------------
# The step's arithmetic: weight decay across replicas, loss scaling, EMA (tests/train_step_probe)
# --------------------------------------------------------------------------------------------


def _assert_one_l2_term_and_the_mean_loss_gradient(step: dict) -> None:
    """One SGD step at lr 1: w1 = w0 - (dL/dw + wd * w0) on the decayed kernels only.

    The decay term is isolated exactly by the same step with weight_decay=0 from the same
    weights: it must be wd * w0 on the decayed kernels (a decay summed over replicas, or not
    unscaled, would be 2x or 0.5x off) and 0 on everything else. The loss gradient is checked
    against the hand gradient of the global-batch mean; with 4 images per replica the batch
    norms amplify float32 noise to ~1e-3 of the largest gradient, while an average over the
    wrong batch size would be off by 2x.
    """
    rate, decay = step["learning_rate"], step["weight_decay"]
    assert sum(step["decayed"]) > 10 and not all(step["decayed"])
    for index, (before, after, plain, grad, decayed) in enumerate(zip(
        step["before"], step["after"], step["after_without_decay"], step["gradients"],
        step["decayed"], strict=True,
    )):
        expected = decay * before if decayed else np.zeros_like(before)
        np.testing.assert_allclose((plain - after) / rate, expected, rtol=0, atol=1e-5,
                                   err_msg=f"decay term of variable {index}")
        np.testing.assert_allclose((before - plain) / rate, grad, rtol=0,
                                   atol=1e-2 * max(1.0, float(np.abs(grad).max())),
                                   err_msg=f"loss gradient of variable {index}")


@pytest.mark.slow
@pytest.mark.parametrize("replicas", [1, 2])
def test_weight_decay_is_one_l2_term_whatever_the_replica_count(
    quickstart_dir: str, tmp_path: Path, replicas: int
) -> None:
    output = tmp_path / "step.npz"
    result = _run([sys.executable, "-m", "tests.train_step_probe", quickstart_dir,
                   str(replicas), str(output)])
    assert result.returncode == 0, result.stderr[-3000:]
    saved = np.load(output)
    count = len(saved["decayed"])
    step = {key: [saved[f"{key}_{i}"] for i in range(count)]
            for key in ("before", "after", "after_without_decay", "gradients")}
    step.update(learning_rate=float(saved["learning_rate"]),
                weight_decay=float(saved["weight_decay"]), decayed=list(saved["decayed"]))
    _assert_one_l2_term_and_the_mean_loss_gradient(step)


@pytest.mark.slow
def test_mixed_float16_unscales_gradients_and_skips_an_overflow_step(
    quickstart_dir: str, tmp_path: Path
) -> None:
    from ghostnet_keras.training.loop import DataSource, Trainer

    from .train_step_probe import (
        distributed_batches,
        fixed_batch,
        observe_one_step,
        probe_config,
        trainables,
    )

    keras.mixed_precision.set_global_policy("mixed_float16")  # conftest restores float32
    source, strategy = DataSource(data_dir=quickstart_dir), tf.distribute.get_strategy()
    config = probe_config()
    trainer = Trainer(config, strategy, tmp_path / "a", source=source)
    without = Trainer(probe_config("weight_decay=0"), strategy, tmp_path / "b", source=source)
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
    # The initial scale (2**15) overflows float16 on this batch and the first steps would be
    # skipped; start both where a step applies (a gradient left scaled would be 256x off).
    scale = 2.0**8
    for optimizer in (trainer.optimizer, without.optimizer):
        optimizer.dynamic_scale.assign(scale)
    step = observe_one_step(trainer, *fixed_batch(config), 1, without_decay=without)
    assert float(trainer.optimizer.dynamic_scale) == float(without.optimizer.dynamic_scale) \
        == scale  # neither step overflowed
    for index, (before, after, plain, decayed) in enumerate(zip(
        step["before"], step["after"], step["after_without_decay"], step["decayed"], strict=True,
    )):
        # The decay term is added to the scaled gradient, so it is scaled too, then unscaled.
        expected = config.weight_decay * before if decayed else np.zeros_like(before)
        np.testing.assert_allclose(plain - after, expected, rtol=0, atol=1e-4,
                                   err_msg=f"decay term of variable {index}")
    # The unscaled update against the float32 hand gradient, as whole vectors: float16
    # activations (and batch norm over 8 images) leave tens of percent of noise on single
    # elements (measured: cosine 0.94, norm ratio 1.05), but direction and size must agree;
    # a scale left in would be 256x.
    update = np.concatenate([(b - p).ravel() for b, p in
                             zip(step["before"], step["after_without_decay"], strict=True)])
    hand = np.concatenate([g.ravel() for g in step["gradients"]])
    cosine = update @ hand / np.linalg.norm(update) / np.linalg.norm(hand)
    ratio = np.linalg.norm(update) / np.linalg.norm(hand)
    assert cosine > 0.9 and 0.8 < ratio < 1.25, (cosine, ratio)
    # An overflowing batch (1e6 is inf in float16): no weight moves, the scale halves.
    images, labels = fixed_batch(config, seed=1)
    before, scale = trainables(trainer.model), float(trainer.optimizer.dynamic_scale)
    trainer.train_step(distributed_batches(trainer, np.full_like(images, 1e6), labels))
    for old, new in zip(before, trainables(trainer.model), strict=True):
        np.testing.assert_array_equal(old, new)
    assert float(trainer.optimizer.dynamic_scale) == scale / 2
    # ...and the next finite batch trains again.
    trainer.train_step(distributed_batches(trainer, images, labels))
    assert any(not np.array_equal(old, new)
               for old, new in zip(before, trainables(trainer.model), strict=True))


@pytest.mark.slow
def test_ema_weights_are_the_exponential_average_of_the_steps(
    quickstart_dir: str, tmp_path: Path
) -> None:
    from ghostnet_keras.training.loop import DataSource, Trainer

    from .train_step_probe import probe_config, trainables

    decay = 0.5
    config = probe_config(f"ema_decay={decay},base_learning_rate=0.8,steps_per_epoch=3")
    trainer = Trainer(config, tf.distribute.get_strategy(), tmp_path / "run",
                      source=DataSource(data_dir=quickstart_dir))
    after_each_step = []
    step = trainer.train_step

    def observed_step(iterator):
        results = step(iterator)
        after_each_step.append(trainables(trainer.model))
        return results

    trainer.train_step = observed_step
    trainer.train()
    assert len(after_each_step) == 3
    # Keras' EMA starts at the first step's weights, then ema = d * ema + (1 - d) * w.
    average = after_each_step[0]
    for weights in after_each_step[1:]:
        average = [decay * a + (1 - decay) * w for a, w in zip(average, weights, strict=True)]
    saved = keras.models.load_model(tmp_path / "run" / "model.keras")
    final = [np.asarray(v) for v in saved.trainable_weights]
    assert max(float(np.abs(a - w).max()) for a, w in
               zip(average, after_each_step[-1], strict=True)) > 1e-3  # EMA != last weights
    for index, (got, expected) in enumerate(zip(final, average, strict=True)):
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6, err_msg=f"variable {index}")
