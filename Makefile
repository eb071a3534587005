# `make main` and `make test` each set themselves up from a fresh clone (a venv in .venv).
# `make main` trains the quickstart model, runs QAT, exports TFLite and SavedModel, evaluates
# and benchmarks every format (resumable: rerun to continue); `make test` runs ruff + pytest on
# TensorFlow, then the portable tests on JAX (.venv-jax, no TensorFlow). `make test-torch` runs
# the portable tests on PyTorch (.venv-torch: a 5.5 GB CUDA torch wheel, so not part of CI).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,tensorflow,train,qat,tflite,serving,onnx,hub
# The GhostNet version of the main job: ghostnet, ghostnetv2 or ghostnetv3 (`make main MODEL=...`).
MODEL ?= ghostnet
OUTPUT_DIR ?= runs/main$(if $(filter-out ghostnet,$(MODEL)),-$(MODEL))
# pytest-xdist workers (one module per worker, so module fixtures are built once).
TEST_WORKERS ?= 2

# Interpreters of the other backends' venvs, for the cross-backend tests (tests/test_backends.py).
BACKEND_PYTHONS = GHOSTNET_PYTHON_TENSORFLOW=$(abspath $(PY)) \
	GHOSTNET_PYTHON_JAX=$(abspath .venv-jax/bin/python) \
	GHOSTNET_PYTHON_TORCH=$(abspath .venv-torch/bin/python)

.PHONY: main test test-jax test-torch lint clean software-gpu mediapipe-venv arm64-runtime \
	arm64-insn-counter

$(VENV)/.installed-$(EXTRAS): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --editable ".[$(EXTRAS)]"
	touch $@

# The clients the exports are proven with are set up first; where they cannot be (no apt), the
# main job says so in its summary and the tests that need them fail under CI=true.
main: $(VENV)/.installed-$(EXTRAS)
	-tools/install_software_gpu.sh
	-tools/make_mediapipe_venv.sh
	-tools/install_arm64_runtime.sh
	$(PY) -m ghostnet_keras.training.main_job --output_dir $(OUTPUT_DIR) --model $(MODEL)

test: $(VENV)/.installed-$(EXTRAS)
	-tools/install_software_gpu.sh
	-tools/make_mediapipe_venv.sh
	-tools/install_arm64_runtime.sh
	tools/make_backend_venv.sh jax
	$(PY) -m ruff check .
	$(BACKEND_PYTHONS) $(PY) -m pytest -q -ra -n $(TEST_WORKERS) --dist loadfile
	$(MAKE) --no-print-directory test-jax

# The tests marked `portable` on one backend, in its own venv (tools/make_backend_venv.sh).
test-jax test-torch: test-%: $(VENV)/.installed-$(EXTRAS)
	tools/make_backend_venv.sh $*
	$(BACKEND_PYTHONS) KERAS_BACKEND=$* .venv-$*/bin/python -m pytest -q -ra -m portable \
		-n $(TEST_WORKERS) --dist loadfile

# LiteRT's GPU accelerator on a machine without a GPU: Mesa's lavapipe 25 in a cache folder
# (nothing installed system-wide; on a machine with a GPU nothing is installed).
software-gpu:
	tools/install_software_gpu.sh

# MediaPipe (the ImageClassifier client of the .tflite tests) in its own venv: its absl-py pin
# conflicts with tfmot's. Idempotent; needs libEGL.so.1 / libGLESv2.so.2 (libegl1, libgles2).
mediapipe-venv:
	tools/make_mediapipe_venv.sh

# The arm64 builds of LiteRT and MediaPipe (what Android apps run), emulated by qemu-user 10 on
# x86 (an arm64 Python 3.11 sysroot and the aarch64 wheels, in ~/.cache/ghostnet_keras/arm64;
# nothing installed system-wide); on an arm64 host a native venv. Idempotent.
arm64-runtime:
	tools/install_arm64_runtime.sh

# The ARM cost proxy's instruction counter: qemu-user 7.2 and a TCG plugin that counts executed
# arm64 instructions (in ~/.cache/ghostnet_keras/arm64-insn; benchmarks/arm64_instructions.py).
arm64-insn-counter: arm64-runtime
	tools/build_arm64_insn_counter.sh

clean:
	rm -rf $(VENV) .venv-jax .venv-torch .venv-mediapipe runs .pytest_cache
