"""Which ops of a .tflite file LiteRT's default XNNPACK delegate does not take (issue 13 item 1):
those run on LiteRT's own reference/optimized kernels, often the reason an int8 file does not pay.

The pip interpreter does not expose its execution plan, but it lists every node, the delegate's
kernels included. With delegate node fusion disabled, XNNPACK replaces each op it takes by one
``DELEGATE`` node with the same output tensors; an op no ``DELEGATE`` node stands in for stays on
LiteRT's kernels. Example::

    >>> undelegated("out/tflite/srgan.int8.tflite")
    Counter()                     # everything runs in XNNPACK
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

DELEGATE = "DELEGATE"  # the op name LiteRT gives a delegate's kernel node
SHAPE_OP = " (int32)"  # suffix of an op whose results are all integer shapes: cheap, but it marks a run-time shape


def undelegated(path: Path | str) -> Counter:
    """{op name: count} of the ops of ``path`` (subgraph 0) not delegated to XNNPACK; an op computing
    only int32/int64 tensors (shape arithmetic) is counted as ``"NAME (int32)"``."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), experimental_disable_delegate_node_fusion=True)
    interpreter.allocate_tensors()  # the default delegate is applied here
    ops = interpreter._get_ops_details()  # no public API lists the nodes
    taken = {tuple(op["outputs"]) for op in ops if op["op_name"] == DELEGATE}
    return Counter(op["op_name"] + (SHAPE_OP if _shape_only(op) else "") for op in ops
                   if op["op_name"] != DELEGATE and tuple(op["outputs"]) not in taken)


def _shape_only(op: dict) -> bool:
    import numpy as np

    return all(np.dtype(t).kind in "iu" and np.dtype(t).itemsize >= 4 for t in op["result_types"])


def describe(missing: Counter) -> str:
    """One line for users, the shape arithmetic summed: 'not delegated to XNNPACK: TRANSPOSE_CONV x3
    (+ 12 int32 shape ops)'."""
    ops = [f"{op} x{n}" for op, n in missing.most_common() if not op.endswith(SHAPE_OP)]
    shapes = sum(n for op, n in missing.items() if op.endswith(SHAPE_OP))
    if not missing:
        return "every op delegated to XNNPACK"
    return ("not delegated to XNNPACK: " + (", ".join(ops) or "only shape arithmetic")
            + (f" (+ {shapes} int32 shape ops)" if shapes else ""))


def notes(targets) -> list[str]:
    """bench's note for each TFLite target with ops XNNPACK does not take: 'tflite/int8: not delegated ...'."""
    found = []
    for t in targets:
        if t.backend != "tflite":
            continue
        try:
            missing = undelegated(t.artifact)
        except (ValueError, RuntimeError):  # an unloadable file: its row already carries the error
            continue
        if missing:
            found.append(f"{t.label}: {describe(missing)}")
    return found
