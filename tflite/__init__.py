"""TFLite / LiteRT export of GhostNet: conversion, op inventory, GPU check and benchmarks.

Modules (importing the package imports neither TensorFlow nor LiteRT):

- `ghostnet_keras.tflite.convert`: `convert(model, mode, representative_data=None, int8_io=False, *,
  batch_size=1) -> bytes` for modes `fp32`, `fp16`, `dynamic`, `int8`, `qat_int8`;
  `verify_full_integer` / `float_compute_ops` (the int8 check), representative-data sources
  (`synthetic_images`, `folder_images`, `quickstart_images`) and the
  `python -m ghostnet_keras.tflite.convert` command line (writes `.tflite`, `labels.txt`, `.json`
  sidecar).
- `ghostnet_keras.tflite.inventory`: `read_model`, `op_inventory`, `gpu_compatibility_issues`,
  `gpu_unsupported_ops` (the wheels' GPU-compatibility analyzer is a no-op), and
  `python -m ghostnet_keras.tflite.inventory`.
- `ghostnet_keras.tflite.gpu_supported_ops`: the checked-in GPU delegate op lists with their
  sources.
- `ghostnet_keras.tflite.benchmark`: `python -m ghostnet_keras.tflite.benchmark`, LiteRT latency of
  GhostNet vs MobileNetV3 (table, JSON, latency-vs-MACs plot, optional per-op profile).
- `tflite/android/run_benchmark.sh`: the official `benchmark_model` on a phone over adb.
"""

__all__ = ["benchmark", "convert", "gpu_supported_ops", "inventory"]
