"""TFLite / LiteRT export of GhostNet, checked by the runtimes that consume it.

Library modules (importing the package imports neither TensorFlow nor LiteRT):
`conversion` (Keras -> `.tflite`, five modes, float/uint8/int8 io), `calibration`
(representative images), `verify` (the integer-only check), `metadata` (TFLite Model Metadata
for image classifiers, from the published schema via `flatbuffer_schema`), `sidecar` (JSON
sidecar and labels), `inventory` (ops of a flatbuffer), `surgery` (one model per op), `xnnpack`
(CPU delegate partitioning), `latency` (CPU timing), `gpu` (LiteRT's GPU accelerator: compile
GPU-only, compare with the CPU; the software GPU environment), `mediapipe_runner` (MediaPipe's
ImageClassifier, run in its own venv through `mediapipe_client.py`).

Command lines: `cli.convert` (`ghostnet-tflite-convert`), `cli.inventory`
(`ghostnet-tflite-inventory`), `benchmark` (`ghostnet-tflite-benchmark`; its models in
`benchmark_models`, its tables in `benchmark_report`); `gpu_worker` is the GPU subprocess.
`android/run_benchmark.sh` runs the official `benchmark_model` on a phone.
"""
