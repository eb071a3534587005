#!/usr/bin/env bash
# Makes the MediaPipe client environment: a venv (default .venv-mediapipe at the repo root) with
# mediapipe pinned, used by ghostnet_keras.tflite.mediapipe to run tflite/mediapipe_client.py.
#
# Why its own venv: every mediapipe from 0.10.30 on pins absl-py~=2.3 while
# tensorflow-model-optimization 0.8.1 (the project's `qat` extra) pins absl-py~=1.2, so the two
# cannot share the project's environment. The client needs neither TensorFlow nor this package,
# which also makes it an independent check of the exported .tflite files.
#
# MediaPipe's native library links libEGL.so.1 and libGLESv2.so.2 (Debian: libegl1, libgles2).
#
# Idempotent: a second run only checks the stamp and returns at once.
# Environment: MEDIAPIPE_VENV (venv path), PYTHON (interpreter for the venv, default python3),
# MEDIAPIPE_VERSION (default 1.2.3). pip's own variables (PIP_INDEX_URL, PIP_FIND_LINKS) apply.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${MEDIAPIPE_VENV:-$repo_dir/.venv-mediapipe}"
python="${PYTHON:-python3}"
version="${MEDIAPIPE_VERSION:-1.2.3}"
stamp="$venv/.installed-mediapipe-$version"

fail() {
    echo "make_mediapipe_venv.sh: error: $*" >&2
    exit 1
}

if [[ -f "$stamp" && -x "$venv/bin/python" ]]; then
    exit 0
fi

missing=()
for lib in libEGL.so.1 libGLESv2.so.2; do
    if ! ldconfig -p 2>/dev/null | grep -q "$lib"; then
        missing+=("$lib")
    fi
done
if ((${#missing[@]})); then
    fail "mediapipe needs ${missing[*]} (Debian/Ubuntu packages libegl1 and libgles2):
    apt-get install --no-install-recommends libegl1 libgles2"
fi

command -v "$python" >/dev/null || fail "no Python interpreter '$python' (set PYTHON=...)."
if [[ ! -x "$venv/bin/python" ]]; then
    echo "make_mediapipe_venv.sh: creating $venv" >&2
    "$python" -m venv "$venv" || fail "'$python -m venv $venv' failed (Debian: apt-get install python3-venv)."
fi
echo "make_mediapipe_venv.sh: installing mediapipe==$version into $venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "mediapipe==$version" \
    || fail "pip could not install mediapipe==$version into $venv (is PyPI reachable?)."
"$venv/bin/python" - <<'PY' || fail "mediapipe is installed in $venv but 'mediapipe.tasks.python.vision' does not import (see above)."
from mediapipe.tasks.python import vision  # noqa: F401
PY
touch "$stamp"
echo "make_mediapipe_venv.sh: ready: $venv/bin/python" >&2
