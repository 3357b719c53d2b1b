"""ONNX converter for onnxruntime: one file per signature (``vae.onnx``, ``vae.encode.onnx``).

- float: tf2onnx from the SavedModel (the loader its command line uses,
  which keeps the signature's input/output names), opset 17 by default,
  batch and H x W as named dynamic dims where the spec allows.
- calibrated (full integer): onnxruntime static quantization in QDQ format, calibrated by a
  reader over the spec's ``calibration_inputs`` (not ``quantize_dynamic``,
  whose ConvInteger is slow or missing on CPU). ``reduce_range`` (7-bit
  weights) is chosen on x86 CPUs without VNNI, where u8s8 products can
  saturate; the choice is recorded in the manifest and the file. Before
  quantizing, ``int8_kernels.prepare`` moves every conv it can onto onnxruntime's
  fast symmetric int8 kernel (exact channel padding) or keeps it float; the
  manifest records each (``int8_kernels``). A normalisation's statistics (mean, variance,
  1/sqrt) stay float (``norm_stats``; the manifest's ``float_statistics``).
- A scalar-alpha PReLU is written as ``LeakyRelu`` (the same function, one op,
  and a quantized kernel in onnxruntime).
- The pixel shuffle (tf2onnx's ``DepthToSpace``) is rewritten as NHWC
  transposes (``shuffle_in_nhwc``), which onnxruntime runs faster and, in int8
  files, on 8-bit values (Transpose/Reshape are quantized by default).

Each file carries the genimg_export metadata in ``metadata_props``; the
pipeline (``exporters.pipeline``) runs it on one sample before it is reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
from pathlib import Path

from genimg_export.artifacts.formats import DEFAULT_OPSET
from genimg_export.errors import ExportError
from genimg_export.exporters import check, int8_kernels, norm_stats
from genimg_export.exporters.pipeline import Converted, Job
from genimg_export.exporters.tflite import MIN_CALIBRATION, calibration_data, calibration_options
from genimg_export.zoo.spec import ModelSpec, Signature

METADATA_KEY = "genimg_export"


def convert(job: Job, fixed_size=None) -> Converted:
    """The job's signature as ONNX: tf2onnx (a temp file shared by every variant), then
    static QDQ quantization for calibrated variants."""
    spec, source, (sig,) = job.spec, job.source, job.signatures
    opset = job.options.get("opset", DEFAULT_OPSET)
    batch = job.fixed_batch if fixed_size else None
    key = ("onnx", sig.name, opset, *(fixed_size or ()), batch)
    fp32 = source.cached(key, lambda p: convert_signature(spec, source.path(fixed_size, batch), sig, opset, p, job.log))
    options = {"opset": opset, "signature": sig.name}
    if job.variant.calibrated:
        samples = job.options.get("calibration_samples", MIN_CALIBRATION)
        options.update(int8_choice(), **calibration_options(spec, samples))
        model = _quantize(spec, sig, fp32, source, options, fixed_size, job.log, batch)
    else:
        model = _load(fp32)

    def write(path: Path, meta: dict) -> None:
        _set_metadata(model, meta)
        _save(model, path)

    return Converted(write, options)


def convert_signature(spec: ModelSpec, saved_model: Path, sig: Signature, opset: int, output: Path, log=None) -> None:
    """tf2onnx on one signature of a SavedModel (the path its command line takes), then
    readable tensor and dim names. Any op tf2onnx could not convert fails the export."""
    from tf2onnx import convert as tf2onnx_convert
    from tf2onnx import tf_loader

    if log:
        log(f"tf2onnx {sig.name} (opset {opset})")
    with _logged_errors("tf2onnx", "tensorflow") as errors:
        graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
            str(saved_model), None, None, tag="serve", signatures=[sig.name], return_tensors_to_rename=True
        )
        model, _ = tf2onnx_convert.from_graph_def(
            graph_def, name=spec.name, input_names=inputs, output_names=outputs, opset=opset,
            tensors_to_rename=renames,
        )
    if errors:
        raise ExportError(f"tf2onnx could not convert '{sig.name}': {' | '.join(errors[:3])[:600]}")
    _name_dims(model, sig)
    shuffle_in_nhwc(model.graph)
    int8_kernels.scalar_prelu_as_leaky_relu(model.graph)
    _drop_unused_initializers(model.graph)
    _rename_tensors(model.graph, lambda name, _: _tidy(name))
    for node in model.graph.node:
        node.name = _tidy(node.name)
    _save(model, output)


def shuffle_in_nhwc(graph) -> None:
    """Replace each DepthToSpace (DCR) by the same pixel shuffle done in NHWC.

    onnxruntime's DepthToSpace scatters single elements in NCHW; going to NHWC, a 6-D
    transpose that moves whole (b, C) rows, and back is faster (fp32 and uint8; measured
    in benchmarks/README.md), with the same output bit for bit.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    nodes = []
    for node in graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type != "DepthToSpace" or attrs.get("mode", b"DCR") != b"DCR":
            nodes.append(node)
            continue
        b, x, y, k = attrs["blocksize"], node.input[0], node.output[0], f"{node.name}/nhwc"
        graph.initializer.extend([
            numpy_helper.from_array(np.array([0, 0, 0, b, b, -1], np.int64), f"{k}/split"),
            numpy_helper.from_array(np.array([1, 1, b, b], np.int64), f"{k}/grow"),
            numpy_helper.from_array(np.array([1, b * b, 1, 1], np.int64), f"{k}/shrink"),
            numpy_helper.from_array(np.array([0, 2, 3, 1], np.int64), f"{k}/to_nhwc"),
        ])
        nodes += [
            helper.make_node("Transpose", [x], [f"{k}/x"], f"{k}/x", perm=[0, 2, 3, 1]),
            helper.make_node("Reshape", [f"{k}/x", f"{k}/split"], [f"{k}/6d"], f"{k}/6d"),
            helper.make_node("Transpose", [f"{k}/6d"], [f"{k}/shuffled"], f"{k}/shuffled", perm=[0, 1, 3, 2, 4, 5]),
            helper.make_node("Shape", [x], [f"{k}/in_shape"], f"{k}/in_shape"),
            helper.make_node("Mul", [f"{k}/in_shape", f"{k}/grow"], [f"{k}/grown"], f"{k}/grown"),
            helper.make_node("Div", [f"{k}/grown", f"{k}/shrink"], [f"{k}/out_shape"], f"{k}/out_shape"),
            helper.make_node("Gather", [f"{k}/out_shape", f"{k}/to_nhwc"], [f"{k}/nhwc_shape"], f"{k}/nhwc_shape"),
            helper.make_node("Reshape", [f"{k}/shuffled", f"{k}/nhwc_shape"], [f"{k}/y"], f"{k}/y"),
            helper.make_node("Transpose", [f"{k}/y"], [y], node.name, perm=[0, 3, 1, 2]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)


@contextlib.contextmanager
def _logged_errors(*names: str):
    """Quiet the named loggers below ERROR and collect their error lines (tf2onnx
    logs unsupported ops there instead of raising)."""
    import logging

    errors: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            message = re.sub(r" \(fct=.*", "", record.getMessage().splitlines()[0])
            if record.exc_info and record.exc_info[1] is not None:
                message += f": {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
            errors.append(message)

    loggers = [logging.getLogger(n or None) for n in names]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    handler = Collect(level=logging.ERROR)
    loggers[0].addHandler(handler)
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    if names[0]:
        loggers[0].propagate = False  # collected, so not printed as well
    try:
        yield errors
    finally:
        loggers[0].removeHandler(handler)
        for lg, (level, propagate) in zip(loggers, saved):
            lg.setLevel(level)
            lg.propagate = propagate


def _drop_unused_initializers(graph) -> None:
    """Remove the constants no node reads any more (the rewrites above orphan some, e.g. the
    PReLU's -alpha): left in, they are dead weight and onnxruntime warns about each one
    every time the file is opened."""
    used = _names_read(graph) | {t.name for t in [*graph.input, *graph.output]}
    kept = [i for i in graph.initializer if i.name in used]
    if len(kept) < len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)


def _names_read(graph) -> set[str]:
    """Every tensor name a node of the graph reads, inside If/Loop bodies too (they may read
    the outer graph's constants)."""
    names = set()
    for node in graph.node:
        names.update(node.input)
        for attr in node.attribute:
            bodies = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
            for body in bodies:
                names |= _names_read(body)
    return names


def _name_dims(model, sig: Signature) -> None:
    """``unk__12`` -> ``batch``, ``<tensor>_height``, ``<tensor>_width`` (and check the names)."""
    graph = model.graph
    got_in = [i.name for i in graph.input]
    got_out = [o.name for o in graph.output]
    want_in, want_out = [t.name for t in sig.inputs], [t.name for t in sig.outputs]
    if sorted(got_in) != sorted(want_in) or sorted(got_out) != sorted(want_out):
        raise ExportError(
            f"tf2onnx renamed tensors: inputs {got_in}, outputs {got_out}; expected {want_in} -> {want_out}"
        )
    for value in [*graph.input, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        for i, dim in enumerate(dims):
            if dim.HasField("dim_value"):
                continue
            dim.dim_param = "batch" if i == 0 else f"{value.name}_{('height', 'width')[i - 1] if i <= 2 else i}"


def _tidy(name: str) -> str:
    """``StatefulPartitionedCall/srgan_1/conv2d_1/convolution/ReadVariableOp:0`` ->
    ``conv2d_1/convolution/w``: the Keras layer stays readable, TF's call scopes go."""
    name = re.sub(r"^(StatefulPartitionedCall(_\d+)?/)+[^/]+/", "", name)
    return name.replace("/ReadVariableOp:0", "/w").removesuffix(":0")


def _rename_tensors(graph, new_name) -> None:
    """Rename every tensor except the graph's inputs and outputs (whose names are the API).

    ``new_name(old, index)`` gives the new name of the index-th distinct tensor. A new name
    already taken (by an input or output, or by another renamed tensor) gets a ``_N`` suffix:
    shortened names collide (``StatefulPartitionedCall/mul_1/y:0`` and ``.../add/y:0`` both
    tidy to ``y``), and an initializer named like a graph input is that input's default
    value to onnxruntime, which then refuses the file (a SavedModel whose input is ``y``).
    """
    if any(a.type == a.GRAPH or a.type == a.GRAPHS for n in graph.node for a in n.attribute):
        return  # control-flow subgraphs refer to outer names; leave them as converted
    keep = {v.name for v in [*graph.input, *graph.output]}
    mapping: dict[str, str] = {}
    taken = set(keep)

    def rename(name: str) -> str:
        if not name or name in keep:
            return name
        if name not in mapping:
            mapping[name] = _unique(new_name(name, len(mapping)), taken)
        return mapping[name]

    for node in graph.node:
        node.input[:] = [rename(x) for x in node.input]
        node.output[:] = [rename(x) for x in node.output]
    for tensor in graph.initializer:
        tensor.name = rename(tensor.name)
    for value in graph.value_info:
        value.name = rename(value.name)


def _unique(name: str, taken: set[str]) -> str:
    """``name``, or ``name_1``, ``name_2``... whichever is not in ``taken`` (which it joins)."""
    found, n = name, 0
    while found in taken:
        n += 1
        found = f"{name}_{n}"
    taken.add(found)
    return found


def int8_choice() -> dict:
    """Activation/weight types and reduce_range for this CPU (onnxruntime's own guidance)."""
    machine = platform.machine().lower()
    if machine in ("aarch64", "arm64"):
        return {"cpu": machine, "vnni": False, "activation_type": "QInt8", "weight_type": "QInt8",
                "reduce_range": False}
    vnni = has_vnni()
    return {"cpu": machine, "vnni": vnni, "activation_type": "QUInt8", "weight_type": "QInt8", "reduce_range": not vnni}


def has_vnni(cpuinfo: str = "/proc/cpuinfo") -> bool:
    try:
        flags = Path(cpuinfo).read_text().split()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_vnni", "avx_vnni", "avx512vnni"))


def _quantize(spec, sig, fp32: Path, source, options: dict, fixed, log, batch=None):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    data = calibration_data(spec, sig, options["calibration_samples"], fixed)
    step = batch or 1  # a file fixed at --batch N is calibrated N samples at a time
    count = min(len(data[t.name]) for t in sig.inputs) // step * step

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.i = 0

        def get_next(self):
            if self.i >= count:
                return None
            if log and self.i % 20 == 0:
                log(f"calibrating {sig.name}: {self.i}/{count}")
            item = {t.name: data[t.name][self.i : self.i + step] for t in sig.inputs}
            self.i += step
            return item

    audited = source.cached(("onnx-audited", sig.name, options["opset"], *(fixed or ()), batch),
                            lambda p: _prepare_for_int8(fp32, p))
    records, keep, norms = json.loads(audited.with_suffix(".json").read_text())
    options["int8_kernels"] = records
    if norms:  # kept float: see norm_stats
        options["float_statistics"] = [chain[0] for chain in norms]
    pre = source.cached(("onnx-pre", sig.name, options["opset"], *(fixed or ()), batch),
                        lambda p: quant_pre_process(str(audited), str(p), skip_symbolic_shape=True))
    quantized = pre.with_name(pre.name + f".quantized-{os.getpid()}.onnx")
    try:
        with _logged_errors(""):  # ORT's quantizer warns on the root logger
            quantize_static(
                str(pre), str(quantized), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                reduce_range=options["reduce_range"], activation_type=getattr(QuantType, options["activation_type"]),
                weight_type=getattr(QuantType, options["weight_type"]), nodes_to_exclude=keep,
            )
        model = _load(quantized)
        # the QDQ graph has ~4 tensors per weight and long names would cost ~10% of
        # the file; node names, which profilers and errors show, keep the layer names
        _rename_tensors(model.graph, lambda _, i: f"t{i}")
        return model
    except Exception as e:
        raise ExportError(f"onnxruntime quantization of '{spec.name}' ({sig.name}): {check.reason(e)}") from e
    finally:
        quantized.unlink(missing_ok=True)


def _prepare_for_int8(fp32: Path, output: Path) -> None:
    """The float graph with every conv it can moved onto onnxruntime's fast int8 kernel
    (``int8_kernels.prepare``); beside it, ``.json``: [the records, the nodes kept float, the
    normalisations whose statistics are kept float (``norm_stats``)]."""
    model = _load(fp32)
    records, keep = int8_kernels.prepare(model)
    norms = norm_stats.onnx_nodes(model.graph)
    _save(model, output)
    output.with_suffix(".json").write_text(json.dumps([records, keep + [n for c in norms for n in c], norms]))


def _load(path: Path):
    import onnx

    return onnx.load(str(path))


def _save(model, path: Path) -> None:
    import onnx

    onnx.save(model, str(path))


def _set_metadata(model, meta: dict) -> None:
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta, sort_keys=True)


def read_metadata(path: Path) -> dict | None:
    """The genimg_export metadata stored in an .onnx file, or None."""
    import onnx

    for prop in onnx.load(str(path), load_external_data=False).metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    return None
