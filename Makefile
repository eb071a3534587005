# `make main` and `make test` each set themselves up from a fresh clone (a venv in .venv).
# `make main` trains the quickstart model, runs QAT, exports TFLite and SavedModel, evaluates
# and benchmarks every format (resumable: rerun to continue); `make test` runs ruff + pytest.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,train,qat,tflite,serving
OUTPUT_DIR ?= runs/main
# pytest-xdist workers (one module per worker, so module fixtures are built once).
TEST_WORKERS ?= 2

.PHONY: main test lint clean software-gpu mediapipe-venv

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
	$(PY) -m ghostnet_keras.training.pipeline --output_dir $(OUTPUT_DIR)

test: $(VENV)/.installed-$(EXTRAS)
	-tools/install_software_gpu.sh
	-tools/make_mediapipe_venv.sh
	$(PY) -m ruff check .
	$(PY) -m pytest -q -ra -n $(TEST_WORKERS) --dist loadfile

# LiteRT's GPU accelerator on a machine without a GPU: Mesa's lavapipe 25 in a cache folder
# (nothing installed system-wide; on a machine with a GPU nothing is installed).
software-gpu:
	tools/install_software_gpu.sh

# MediaPipe (the ImageClassifier client of the .tflite tests) in its own venv: its absl-py pin
# conflicts with tfmot's. Idempotent; needs libEGL.so.1 / libGLESv2.so.2 (libegl1, libgles2).
mediapipe-venv:
	tools/make_mediapipe_venv.sh

clean:
	rm -rf $(VENV) .venv-mediapipe runs .pytest_cache
