"""Which convolutions of an ONNX graph onnxruntime runs on its fast int8 kernels, and exact
rewrites that move the others there (issue 13).

onnxruntime fuses a QDQ Conv into ``QLinearConv``, whose fast path (``TryConvSymPrepack``
in ``qlinearconv.cc``, ``MlasConvSymPackWSize`` in ``mlas/lib/convsym.cpp``) needs int8
weights with every zero point 0 and, on x86 with AVX-512 (VNNI or not): group 1 with >= 16
output channels, output and input channels multiples of 4 (AVX2 and AVX-VNNI want output
multiples of 8); or a depthwise conv over a multiple of 16 channels. Any other conv falls
back to im2col + QGEMM, which can be slower than fp32 (an SR net's final 32->3 conv: 2x).

``prepare`` rewrites the float graph before quantization, exactly:

- too few or misaligned output channels: zero filters (and zero bias) up to the next
  allowed count, then a ``Slice`` back to the real channels;
- misaligned input channels (an RGB input): a zero-channel ``Pad`` of the input and zero
  weight columns;
- where that cannot pay (a grouped conv, or padding that multiplies the work by more than
  ``MAX_GROWTH``): the conv stays float (``nodes_to_exclude``).

MatMul needs nothing here: its QGEMM (U8S8, VNNI) has no channel-count condition.

Before all that, ``unshare_weights`` gives each kind of consumer of a shared weight its own
copy: tf2onnx merges equal constants, so a Conv and a ConvTranspose with equal weights (tied
weights, or two layers drawn from one seeded initializer, as in the CycleGAN of the
conformance zoo) read one initializer, and per-channel quantization gives it one axis's
scales (Conv: axis 0, ConvTranspose: axis 1); onnxruntime then refuses the other node
(``QLinearConv ... ComputeOutputScale: filter scale shape invalid``).
"""

from __future__ import annotations

import numpy as np

MIN_OUT, OUT_ALIGN, IN_ALIGN, DEPTHWISE_ALIGN = 16, 4, 4, 16
MAX_GROWTH = 8  # padded / real MACs above which a padded int8 conv no longer beats the float one


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


def miss(out_channels: int, in_per_group: int, group: int) -> str | None:
    """Why a conv of this shape misses the fast int8 kernel, or None."""
    if group > 1:
        if in_per_group == 1 and out_channels == group:
            return None if group % DEPTHWISE_ALIGN == 0 else f"depthwise over {group} channels (needs a multiple of 16)"
        return f"grouped conv (group {group}): no symmetric int8 kernel"
    why = []
    if out_channels < MIN_OUT or out_channels % OUT_ALIGN:
        why.append(f"{out_channels} output channels (needs >= {MIN_OUT}, a multiple of {OUT_ALIGN})")
    if in_per_group % IN_ALIGN:
        why.append(f"{in_per_group} input channels (needs a multiple of {IN_ALIGN})")
    return "; ".join(why) or None


def audit(model) -> list[tuple[str, str]]:
    """(node name, why) for every Conv with constant weights that misses the fast kernel: in a
    float graph by its shape; in a QDQ graph also by its weights' type and zero points."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    found = []
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight, why = _weight(node.input[1], inits, producers)
        if weight is None:
            continue
        shape_why = miss(int(weight.dims[0]), int(weight.dims[1]), _attr(node, "group", 1))
        why = "; ".join(w for w in (why, shape_why) if w)
        if why:
            found.append((node.name, why))
    return found


def _weight(name, inits, producers):
    """(the weight initializer, why its quantization misses) of a Conv's weight input."""
    from onnx import TensorProto, numpy_helper

    if name in inits:
        return inits[name], None
    dq = producers.get(name)
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
        return None, None
    weight = inits[dq.input[0]]
    if weight.data_type != TensorProto.INT8:
        return weight, "weights not int8"
    zero = inits.get(dq.input[2]) if len(dq.input) > 2 else None
    if zero is not None and np.any(numpy_helper.to_array(zero)):
        return weight, "weight zero point not 0 (asymmetric)"
    return weight, None


def _attr(node, name: str, default):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def prepare(model) -> tuple[list[dict], list[str]]:
    """Rewrite ``model`` (float, in place) so that every conv it can, meets the fast kernel.

    Returns (one record per conv touched: node, shape, action, why; the nodes to keep float).
    """
    from onnx import numpy_helper

    graph = model.graph
    records = unshare_weights(graph)
    inits = {i.name: i for i in graph.initializer}
    keep, nodes, padded_inputs = [], [], {}
    for node in graph.node:
        if node.op_type != "Conv" or node.input[1] not in inits:
            nodes.append(node)
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        group = _attr(node, "group", 1)
        why = miss(w.shape[0], w.shape[1], group)
        if why is None:
            nodes.append(node)
            continue
        shape = f"{w.shape[1] * group}->{w.shape[0]} k{'x'.join(map(str, w.shape[2:]))} group {group}"
        out_to = max(MIN_OUT, _round_up(w.shape[0], OUT_ALIGN)) if group == 1 else w.shape[0]
        in_to = _round_up(w.shape[1], IN_ALIGN) if group == 1 else w.shape[1]
        growth = out_to * in_to / (w.shape[0] * w.shape[1])
        if group > 1 or growth > MAX_GROWTH:
            reason = why if group > 1 else f"{why}; padding would multiply its work by {growth:.1f}"
            keep.append(node.name)
            records.append({"node": node.name, "conv": shape, "action": "kept float", "why": reason})
            nodes.append(node)
            continue
        nodes += _pad(graph, node, inits, w, in_to, out_to, padded_inputs)
        action = " and ".join(a for a in (
            f"inputs padded {w.shape[1]}->{in_to}" if in_to != w.shape[1] else "",
            f"outputs padded {w.shape[0]}->{out_to} + Slice" if out_to != w.shape[0] else "",
        ) if a)
        records.append({"node": node.name, "conv": shape, "action": action, "why": why})
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for n in graph.node for name in n.input}
    unused = [i for i in graph.initializer if i.name not in used]  # the unpadded weights
    for init in unused:
        graph.initializer.remove(init)
    return records, keep


WEIGHT_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")  # input 1 is quantized per channel, on its own axis


def unshare_weights(graph) -> list[dict]:
    """Give every op type but the first that reads a weight initializer its own copy (exact; see
    the module docstring). Returns one record per copy: node, shape, action, why."""
    from onnx import numpy_helper

    inits = {i.name: i for i in graph.initializer}
    first: dict[str, str] = {}  # weight -> the op type that keeps it
    copies: dict[tuple[str, str], str] = {}  # (weight, op type) -> its copy
    records = []
    for node in graph.node:
        name = node.input[1] if node.op_type in WEIGHT_OPS and len(node.input) > 1 else ""
        if name not in inits or first.setdefault(name, node.op_type) == node.op_type:
            continue
        if (name, node.op_type) not in copies:
            copy = f"{name}/{node.op_type}"
            graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(inits[name]), copy))
            copies[name, node.op_type] = copy
        node.input[1] = copies[name, node.op_type]
        records.append({"node": node.name, "conv": f"{node.op_type} weights {list(inits[name].dims)}",
                        "action": "own copy of the weights",
                        "why": f"weights shared with a {first[name]}, which quantizes them on another axis"})
    return records


def _pad(graph, node, inits, w: np.ndarray, in_to: int, out_to: int, padded_inputs: dict) -> list:
    """[Pad?, the conv on padded weights, Slice?]: zero input channels and zero filters (exact);
    convs reading the same input share its Pad (``padded_inputs``: (input, channels) -> name)."""
    from onnx import helper, numpy_helper

    out_c, in_c = w.shape[:2]
    k = f"{node.name}/int8_pad"
    padded = np.zeros((out_to, in_to, *w.shape[2:]), w.dtype)
    padded[:out_c, :in_c] = w
    graph.initializer.append(numpy_helper.from_array(padded, f"{k}/w"))
    node.input[1] = f"{k}/w"
    before, after = [], []
    if len(node.input) > 2 and node.input[2] in inits and out_to != out_c:
        bias = numpy_helper.to_array(inits[node.input[2]])
        graph.initializer.append(numpy_helper.from_array(np.concatenate([bias, np.zeros(out_to - out_c, bias.dtype)]),
                                                         f"{k}/b"))
        node.input[2] = f"{k}/b"
    if in_to != in_c and (node.input[0], in_to) in padded_inputs:
        node.input[0] = padded_inputs[node.input[0], in_to]
    elif in_to != in_c:
        graph.initializer.append(numpy_helper.from_array(np.array([0, 0, 0, 0, 0, in_to - in_c, 0, 0], np.int64),
                                                         f"{k}/pads"))
        before.append(helper.make_node("Pad", [node.input[0], f"{k}/pads"], [f"{k}/x"], f"{k}/x", mode="constant"))
        padded_inputs[node.input[0], in_to] = f"{k}/x"
        node.input[0] = f"{k}/x"
    if out_to != out_c:
        for name, value in (("starts", 0), ("ends", out_c), ("axes", 1)):
            graph.initializer.append(numpy_helper.from_array(np.array([value], np.int64), f"{k}/{name}"))
        y = node.output[0]
        node.output[0] = f"{k}/y"
        after.append(helper.make_node("Slice", [f"{k}/y", f"{k}/starts", f"{k}/ends", f"{k}/axes"], [y], f"{k}/slice"))
    return [*before, node, *after]


def scalar_prelu_as_leaky_relu(graph) -> int:
    """Replace each scalar-alpha PReLU by ``LeakyRelu(alpha)``: the same function, which
    onnxruntime runs as one op (and fuses into ``QLinearLeakyRelu`` in int8; there is no
    quantized PRelu). tf2onnx writes Keras's PReLU as ``Relu(x) + Relu(-x) * -alpha`` (five
    ops) or as ``PRelu``; both are matched. Returns how many were replaced."""
    from onnx import helper

    inits = {i.name: i for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    uses: dict[str, int] = {}
    for n in graph.node:
        for name in n.input:
            uses[name] = uses.get(name, 0) + 1
    replaced, drop = {}, set()  # keyed by first output: protobuf hands out new wrappers, so id() is no key
    for node in graph.node:
        found = _prelu(node, inits, producers, uses)
        if found:
            x, alpha, parts = found
            replaced[node.output[0]] = helper.make_node("LeakyRelu", [x], list(node.output), node.name, alpha=alpha)
            drop.update(p.output[0] for p in parts)
    nodes = [replaced.get(n.output[0], n) for n in graph.node if n.output[0] not in drop]
    del graph.node[:]
    graph.node.extend(nodes)
    return len(replaced)


def _prelu(node, inits, producers, uses):
    """(x, alpha, the other nodes of the pattern) if ``node`` ends a scalar-alpha PReLU, else None."""
    from onnx import numpy_helper

    def const(name):
        return numpy_helper.to_array(inits[name]) if name in inits else None

    def scalar(values):
        return values is not None and values.size > 0 and bool(np.all(values == values.flat[0]))

    if node.op_type == "PRelu" and scalar(const(node.input[1])):
        return node.input[0], float(const(node.input[1]).flat[0]), []
    if node.op_type != "Add" or len(node.input) != 2:
        return None
    for left, right in (node.input, node.input[::-1]):
        relu, mul = producers.get(left), producers.get(right)
        if not (relu and mul and relu.op_type == "Relu" and mul.op_type == "Mul"):
            continue
        x = relu.input[0]
        for c_name, other in (mul.input, mul.input[::-1]):
            relu_neg = producers.get(other)
            neg = producers.get(relu_neg.input[0]) if relu_neg and relu_neg.op_type == "Relu" else None
            if scalar(const(c_name)) and neg and neg.op_type == "Neg" and neg.input[0] == x:
                parts = [relu, mul, relu_neg, neg]
                if all(uses.get(p.output[0], 0) == 1 for p in parts):
                    return x, -float(const(c_name).flat[0]), parts
    return None
