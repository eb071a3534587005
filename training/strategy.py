"""`--strategy`: the tf.distribute strategy of a run."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily, so that a program can choose TF's CPU kernels first
    import tensorflow as tf

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


def split_cpu(num_devices: int) -> None:
    """Splits the CPU into `num_devices` logical devices (to test mirrored training on CPU).

    Must run before TensorFlow initialises its devices.
    """
    import tensorflow as tf

    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration()] * num_devices
    )


def make_strategy(name: str, tpu: str = "", cpu_devices: int = 0) -> tf.distribute.Strategy:
    """Returns the strategy for `--strategy=name`.

    - `auto`: mirrored over all GPUs when there are several, one device otherwise.
    - `one_device`: the first GPU, else the CPU.
    - `mirrored`: all GPUs; on a machine without GPUs, the logical CPUs (`cpu_devices` > 1).
    - `multi_worker`: `MultiWorkerMirroredStrategy`, cluster from `TF_CONFIG`.
    - `tpu`: `TPUStrategy` on the TPU at `tpu` (a name or `grpc://` address; "" for local).

    Raises:
        ValueError: unknown name, or `multi_worker` without a valid `TF_CONFIG`.
        RuntimeError: no TPU could be reached.
    """
    import tensorflow as tf

    if name not in STRATEGIES:
        raise ValueError(f"Unknown --strategy {name!r}; choose one of {STRATEGIES}.")
    if name == "multi_worker":
        try:
            cluster = json.loads(os.environ["TF_CONFIG"])["cluster"]
        except (KeyError, json.JSONDecodeError) as error:
            raise ValueError(
                "--strategy=multi_worker needs TF_CONFIG, e.g. "
                '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}}'
            ) from error
        if not cluster:
            raise ValueError("TF_CONFIG has an empty cluster.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.OpError, RuntimeError) as error:
            raise RuntimeError(f"No TPU reachable at {tpu or 'local'!r}: {error}") from error
        return tf.distribute.TPUStrategy(resolver)
    if cpu_devices > 1:
        split_cpu(cpu_devices)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
