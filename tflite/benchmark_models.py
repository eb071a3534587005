"""The models `ghostnet-tflite-benchmark` times: the zoo, one result row (`Entry`), ratios."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ghostnet_keras.tflite import gpu, xnnpack

BASELINE = "mobilenetv3_large"
DISPLAY_NAMES = {
    "ghostnet_050": "GhostNet-0.5",
    "ghostnet_100": "GhostNet-1.0",
    "ghostnet_130": "GhostNet-1.3",
    "mobilenetv3_large": "MobileNetV3-Large",
    "mobilenetv3_small": "MobileNetV3-Small",
    "ghostnetv2_100": "GhostNetV2-1.0",
    "ghostnetv2_130": "GhostNetV2-1.3",
    "ghostnetv2_160": "GhostNetV2-1.6",
    "ghostnetv3_100": "GhostNetV3-1.0",  # its deploy form, as TFLite runs it
}
DEFAULT_MODELS = ("ghostnet_050", "ghostnet_100", "ghostnet_130", "mobilenetv3_large",
                  "mobilenetv3_small")
MODES = ("fp32", "fp16", "dynamic", "int8")
GPU_MODES = ("fp32", "fp16")  # int8 is not a GPU format (gpu.INT8_NOTE)
# Targets at 1 thread, as latency ratios: (model, mode, reference model, reference mode, limit).
TARGETS = (
    ("ghostnet_100", "int8", "ghostnet_100", "fp32", 0.5),
    ("ghostnet_100", "int8", BASELINE, "fp32", 0.6),
    ("ghostnet_130", "int8", BASELINE, "fp32", 0.8),
    ("ghostnet_100", "fp32", BASELINE, "fp32", 0.75),
    ("ghostnet_130", "fp32", BASELINE, "fp32", 1.05),
)


def build_zoo_model(name: str, input_size: int = 224) -> Any:
    """Builds one of the benchmarked Keras 3 models, random weights, softmax head."""
    import keras

    shape = (input_size, input_size, 3)
    if name.startswith("ghostnet") and name in DISPLAY_NAMES:
        from ghostnet_keras.layers.blocks_v2v3 import DEPLOY_FORM_VERSIONS
        from ghostnet_keras.models.ghostnet import create_ghostnet

        family, width = name.split("_")
        version = family.removeprefix("ghostnet") or "v1"
        return create_ghostnet(version, width=int(width) / 100, input_shape=shape, name=name,
                               reparameterized=version in DEPLOY_FORM_VERSIONS)
    applications = {"mobilenetv3_large": keras.applications.MobileNetV3Large,
                    "mobilenetv3_small": keras.applications.MobileNetV3Small}
    if name not in applications:
        raise ValueError(f"Unknown model {name!r}; expected one of {', '.join(DISPLAY_NAMES)}.")
    return applications[name](input_shape=shape, weights=None, include_preprocessing=True)


@dataclasses.dataclass
class Entry:
    """One converted model in the benchmark."""

    name: str
    mode: str
    data: bytes = dataclasses.field(repr=False)
    macs: int | None = None
    params: int | None = None
    latency_ms: dict[int, dict[str, float]] = dataclasses.field(default_factory=dict)
    partitioning: xnnpack.Partitioning | None = None
    gpu: gpu.GpuCheck | None = None

    @property
    def key(self) -> str:
        return f"{self.name}/{self.mode}"

    @property
    def display_name(self) -> str:
        return DISPLAY_NAMES.get(self.name, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "display_name": self.display_name,
            "mode": self.mode,
            "macs": self.macs,
            "params": self.params,
            "tflite_bytes": len(self.data),
            "latency_ms": {str(k): v for k, v in sorted(self.latency_ms.items())},
            "xnnpack_partitions": self.partitioning.partitions if self.partitioning else None,
            "outside_xnnpack": (self.partitioning.undelegated_counts()
                                if self.partitioning else None),
            "gpu": self.gpu.as_dict() if self.gpu else None,
        }


def ratio(entries: Sequence[Entry], entry: Entry, model: str, mode: str,
          threads: int) -> float | None:
    """`entry`'s median latency over `model`/`mode`'s at `threads` (None if either is missing)."""
    reference = next((e for e in entries if (e.name, e.mode) == (model, mode)), None)
    if reference is None or threads not in reference.latency_ms or threads not in entry.latency_ms:
        return None
    return entry.latency_ms[threads]["median"] / reference.latency_ms[threads]["median"]
