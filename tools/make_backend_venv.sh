#!/usr/bin/env bash
# Makes (or refreshes) the virtual environment of one non-TensorFlow Keras backend:
#
#     tools/make_backend_venv.sh jax     # -> .venv-jax   (keras + jax[cpu] + onnx tools + keras-hub, no TF)
#     tools/make_backend_venv.sh torch   # -> .venv-torch (keras + torch, no TF)
#
# The package is installed editable with the backend's extra (setup.cfg) and `dev`; TensorFlow is
# not installed, so the backend test run (`KERAS_BACKEND=jax pytest -m portable`) proves that the
# library works without it. Idempotent: a second run with unchanged setup.cfg / pyproject.toml
# returns at once (a stamp file records what was installed). PYTHON picks the interpreter.
set -euo pipefail
backend="${1:?usage: $0 jax|torch}"
case "$backend" in
  jax) extras="jax,jax-onnx,hub-without-tf,dev" ;;
  torch) extras="torch,onnx,dev" ;;
  *) echo "error: unknown backend '$backend' (expected jax or torch)" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
venv="${BACKEND_VENV:-.venv-$backend}"
stamp="$venv/.installed-$extras"
if [[ -f "$stamp" && "$stamp" -nt setup.cfg && "$stamp" -nt pyproject.toml ]]; then
  exit 0
fi
test -x "$venv/bin/python" || "${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet --editable ".[$extras]"
if [[ "$extras" == *hub-without-tf* ]]; then
  # keras-hub without its tensorflow-text requirement (which pulls TensorFlow); its other
  # requirements are the `hub-without-tf` extra. The version is the `hub` extra's.
  hub_pin="$(grep -m1 -o 'keras-hub\[grain\]==[0-9.]*' setup.cfg | sed 's/\[grain\]//')"
  "$venv/bin/python" -m pip install --quiet --no-deps "$hub_pin"
fi
if "$venv/bin/python" -c "import tensorflow" 2>/dev/null; then
  echo "error: $venv has TensorFlow installed; the $backend backend venv must not" >&2
  exit 1
fi
touch "$stamp"
