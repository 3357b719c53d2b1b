"""A .tflite file's scalar-alpha PRELU ops rewritten as LEAKY_RELU(alpha).

The same function (a PReLU whose alpha is one number, or the same number
everywhere, is LeakyRelu), but LiteRT's XNNPACK delegate takes LEAKY_RELU in
int8 and not PRELU, whose int8 kernel is LiteRT's slow reference code: the
converter turns Keras's ``PReLU(shared_axes=[1, 2, 3])`` into a PRELU with a
one-element alpha, which the exporter would otherwise keep in float (between a
dequantize and a quantize) in a full-integer file. The rewrite is on the
flatbuffer, after conversion, so it applies to every variant alike.
"""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

FILE_IDENTIFIER = b"TFL3"
_DTYPES = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.INT8: np.int8, schema.TensorType.UINT8: np.uint8}


def scalar_prelu_as_leaky_relu(model_bytes: bytes) -> tuple[bytes, int]:
    """``model_bytes`` with every constant scalar-alpha PRELU replaced by LEAKY_RELU, and how many were."""
    model = schema.ModelT.InitFromPackedBuf(model_bytes, 0)
    prelu = [i for i, c in enumerate(model.operatorCodes) if _code(c) == schema.BuiltinOperator.PRELU]
    if not prelu:
        return model_bytes, 0
    leaky = None
    count = 0
    for graph in model.subgraphs:
        for op in graph.operators:
            alpha = _scalar_alpha(model, graph, op) if op.opcodeIndex in prelu else None
            if alpha is None:
                continue
            if leaky is None:
                leaky = _leaky_relu_code(model)
            quantized = graph.tensors[op.inputs[0]].type != schema.TensorType.FLOAT32
            model.operatorCodes[leaky].version = max(model.operatorCodes[leaky].version, 2 if quantized else 1)
            op.opcodeIndex, op.inputs = leaky, np.asarray(op.inputs[:1], np.int32)
            op.builtinOptionsType = schema.BuiltinOptions.LeakyReluOptions
            op.builtinOptions = schema.LeakyReluOptionsT()
            op.builtinOptions.alpha = alpha
            count += 1
    if not count:
        return model_bytes, 0
    _drop_unused_codes(model)
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output()), count


def _code(c) -> int:
    return max(c.builtinCode, c.deprecatedBuiltinCode)


def _scalar_alpha(model, graph, op) -> float | None:
    """The alpha of a PRELU op if it is a constant with one value (dequantized), else None."""
    tensor = graph.tensors[op.inputs[1]]
    data = model.buffers[tensor.buffer].data if 0 < tensor.buffer < len(model.buffers) else None
    if data is None or len(data) == 0 or tensor.type not in _DTYPES:
        return None
    values = np.frombuffer(np.asarray(data, np.uint8).tobytes(), _DTYPES[tensor.type]).astype(np.float64)
    if tensor.type != schema.TensorType.FLOAT32:
        q = tensor.quantization
        if q is None or q.scale is None or len(q.scale) != 1:
            return None
        values = (values - float(q.zeroPoint[0])) * float(q.scale[0])
    if values.size == 0 or not np.all(values == values[0]):
        return None
    return float(values[0])


def _leaky_relu_code(model) -> int:
    """The index of the LEAKY_RELU operator code, added if the model has none."""
    for i, c in enumerate(model.operatorCodes):
        if _code(c) == schema.BuiltinOperator.LEAKY_RELU:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.LEAKY_RELU
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _drop_unused_codes(model) -> None:
    """Remove operator codes no op uses (the replaced PRELU's): a reader that lists the
    model's operators from its codes, as ``tflite.has_ops`` does, must not still see PRELU."""
    ops = [op for graph in model.subgraphs for op in graph.operators]
    used = sorted({op.opcodeIndex for op in ops})
    new_index = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for op in ops:
        op.opcodeIndex = new_index[op.opcodeIndex]
