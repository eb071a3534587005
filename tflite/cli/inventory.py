"""Command line: what a `.tflite` holds and what LiteRT's CPU and GPU runtimes make of it.

```
ghostnet-tflite-inventory --model=out/ghostnet_100_fp16.tflite [--json] [--nocheck_gpu]
```

Prints the op inventory (`tflite.inventory`), the XNNPACK partitioning (`tflite.xnnpack`) and,
for float models, the GPU accelerator's verdict (`tflite.gpu`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from absl import flags

from ghostnet_keras.cli import runner as cli
from ghostnet_keras.tflite import gpu, inventory, verify, xnnpack


def define_flags() -> None:
    flags.DEFINE_string("model", None, "Path to a .tflite file.", required=True)
    flags.DEFINE_bool("json", False, "Print JSON instead of tables.")
    flags.DEFINE_bool("check_gpu", True, "Compile and run the model on the GPU accelerator.")


def main(argv: Sequence[str]) -> None:
    del argv
    values = flags.FLAGS
    data = Path(values.model).read_bytes()
    info = inventory.read_model(data)
    ops = inventory.op_inventory(info)
    partitioning = xnnpack.partitioning(data)
    integer = not verify.float_compute_ops(data)
    report = {
        "ops": ops,
        "xnnpack": {"partitions": partitioning.partitions,
                    "outside": partitioning.undelegated_counts()},
        "gpu": None,
    }
    if values.check_gpu:
        report["gpu"] = ({"checked": False, "reason": gpu.INT8_NOTE} if integer
                         else gpu.check(data).as_dict())
    if values.json:
        print(json.dumps(report, indent=2))
        return
    print(inventory.format_inventory(ops))
    outside = ", ".join(f"{n} {op}" for op, n in report["xnnpack"]["outside"].items())
    print(f"\nXNNPACK: {partitioning.partitions} partition(s)"
          + (f"; outside XNNPACK: {outside}" if outside else ""))
    check = report["gpu"]
    if check is None:
        return
    if not check.get("checked", True):
        print(f"GPU: {check['reason']}")
    elif check["fully_delegated"]:
        print(f"GPU: fully delegated on {check['adapter_label']} ({check['precision']}), "
              f"|GPU - CPU| = {check['relative_diff']:.1e} of the largest output")
    else:
        refused = ", ".join(check["fallback_ops"]) or check["error"]
        print(f"GPU: not fully delegated on {check['adapter_label']}: {refused}")


def main_entry() -> None:
    """Console-script entry point (`ghostnet-tflite-inventory`)."""
    cli.run(main, define_flags)


if __name__ == "__main__":
    main_entry()
