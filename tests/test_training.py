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
from ghostnet_keras.training import data
from ghostnet_keras.training.configs import RECIPES, get_config
from ghostnet_keras.training.optimization import decayed_variables, learning_rate_schedule

from .fakes import write_fake_ilsvrc_tars

REPO_DIR = Path(__file__).resolve().parents[1]
# A tiny quickstart run: 32 x 32 GhostNet 0.5x, few steps.
TINY = "epochs=2,steps_per_epoch=3,global_batch_size=16,log_every_steps=1"


@pytest.fixture(scope="session")
def quickstart_dir(tmp_path_factory) -> str:
    """A tensorflow-datasets dir with the quickstart digits prepared once for the session."""
    path = str(tmp_path_factory.mktemp("tfds"))
    data.dataset_info("quickstart", data_dir=path)
    return path


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
def test_quickstart_short_run_learns(quickstart_dir: str, tmp_path: Path) -> None:
    from ghostnet_keras.training.loop import DataSource, Trainer

    config = get_config("quickstart", "epochs=3,log_every_steps=1000")
    trainer = Trainer(config, tf.distribute.get_strategy(), tmp_path / "run",
                      source=DataSource(data_dir=quickstart_dir))
    assert any(isinstance(layer, ghostnet_keras.FusedBatchNormalization)
               for layer in trainer.model.layers)  # trains with the fused kernel
    history = trainer.train()
    assert [row["epoch"] for row in history] == [0, 1, 2]
    # The saved model has the built-in layers only: it loads without ghostnet_keras.
    assert "FusedBatchNormalization" not in json.dumps(
        keras.models.load_model(tmp_path / "run" / "model.keras").get_config())
    # 500 held-out digits; chance is 10%.
    assert history[-1]["val_accuracy"] >= 0.85, history
    model = keras.models.load_model(tmp_path / "run" / "model.keras")
    from ghostnet_keras.training.evaluate import evaluate_model

    result = evaluate_model(model, "quickstart", image_size=32, data_dir=quickstart_dir)
    assert result["examples"] == 500
    assert result["top1"] == pytest.approx(history[-1]["val_accuracy"], abs=1e-6)
    for name in ("history.json", "history.csv", "config.json", "model.weights.h5"):
        assert (tmp_path / "run" / name).exists()
    assert list((tmp_path / "run" / "tensorboard").iterdir())


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
    deadline = time.monotonic() + 300
    while not (model_dir / "checkpoints" / "checkpoint").exists():
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
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
