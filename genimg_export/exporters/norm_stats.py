"""The statistics of a normalisation (instance, group or layer norm written out as ops), found
in a converted graph so that an int8 file keeps them float while its convs stay int8.

A norm computes ``(x - mean) * 1 / sqrt(mean((x - mean)^2) + eps)`` per channel (or group).
In int8 every tensor on that path has one scale for all channels and images: a quiet
channel's variance rounds to a step or to zero, and ``1 / sqrt`` turns that step into a
large gain error (up to ``1 / sqrt(eps)``). Kept float, the path costs one float square and
two reductions per norm, small beside the convs. Measured on the conformance CycleGAN
(benchmarks/user_models.md): onnxruntime int8 31.4 -> 40.5 dB, TFLite int8 32.0 -> 40.2 dB.

Each finder walks back from the square root, the one op every form of the pattern has:
ONNX ``Sqrt`` (+ ``Reciprocal``) <- ``Add`` eps <- ``ReduceMean``/``GlobalAveragePool`` <-
``Mul(d, d)``/``Pow`` <- ``Sub(x, mean)``, mean; TFLite ``RSQRT`` <- ``ADD`` <- ``MEAN`` <-
``SQUARED_DIFFERENCE(x, mean)`` (or ``MUL(d, d)``), mean. Anything else is left as it is.
"""

from __future__ import annotations

ONNX_CHAIN = (("Add",), ("ReduceMean", "GlobalAveragePool"), ("Mul", "Pow"))
TFLITE_CHAIN = (("ADD",), ("MEAN",), ("SQUARED_DIFFERENCE", "MUL", "SQUARE"))
ONNX_MEANS, TFLITE_MEANS = ("ReduceMean", "GlobalAveragePool"), ("MEAN",)
PASS_THROUGH = ("Reshape", "Unsqueeze", "Transpose", "RESHAPE", "EXPAND_DIMS")  # between a mean and its use
CASTS = ("QUANTIZE", "DEQUANTIZE")  # the converter's own float islands (Keras' GroupNormalization has one)


def onnx_nodes(graph) -> list[list[str]]:
    """One list of node names per normalisation found in an ONNX graph (its Sqrt first)."""
    ops = [(n.name, n.op_type, list(n.input), list(n.output)) for n in graph.node]
    found = _chains(ops, "Sqrt", ONNX_CHAIN, ONNX_MEANS)
    for chain in found:  # 1 / sqrt written as Reciprocal
        chain += [name for name, op, inputs, _ in ops if op == "Reciprocal" and _output(chain[0], ops) in inputs]
    return [list(dict.fromkeys(chain + _application(chain, ops, "Mul", "Sub"))) for chain in found]


def tflite_tensors(model_bytes: bytes) -> list[list[str]]:
    """One list of output tensor names per normalisation found in a .tflite model (its RSQRT's
    first): the names ``QuantizationDebugOptions(denylisted_nodes=...)`` takes."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(model_bytes, 0)
    op_names = operator_names(model)
    found = []
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        name = [graph.Tensors(t).Name().decode() for t in range(graph.TensorsLength())]
        ops = []
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            out = name[op.Outputs(0)]  # a TFLite op is named by its (first) output
            ops.append((out, op_names[op.OpcodeIndex()], [name[t] for t in op.InputsAsNumpy() if t >= 0], [out]))
        found += [list(dict.fromkeys(chain + _application(chain, ops, "MUL", "SUB"))) for chain in
                  _chains(ops, "RSQRT", TFLITE_CHAIN, TFLITE_MEANS)]
    return found


def operator_names(model) -> list[str]:
    """The builtin op name of each operator code of a parsed .tflite ``schema.Model`` ("?" if unknown)."""
    from ai_edge_litert import schema_py_generated as schema

    codes = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return [codes.get(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()), "?")
            for c in (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))]


def _output(name: str, ops) -> str:
    return next(outputs[0] for n, _, _, outputs in ops if n == name)


def _application(chain: list[str], ops, mul: str, sub: str) -> list[str]:
    """The ``(x - mean) * (1 / sqrt)`` that applies the statistics: its product and difference.
    Kept float with them, since a per-tensor int8 scale on 1 / sqrt (which spans the channels'
    gains) or on (x - mean) rounds the quiet channels again."""
    gains = {_output(name, ops) for name in chain if name in (chain[0], chain[-1])}
    products = [(n, inputs) for n, op, inputs, _ in ops if op == mul and gains & set(inputs)]
    outputs = {o: (n, op) for n, op, _, outs in ops for o in outs}
    differences = [outputs[i][0] for _, inputs in products for i in inputs if outputs.get(i, ("", ""))[1] == sub]
    return [n for n, _ in products] + differences


def _chains(ops, root: str, chain: tuple, means: tuple) -> list[list[str]]:
    """[root, add, mean of squares, square, the mean subtracted (and what reshapes it)] for each
    ``root`` op that heads the whole chain; ``ops``: (name, op type, input tensors, output tensors)."""
    producer = {out: (name, op, inputs) for name, op, inputs, outputs in ops for out in outputs}
    found = []
    for name, op, inputs, _ in ops:
        if op != root:
            continue
        names, step = [name], (name, op, inputs)
        for wanted in chain:
            step = next((p for p in (_source(i, producer) for i in step[2]) if p and p[1] in wanted), None)
            if step is None:
                break
            names.append(step[0])
        if step is not None and _is_square(step):
            found.append(names + _subtracted_mean(step, producer, means))
    return found


def _is_square(step) -> bool:
    _, op, inputs = step
    return op not in ("Mul", "MUL") or (len(inputs) == 2 and inputs[0] == inputs[1])


def _subtracted_mean(square, producer, means: tuple) -> list[str]:
    """The mean (and the reshapes after it) that the squared difference subtracts, if any."""
    _, op, inputs = square
    taken = []
    if op != "SQUARED_DIFFERENCE":  # Mul(d, d), Pow(d, 2) or SQUARE(d): d = Sub(x, mean)
        sub = _source(inputs[0], producer)
        if sub is None or sub[1] not in ("Sub", "SUB"):
            return []
        taken, inputs = [sub[0]], sub[2]
    for tensor in inputs[1:]:
        names, step = [], producer.get(tensor)
        while step is not None and step[1] in PASS_THROUGH:
            names.append(step[0])
            step = producer.get(step[2][0])
        if step is not None and step[1] in means:
            return [*taken, *names, step[0]]
    return taken


def _source(tensor: str, producer: dict):
    """The op that computes ``tensor``, looking through (de)quantize ops."""
    step = producer.get(tensor)
    while step is not None and step[1] in CASTS:
        step = producer.get(step[2][0])
    return step
