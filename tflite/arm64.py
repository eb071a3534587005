"""The exports on the arm64 builds of LiteRT and MediaPipe (what Android apps run) vs x86 LiteRT.

`tools/install_arm64_runtime.sh` (`make arm64-runtime`) puts qemu-aarch64, an arm64 Python 3.11
and the aarch64 wheels of ai-edge-litert, numpy and mediapipe in a cache folder; on an arm64 host
it makes a native venv instead and nothing is emulated. `compare` runs a `.tflite` there on an
emulated CPU (`cortex-a53`: no dotprod, no fp16 arithmetic; `cortex-a76`: both; `max`: every
feature qemu has, i8mm included), so XNNPACK picks the ARM kernels a phone with that core would,
and compares the outputs with the x86 LiteRT's. Emulated time is not speed: it is never measured.

    from ghostnet_keras.tflite import arm64
    result = arm64.compare("m_int8.tflite", images_uint8, cpu="cortex-a53")
    result.max_steps, result.top1_agree, result.top1_decided
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ghostnet_keras.tflite import arm64_worker, mediapipe_runner

WORKER = Path(arm64_worker.__file__)
INSTALL_SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "install_arm64_runtime.sh"
DIR_VARIABLE = "GHOSTNET_ARM64_DIR"
# The cores qemu-aarch64 10 emulates that phones have (and `max`, all of qemu's features).
CPUS = ("cortex-a53", "cortex-a55", "cortex-a57", "cortex-a72", "cortex-a76", "cortex-a710",
        "neoverse-n1", "max")
DEFAULT_CPUS = ("cortex-a53", "cortex-a76", "max")
# ARMv8.0 cores: no LSE atomics. MediaPipe's aarch64 wheel (1.2.3) is built with LSE and stops
# on them ("This binary was compiled with lse enabled"); LiteRT's runs everywhere.
ARMV8_0_CPUS = ("cortex-a53", "cortex-a57", "cortex-a72")
INSTALL_HINT = "run `make arm64-runtime` (tools/install_arm64_runtime.sh) to set it up"


class Arm64UnavailableError(RuntimeError):
    """The arm64 runtime is not set up (or cannot be)."""


class Arm64RunError(RuntimeError):
    """The arm64 LiteRT refused the model, crashed or ran past its timeout."""


def runtime_dir() -> Path:
    """Where `tools/install_arm64_runtime.sh` puts the runtime (same default as the script)."""
    if os.environ.get(DIR_VARIABLE):
        return Path(os.environ[DIR_VARIABLE])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "ghostnet_keras" / "arm64"


def is_native() -> bool:
    """Whether this host is arm64 (the runtime is a native venv, nothing emulated)."""
    return platform.machine().lower() in ("aarch64", "arm64")


def runtime_installed() -> bool:
    return any(runtime_dir().glob("installed-*"))


def ensure_runtime(timeout: float = 1800) -> None:
    """Runs the install script (returns at once when the runtime is there).

    Raises:
        Arm64UnavailableError: the script is missing or failed (its message is included).
    """
    if runtime_installed():
        return
    if not INSTALL_SCRIPT.exists():
        raise Arm64UnavailableError(f"{INSTALL_SCRIPT} not found (it lives in the source "
                                    f"checkout); no arm64 runtime at {runtime_dir()}.")
    env = {**os.environ, DIR_VARIABLE: str(runtime_dir())}
    process = subprocess.run(["bash", str(INSTALL_SCRIPT)], env=env, capture_output=True,
                             text=True, timeout=timeout, check=False)
    if process.returncode != 0 or not runtime_installed():
        raise Arm64UnavailableError(f"{INSTALL_SCRIPT.name} failed (exit {process.returncode}):\n"
                                    f"{(process.stderr or process.stdout).strip()[-4000:]}")


def python_command(cpu: str, emulator: Sequence[str] | None = None,
                   ) -> tuple[list[str], dict[str, str]]:
    """The command prefix and environment of the arm64 Python for `cpu` (ignored when native).

    `emulator` replaces `qemu-aarch64 -cpu <cpu>` (another qemu-aarch64 command that emulates
    `cpu`, e.g. the instruction counter's `count-insns <cpu> <outfile>`); `-L <sysroot>` and the
    Python follow it.

    Raises:
        ValueError: an unknown CPU name.
        Arm64UnavailableError: the runtime is not set up.
    """
    if cpu not in CPUS:
        raise ValueError(f"Unknown arm64 CPU {cpu!r}; choose one of {', '.join(CPUS)}.")
    if not runtime_installed():
        raise Arm64UnavailableError(f"No arm64 runtime in {runtime_dir()}: {INSTALL_HINT}.")
    folder = runtime_dir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHON", "LD_", "QEMU_"))}
    env["PYTHONNOUSERSITE"] = "1"
    if is_native():
        return [str(folder / "venv" / "bin" / "python")], env
    env["PYTHONPATH"] = str(folder / "site")
    sysroot = folder / "sysroot"
    if emulator is None:
        emulator = [str(folder / "qemu" / "qemu-aarch64"), "-cpu", cpu]
    return [*emulator, "-L", str(sysroot), str(sysroot / "usr" / "bin" / "python3.11")], env


def run(model_path: str | os.PathLike, inputs: np.ndarray, cpu: str = "cortex-a76", *,
        timeout: float = 900, emulator: Sequence[str] | None = None,
        environment: dict[str, str] | None = None) -> tuple[list[np.ndarray], dict[str, Any]]:
    """The arm64 LiteRT's outputs for each input (stacked on axis 0) and what it reported.

    Args:
        model_path: a one-input `.tflite` with batch size 1.
        inputs: (N, ...) in the model input's shape (less its batch axis) and dtype.
        cpu: the emulated core, one of `CPUS`.
        timeout: seconds for the emulated process (starting LiteRT takes a few seconds).
        emulator: another emulator command for `cpu` (see `python_command`).
        environment: variables added to the arm64 Python's environment.

    Raises:
        Arm64UnavailableError: no runtime; Arm64RunError: LiteRT failed or timed out.
    """
    command, env = python_command(cpu, emulator)
    env.update(environment or {})
    with tempfile.TemporaryDirectory(prefix="ghostnet_arm64_") as folder:
        np.save(Path(folder) / "inputs.npy", np.ascontiguousarray(inputs))
        output = Path(folder) / "outputs.npz"
        command += [str(WORKER), "--model", str(Path(model_path).resolve()),
                    "--inputs", str(Path(folder) / "inputs.npy"), "--output", str(output)]
        try:
            process = subprocess.run(command, env=env, capture_output=True, text=True,
                                     timeout=timeout, check=False)
        except subprocess.TimeoutExpired as error:
            raise Arm64RunError(f"arm64 LiteRT ({cpu}) on {model_path}: no result within "
                                f"{timeout:.0f} s") from error
        if process.returncode != 0 or not output.exists():
            raise Arm64RunError(f"arm64 LiteRT ({cpu}) failed on {model_path} "
                                f"(exit {process.returncode}):\n{process.stderr.strip()[-4000:]}")
        with np.load(output) as saved:
            outputs = [saved[f"output_{i}"] for i in range(len(saved.files))]
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise Arm64RunError(f"arm64 LiteRT ({cpu}) on {model_path} printed no report:\n"
                            f"{process.stdout.strip()[-2000:]}")
    report = json.loads(lines[-1])
    return outputs, {**report, "cpu": "native" if is_native() else cpu}


@dataclasses.dataclass
class Comparison:
    """arm64 LiteRT against x86 LiteRT on the same inputs (first output; classifier scores)."""

    model: str
    cpu: str
    images: int
    max_abs_diff: float  # in output units (dequantized for a quantized output)
    relative_diff: float  # max_abs_diff / the largest |x86 output|
    max_steps: int | None  # quantized output: largest difference in quantization steps
    outputs_off: int  # outputs that differ at all
    outputs: int
    top1_decided: int  # images whose x86 top-1 wins by more than one step (see `top1`)
    top1_agree: int  # of those, images whose arm64 top-1 is the same
    top1_equal_all: int  # images with the same top-1, decided or not
    arm64: np.ndarray = dataclasses.field(repr=False)  # arm64 outputs, dequantized
    x86: np.ndarray = dataclasses.field(repr=False)
    runtime: dict[str, Any] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self)
        del fields["arm64"], fields["x86"]
        return fields


def output_quantization(model_path: str | os.PathLike) -> tuple[float, int] | None:
    """(scale, zero point) of the first output, None when it is float."""
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_path=str(model_path)).get_output_details()[0]
    scale, zero_point = detail["quantization"]
    return (float(scale), int(zero_point)) if scale else None


def top1(scores: np.ndarray, reference: np.ndarray, margin: float) -> tuple[int, int]:
    """(rows whose reference top-1 wins by more than `margin`, of those with the same top-1).

    A row decided by less (a near-tie) can change its top-1 by a rounding difference that says
    nothing about the runtime, so it is not counted.
    """
    top2 = np.sort(reference, axis=-1)[:, -2:]
    decided = (top2[:, 1] - top2[:, 0]) > margin
    same = scores[decided].argmax(-1) == reference[decided].argmax(-1)
    return int(decided.sum()), int(same.sum())


def compare(model_path: str | os.PathLike, inputs: np.ndarray, cpu: str = "cortex-a76", *,
            timeout: float = 900) -> Comparison:
    """Runs the model on the arm64 LiteRT (`run`) and on this machine's LiteRT; compares.

    Top-1 counts images whose x86 top-1 wins by more than one quantization step (float output:
    by more than twice the largest difference), the ones a one-step rounding cannot flip.
    """
    arm64_raw, runtime = run(model_path, inputs, cpu, timeout=timeout)
    x86_raw = arm64_worker.invoke_each(str(model_path), np.ascontiguousarray(inputs))
    quantization = output_quantization(model_path)
    got, reference = arm64_raw[0], x86_raw[0]
    steps = None
    if quantization is not None:
        scale, zero_point = quantization
        steps = int(np.max(np.abs(got.astype(np.int64) - reference.astype(np.int64))))
        got = (got.astype(np.float64) - zero_point) * scale
        reference = (reference.astype(np.float64) - zero_point) * scale
    else:
        got, reference = got.astype(np.float64), reference.astype(np.float64)
    max_diff = float(np.max(np.abs(got - reference)))
    scores, ref = got.reshape(len(got), -1), reference.reshape(len(reference), -1)
    margin = max(quantization[0] if quantization else 0.0, 2 * max_diff)
    decided, agree = top1(scores, ref, margin)
    return Comparison(
        model=Path(model_path).name, cpu=runtime["cpu"], images=len(inputs),
        max_abs_diff=max_diff, relative_diff=max_diff / (float(np.max(np.abs(reference))) or 1.0),
        max_steps=steps, outputs_off=int(np.count_nonzero(got != reference)),
        outputs=int(got.size), top1_decided=decided, top1_agree=agree,
        top1_equal_all=int((scores.argmax(-1) == ref.argmax(-1)).sum()),
        arm64=got, x86=reference, runtime=runtime,
    )


def mediapipe_classify(model_path: str | os.PathLike, images: Sequence[np.ndarray],
                       top_k: int = 5, cpu: str = "cortex-a76", *,
                       timeout: float = 900) -> mediapipe_runner.ClientResult:
    """MediaPipe's ImageClassifier (arm64 build, CPU) on uint8 RGB images: its top-k per image.

    Runs the same client script as the x86 check (`tflite/mediapipe_client.py`) under the arm64
    Python; labels come from the model's metadata. Starting MediaPipe emulated takes ~30 s.
    MediaPipe's arm64 build needs ARMv8.1 (LSE atomics): not `ARMV8_0_CPUS`.

    Raises:
        ValueError: an unknown CPU, or an ARMv8.0 one.
        Arm64UnavailableError: no runtime; Arm64RunError: MediaPipe failed or timed out.
    """
    if cpu in ARMV8_0_CPUS:
        raise ValueError(f"MediaPipe's arm64 build needs ARMv8.1 LSE atomics, which {cpu} "
                         "(ARMv8.0) lacks; choose cortex-a55, cortex-a76 or newer.")
    command, env = python_command(cpu)
    try:
        return mediapipe_runner.classify(model_path, list(images), top_k, timeout=timeout,
                                         interpreter=command, env=env)
    except subprocess.TimeoutExpired as error:
        raise Arm64RunError(f"arm64 MediaPipe ({cpu}) on {model_path}: no result within "
                            f"{timeout:.0f} s") from error
    except mediapipe_runner.MediaPipeError as error:
        raise Arm64RunError(f"arm64 {error}") from error


def topk_matches(categories: Sequence[mediapipe_runner.Category], scores: np.ndarray,
                 tolerance: float) -> bool:
    """Whether MediaPipe's categories are a top-k of `scores` (LiteRT's, one image).

    Each category's score equals LiteRT's score of its index (within `tolerance`), they come in
    descending order, and no index left out scores more than the lowest one kept (ties may be
    broken either way).
    """
    indices = [c.index for c in categories]
    reported = np.array([c.score for c in categories])
    if len(set(indices)) != len(indices) or not np.allclose(reported, scores[indices],
                                                            rtol=0, atol=tolerance):
        return False
    if np.any(np.diff(reported) > tolerance):
        return False
    rest = np.delete(scores, indices)
    return rest.size == 0 or float(rest.max()) <= float(reported.min()) + tolerance


def model_inputs(model_path: str | os.PathLike, images: np.ndarray) -> np.ndarray:
    """0-255 RGB images (N, H, W, 3) in the model input's dtype (uint8 io: rounded)."""
    from ai_edge_litert.interpreter import Interpreter

    dtype = np.dtype(Interpreter(model_path=str(model_path)).get_input_details()[0]["dtype"])
    if np.issubdtype(dtype, np.integer):
        return np.clip(np.rint(images), 0, 255).astype(dtype)
    return np.asarray(images, dtype=dtype)


def evaluate_formats(paths: dict[str, Path], images: np.ndarray, labels: np.ndarray,
                     cpus: Sequence[str] = DEFAULT_CPUS, *,
                     mediapipe_cpu: str | None = "cortex-a76",
                     timeout: float = 1800) -> list[dict[str, Any]]:
    """Per format and CPU: arm64 LiteRT's top-1 on labelled images and its difference to x86;
    MediaPipe-on-arm64's top-1 (on `mediapipe_cpu`, None: not run; ~30 s to start, emulated).

    Args:
        paths: format -> `.tflite` (with metadata, for MediaPipe).
        images: (N, H, W, 3) 0-255 RGB at the models' input size; labels: (N,) class indices.

    A run that fails puts its error in the rows (`error` for LiteRT, `mediapipe_error`); an
    absent runtime raises `Arm64UnavailableError`.
    """
    rows = []
    for fmt, path in paths.items():
        inputs = model_inputs(path, images)
        found: dict[str, Any] = {}
        if mediapipe_cpu is not None:
            found["mediapipe_cpu"] = mediapipe_cpu
            try:
                result = mediapipe_classify(path, list(np.clip(np.rint(images), 0, 255)
                                                       .astype(np.uint8)), 1, mediapipe_cpu,
                                            timeout=timeout)
                predicted = np.array([categories[0].index for categories in result.categories])
                found["mediapipe_top1"] = float((predicted == labels).mean())
            except Arm64RunError as error:
                found["mediapipe_error"] = str(error)
        for cpu in cpus:
            row: dict[str, Any] = {"format": fmt, "cpu": cpu, **found}
            try:
                comparison = compare(path, inputs, cpu, timeout=timeout)
                row.update(comparison.as_dict())
                row["top1"] = _accuracy(comparison.arm64, labels)
                row["x86_top1"] = _accuracy(comparison.x86, labels)
            except Arm64RunError as error:
                row["error"] = str(error)
            rows.append(row)
    return rows


def _accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    return float((scores.reshape(len(labels), -1).argmax(-1) == labels).mean())


def summary_cells(rows: Sequence[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """format -> (arm64 LiteRT cell, MediaPipe-on-arm64 cell) for a summary table.

    LiteRT: top-1 (the range over the CPUs if they differ) and the largest difference to x86
    over the CPUs, in output units and, for a quantized output, in steps.
    """
    cells: dict[str, tuple[str, str]] = {}
    for fmt in dict.fromkeys(row["format"] for row in rows):
        first = next(r for r in rows if r["format"] == fmt)
        if "mediapipe_top1" in first:
            mediapipe = f"{first['mediapipe_top1']:.2%}"
        elif "mediapipe_error" in first:
            mediapipe = f"failed ({first['mediapipe_error'].splitlines()[-1][:200]})"
        else:
            mediapipe = "-"
        done = [r for r in rows if r["format"] == fmt and "error" not in r]
        errors = [f"{r['cpu']}: {r['error'].splitlines()[0]}" for r in rows
                  if r["format"] == fmt and "error" in r]
        if not done:
            cells[fmt] = (f"failed ({'; '.join(errors)})", mediapipe)
            continue
        low, high = min(r["top1"] for r in done), max(r["top1"] for r in done)
        top1 = f"{low:.2%}" if low == high else f"{low:.2%}-{high:.2%}"
        diff = max(r["max_abs_diff"] for r in done)
        steps = [r["max_steps"] for r in done if r["max_steps"] is not None]
        litert = f"{top1}, max diff {diff:.1e}" + (f" ({max(steps)} step)" if steps else "")
        if errors:
            litert += f"; failed on {', '.join(e.split(':')[0] for e in errors)}"
        cells[fmt] = (litert, mediapipe)
    return cells
