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

.PHONY: main test lint clean

$(VENV)/.installed-$(EXTRAS): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --editable ".[$(EXTRAS)]"
	touch $@

main: $(VENV)/.installed-$(EXTRAS)
	$(PY) -m ghostnet_keras.training.pipeline --output_dir $(OUTPUT_DIR)

test: $(VENV)/.installed-$(EXTRAS)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -ra -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) runs .pytest_cache
