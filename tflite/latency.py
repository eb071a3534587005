"""Timing LiteRT models on the CPU (XNNPACK): interleaved runs, summaries, per-op profiles."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ghostnet_keras.tflite import surgery


def summarize(samples_s: Sequence[float]) -> dict[str, float]:
    """Median, p90, mean and min of a list of durations in seconds, in milliseconds."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1e3
    return {
        "median": float(np.median(ms)),
        "p90": float(np.percentile(ms, 90)),
        "mean": float(ms.mean()),
        "min": float(ms.min()),
        "n": int(ms.size),
    }


def random_input(detail: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    shape = tuple(int(d) for d in detail["shape"])
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.uniform(0.0, 255.0, size=shape).astype(dtype)


def make_interpreter(data: bytes, num_threads: int) -> Any:
    """A LiteRT interpreter (default XNNPACK delegate) with a random input set."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=num_threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], random_input(detail, rng))
    return interpreter


def time_interleaved(
    runners: dict[str, Callable[[], Any]], warmup: int, iterations: int, block: int = 5
) -> dict[str, list[float]]:
    """Times callables in interleaved blocks; returns seconds per call, per key.

    Each round runs `block` calls of every callable in turn (the order rotates every round),
    until each has `iterations` timed calls; `warmup` untimed calls of each come first.
    """
    keys = list(runners)
    for key in keys:
        for _ in range(warmup):
            runners[key]()
    samples: dict[str, list[float]] = {key: [] for key in keys}
    round_index = 0
    while any(len(samples[k]) < iterations for k in keys):
        order = keys[round_index % len(keys) :] + keys[: round_index % len(keys)]
        for key in order:
            run = runners[key]
            for _ in range(min(block, iterations - len(samples[key]))):
                start = time.perf_counter()
                run()
                samples[key].append(time.perf_counter() - start)
        round_index += 1
    return samples


def op_profile(
    data: bytes, num_threads: int = 1, warmup: int = 3, iterations: int = 20
) -> list[dict[str, Any]]:
    """Times every op of a model alone (one-op models, XNNPACK); returns one row per op."""
    rows = []
    for op_info, op_model in surgery.single_op_models(data):
        interpreter = make_interpreter(op_model, num_threads)
        samples = time_interleaved({"op": interpreter.invoke}, warmup, iterations, block=iterations)
        out_shape = list(op_info.outputs[0].shape) if op_info.outputs else []
        rows.append(
            {
                "index": op_info.index,
                "op": op_info.name,
                "output_shape": out_shape,
                "median_ms": summarize(samples["op"])["median"],
            }
        )
    return rows


def summarize_op_profile(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per op type: count, total median ms and share of the per-op sum."""
    total = sum(row["median_ms"] for row in rows) or 1.0
    table: dict[str, dict[str, float]] = {}
    for row in rows:
        entry = table.setdefault(row["op"], {"count": 0, "ms": 0.0})
        entry["count"] += 1
        entry["ms"] += row["median_ms"]
    for entry in table.values():
        entry["share"] = entry["ms"] / total
    return dict(sorted(table.items(), key=lambda item: -item[1]["ms"]))
