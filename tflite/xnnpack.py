"""How XNNPACK partitions a model: its DELEGATE nodes and the ops it leaves to LiteRT's kernels.

Each op XNNPACK does not take splits the graph: the tensor goes back to LiteRT's reference
kernels and into the next partition, so one partition is what a fast CPU model looks like.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Partitioning:
    """`partitions`: DELEGATE nodes; `undelegated`: `(op index, op name)` run outside them."""

    partitions: int
    undelegated: tuple[tuple[int, str], ...]

    def undelegated_counts(self) -> dict[str, int]:
        return dict(collections.Counter(name for _, name in self.undelegated))


def partitioning(tflite_bytes: bytes, num_threads: int = 1) -> Partitioning:
    """Applies LiteRT's default XNNPACK delegate and reads the resulting execution plan.

    The interpreter lists the original ops and the DELEGATE nodes that replaced some of them;
    an original op runs outside XNNPACK exactly when a tensor it produces is read by a
    DELEGATE node, by another op that runs outside, or is a model output, and is not itself a
    DELEGATE output.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tflite_bytes, num_threads=num_threads)
    interpreter.allocate_tensors()
    ops: list[dict[str, Any]] = interpreter._get_ops_details()  # the public API has no plan
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    producer = {int(t): op for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    delegated_outputs = {int(t) for op in delegates for t in op["outputs"]}
    pending = [int(t) for op in delegates for t in op["inputs"]]
    pending += [int(detail["index"]) for detail in interpreter.get_output_details()]
    outside: dict[int, str] = {}
    while pending:
        tensor = pending.pop()
        op = producer.get(tensor)
        if op is None or tensor in delegated_outputs or op["index"] in outside:
            continue
        outside[op["index"]] = op["op_name"]
        pending.extend(int(t) for t in op["inputs"] if t >= 0)
    return Partitioning(len(delegates), tuple(sorted(outside.items())))
