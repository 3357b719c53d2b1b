"""Per-node cost of an int8 ONNX file against its float one, from onnxruntime's profiler
(issue 13 item 2): which layer makes int8 not pay.

Each file runs ``runs`` times in its own session with profiling on; a node's time is the
minimum of its kernel times (robust on a shared machine: load only adds time). onnxruntime
renames the nodes it fuses (``conv_token_72``, ``conv_nchwc``), so names are matched on the
layer's own name; the (de)quantize nodes an int8 graph adds have no float counterpart and
are summed in one row.

There is no TFLite side: the pip wheel (ai-edge-litert 2.3.0) gives Python no op profiler. Its
``Interpreter`` wrapper has no profiler hook (``experimental_force_delegate_node_profiling`` only
changes what an installed profiler records), and ``CompiledModel.from_file`` takes no runtime options:
LiteRT turns profiling on from the TOML "runtime" opaque options (``enable_profiling``, parsed in
litert/runtime/litert_runtime_options.cc, read in ``LiteRtCompiledModelT::InitializeRuntime``),
which the pybind wrapper never builds; ``LiteRtCompiledModelGetProfiler`` and
``LiteRtGetProfilerEvents`` are exported by libLiteRt.so only to C callers. The nearest view is
``bench.xnnpack``: the ops XNNPACK does not take, which run on LiteRT's slower kernels.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

QDQ = "(quantize/dequantize)"
_SUFFIXES = re.compile(r"(_token_\d+|_nchwc|_quant|/duplicated|_(Quantize|Dequantize)Linear.*)+$")


@dataclass
class NodeRow:
    node: str
    fp32_op: str
    int8_op: str
    fp32_ms: float
    int8_ms: float

    @property
    def slower_in_int8(self) -> bool:
        return self.int8_ms > self.fp32_ms

    def to_json(self) -> dict:
        return {**asdict(self), "slower_in_int8": self.slower_in_int8}


def profile(path: Path, feeds: dict, threads: int | None, runs: int) -> dict[str, tuple[str, float]]:
    """{layer: (op, ms per run)} of one ONNX file: the sum over the layer's nodes of each node's
    fastest run; (de)quantize nodes summed under ``QDQ``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.enable_profiling = True
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = str(Path(tmp) / "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    fastest: dict[str, float] = {}
    layers: dict[str, tuple[str, str]] = {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        node, op = e["name"][: -len("_kernel_time")], e["args"].get("op_name", "?")
        qdq = op in ("QuantizeLinear", "DequantizeLinear")
        layers[node] = (QDQ, "QDQ") if qdq else (_SUFFIXES.sub("", node), op)
        fastest[node] = min(fastest.get(node, float("inf")), e["dur"] / 1e3)
    fused = _fused_into_conv(path)
    found: dict[str, tuple[str, float]] = {}
    for node, (layer, op) in layers.items():
        layer = fused.get(layer, layer) if op in ("Conv", "FusedConv") else layer
        found[layer] = (op, found.get(layer, ("", 0.0))[1] + fastest[node])
    return found


def _fused_into_conv(path: Path) -> dict[str, str]:
    """{layer: conv layer} for the nodes onnxruntime may fuse into the conv before them (activation,
    scale, residual add): its NCHWc and activation fusions name the fused conv after the *last* node
    (``leaky_re_lu_1/LeakyRelu_nchwc``), which would leave the float conv's time under the activation."""
    import onnx

    nodes = list(onnx.load(str(path)).graph.node)
    producer = {out: n for n in nodes for out in n.output}
    uses = Counter(i for n in nodes for i in n.input)
    found = {}
    for n in nodes:
        step = n
        for _ in range(3):  # conv -> scale -> add -> activation at most
            # only a value used once can be fused away; a conv input is taken first
            ups = sorted((producer[i] for i in step.input if i in producer and uses[i] == 1),
                         key=lambda u: u.op_type != "Conv")
            if not ups or step.op_type == "Conv":
                break
            step = ups[0]
        if step.op_type == "Conv" and n.op_type != "Conv":
            found[_SUFFIXES.sub("", n.name)] = _SUFFIXES.sub("", step.name)
    return found


def compare(fp32: Path, int8: Path, feeds: dict, threads: int | None = None, runs: int = 10) -> list[NodeRow]:
    """One row per layer of either file, the layers slower in int8 first, then by int8 time."""
    a, b = profile(fp32, feeds, threads, runs), profile(int8, feeds, threads, runs)
    rows = [NodeRow(k, a.get(k, ("-", 0.0))[0], b.get(k, ("-", 0.0))[0], a.get(k, ("", 0.0))[1], b.get(k, ("", 0.0))[1])
            for k in {**a, **b}]
    return sorted(rows, key=lambda r: (not r.slower_in_int8, -r.int8_ms))


def for_export(model: str, out: Path, size=None, threads: int | None = None, runs: int = 10,
               allow_unsafe: bool = False) -> list[NodeRow]:
    """``compare`` on the default signature's ONNX fp32 and int8 files of ``model`` under ``out``,
    on one seeded sample at ``size`` (default: the spec's canonical size, else 64x64)."""
    from genimg_export.artifacts import layout
    from genimg_export.artifacts.formats import FORMATS
    from genimg_export.errors import NotFoundError
    from genimg_export.exporters import check
    from genimg_export.zoo import loading

    spec = loading.get_spec(model, allow_unsafe)
    sig = spec.default_signature
    row = FORMATS["onnx"]  # its float variant and the one integer kernels run
    variants = (row.default.name, next(v.name for v in row.variants if v.integer_kernels))
    paths = [Path(out) / layout.relative_path(layout.Place(row.name, v, spec.name, sig.name, None), sig.name)
             for v in variants]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise NotFoundError(f"--by-node compares the ONNX fp32 and int8 files; missing {', '.join(missing)}"
                            f" (export them with `genimg-export onnx --model {model} --out {out}`)")
    size = tuple(size or spec.canonical_size or (64, 64))
    return compare(*paths, check.sample(spec, sig, size), threads, runs)
