"""Runs one job on the Keras backend of its own interpreter, for tests/test_backends.py.

    KERAS_BACKEND=jax .venv-jax/bin/python -m tests.backend_worker save OUT_DIR
    KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 \\
        .venv-jax/bin/python -m tests.backend_worker data_parallel OUT_DIR

`save` builds `small_model()` with `fixed_weights()` (the same numbers on every backend), saves
it as `OUT_DIR/model.keras` and its outputs on `probe_images()` as `OUT_DIR/outputs.npy`, so a
test on another backend can load the file and compare. `data_parallel` fine-tunes with
`keras.distribution.DataParallel` over the local devices and writes `OUT_DIR/result.json`.
Imports no TensorFlow (the backend venvs have none).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np

SMALL_SHAPE = (32, 32, 3)
SMALL_CLASSES = 10


def small_model() -> keras.Model:
    """A small GhostNet (width 0.25, 32 x 32, 10 logits) for quick cross-backend checks."""
    from ghostnet_keras import GhostNet

    return GhostNet(width=0.25, input_shape=SMALL_SHAPE, classes=SMALL_CLASSES,
                    classifier_activation=None, dropout_rate=0.0, name="small_ghostnet")


def fixed_weights(model: keras.Model, seed: int = 0) -> None:
    """Sets every weight from a NumPy generator (backend initialisers differ), keeping BN sane."""
    rng = np.random.default_rng(seed)
    values = []
    for variable in model.weights:
        shape = tuple(variable.shape)
        path = variable.path
        if path.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, shape)
        elif path.endswith("gamma"):
            value = rng.uniform(0.8, 1.2, shape)
        else:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            value = rng.normal(0.0, 1.0 / np.sqrt(max(fan_in, 1)), shape)
        values.append(value.astype(np.float32))
    model.set_weights(values)


def probe_images(batch: int = 3) -> np.ndarray:
    return np.random.default_rng(7).uniform(0, 255, (batch, *SMALL_SHAPE)).astype(np.float32)


def learnable_batches(count: int, batch: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is which colour channel is brightest: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count * batch)
    images = rng.uniform(0, 100, (count * batch, *SMALL_SHAPE))
    images[np.arange(len(labels)), :, :, labels] += 155
    return images.astype(np.float32), labels.astype(np.int32)


def save(out_dir: Path) -> None:
    model = small_model()
    fixed_weights(model)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / "model.keras")
    np.save(out_dir / "outputs.npy", keras.ops.convert_to_numpy(model(probe_images())))


def data_parallel(out_dir: Path) -> None:
    import jax

    devices = jax.devices()
    distribution = keras.distribution.DataParallel(devices=devices)
    keras.distribution.set_distribution(distribution)
    keras.utils.set_random_seed(0)
    model = small_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    images, labels = learnable_batches(12)
    history = model.fit(images, labels, batch_size=16, epochs=3, verbose=0, shuffle=False)
    kernel = model.get_layer("stem_conv").kernel
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "result.json").write_text(json.dumps({
        "devices": [str(d) for d in devices],
        "kernel_sharding_devices": len(kernel.value.sharding.device_set),
        "losses": history.history["loss"],
    }))


if __name__ == "__main__":
    job, folder = sys.argv[1], Path(sys.argv[2])
    {"save": save, "data_parallel": data_parallel}[job](folder)
