"""Write and parse Triton's ``config.pbtxt`` for an ONNX model (onnxruntime backend).

Triton serves a model repository ``<repo>/<name>/config.pbtxt`` +
``<repo>/<name>/<version>/model.onnx``. The config is written from names,
dtypes and dims only (no TensorFlow, no onnx import here), and parsed back with
Triton's own ``ModelConfig`` protobuf (``tritonclient.grpc.model_config_pb2``)
before it is installed, so a file Triton would refuse is never written.

Batching comes from the same settings as TF Serving's ``batching_parameters.txt``
(``config_files.BATCHING_DEFAULTS``), mapped field by field:

- ``max_batch_size`` -> ``max_batch_size``;
- ``batch_timeout_micros`` -> ``dynamic_batching.max_queue_delay_microseconds``;
- ``max_enqueued_batches`` x ``max_batch_size`` -> ``default_queue_policy.max_queue_size``
  (TF Serving counts queued batches, Triton queued requests);
- ``num_batch_threads`` -> ``instance_group.count`` (batches run at once), each
  instance with one intra-op thread, so instances x threads = the pod's cores
  as TF Serving's guide sizes batch threads.

Example:
    >>> io = TritonIO(inputs=[Tensor("lr", "float32", (None, None, None, 3))],
    ...               outputs=[Tensor("hr", "float32", (None, None, None, 3))])
    >>> text = config_text("srgan", io, warmup={"lr": (16, 16, 3)})
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from genimg_serving.config_files import BATCHING_DEFAULTS
from genimg_serving.configs import ConfigError

CONFIG_FILE = "config.pbtxt"
MODEL_FILE = "model.onnx"  # the onnxruntime backend's default_model_filename
MANIFEST_PARAMETER = "genimg_manifest"
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002  # tritonserver's defaults

# numpy dtype name -> Triton DataType (model_config.proto)
TRITON_TYPES = {
    "bool": "TYPE_BOOL", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64", "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32",
    "int64": "TYPE_INT64", "float16": "TYPE_FP16", "float32": "TYPE_FP32", "float64": "TYPE_FP64",
    "string": "TYPE_STRING", "bfloat16": "TYPE_BF16",
}


@dataclass(frozen=True)
class Tensor:
    """One input or output: name, numpy dtype name, full shape (None = dynamic), batch dim first."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class TritonIO:
    inputs: list[Tensor]
    outputs: list[Tensor]

    @property
    def batched(self) -> bool:
        """Every tensor has a dynamic first dim: Triton may batch (max_batch_size > 0)."""
        return all(t.shape and t.shape[0] is None for t in [*self.inputs, *self.outputs])


@dataclass(frozen=True)
class Settings:
    """What the config carries besides the tensors (defaults: BATCHING_DEFAULTS)."""

    max_batch_size: int = BATCHING_DEFAULTS["max_batch_size"]
    queue_delay_micros: int = BATCHING_DEFAULTS["batch_timeout_micros"]
    max_queue_size: int = BATCHING_DEFAULTS["max_enqueued_batches"] * BATCHING_DEFAULTS["max_batch_size"]
    instances: int = BATCHING_DEFAULTS["num_batch_threads"]
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    num_versions: int = 1
    manifest: dict = field(default_factory=dict)


def config_message(name: str, io: TritonIO, warmup: dict[str, tuple[int, ...]], settings: Settings = Settings()):
    """The ``ModelConfig`` message (Triton's protobuf) for ``name``.

    Args:
        warmup: {input name: concrete dims, as the config's dims (without the batch dim
            when batched)} of one all-zero warm-up request; inputs whose dims are all
            fixed may be left out.
    """
    pb = model_config_pb2()
    batched = io.batched and settings.max_batch_size > 0
    config = pb.ModelConfig(name=name, backend="onnxruntime",
                            max_batch_size=settings.max_batch_size if batched else 0)
    config.version_policy.latest.num_versions = settings.num_versions
    for tensor in io.inputs:
        config.input.add(name=tensor.name, data_type=_type(pb, tensor), dims=_dims(tensor, batched))
    for tensor in io.outputs:
        config.output.add(name=tensor.name, data_type=_type(pb, tensor), dims=_dims(tensor, batched))
    if batched:
        config.dynamic_batching.max_queue_delay_microseconds = settings.queue_delay_micros
        config.dynamic_batching.default_queue_policy.max_queue_size = settings.max_queue_size
    config.instance_group.add(count=settings.instances, kind=pb.ModelInstanceGroup.KIND_CPU)
    for key, value in (("intra_op_thread_count", settings.intra_op_threads),
                       ("inter_op_thread_count", settings.inter_op_threads),
                       (MANIFEST_PARAMETER, json.dumps(settings.manifest, sort_keys=True))):
        config.parameters[key].string_value = str(value)
    _add_warmup(pb, config, io, warmup, batched)
    return config


def config_text(name: str, io: TritonIO, warmup: dict, settings: Settings = Settings()) -> str:
    """``config.pbtxt`` text, already parsed back with Triton's proto."""
    from google.protobuf import text_format

    header = "# Written by genimg-export; parsed with Triton's ModelConfig (tritonclient) before use.\n"
    text = header + text_format.MessageToString(config_message(name, io, warmup, settings))
    parse(text)
    return text


def parse(text: str, where: str = "config.pbtxt"):
    """Parse config text with Triton's ``ModelConfig``; ConfigError says what is wrong."""
    from google.protobuf import text_format

    try:
        return text_format.Parse(text, model_config_pb2().ModelConfig())
    except text_format.ParseError as e:
        raise ConfigError(f"{where} does not parse as Triton's ModelConfig: {e}") from e


def model_config_pb2():
    """Triton's ``model_config_pb2`` (tritonclient, a dependency of genimg-serving)."""
    try:
        from tritonclient.grpc import model_config_pb2
    except (ImportError, RuntimeError) as e:  # tritonclient raises RuntimeError without its grpc extra
        raise ConfigError(f"Triton configs need tritonclient[grpc] (pip install 'tritonclient[grpc]'): {e}") from e
    return model_config_pb2


def _type(pb, tensor: Tensor) -> int:
    if tensor.dtype not in TRITON_TYPES:
        raise ConfigError(f"{tensor.name}: Triton has no type for dtype {tensor.dtype}")
    return pb.DataType.Value(TRITON_TYPES[tensor.dtype])


def _dims(tensor: Tensor, batched: bool) -> list[int]:
    dims = tensor.shape[1:] if batched else tensor.shape
    return [-1 if d is None else int(d) for d in dims]


def _add_warmup(pb, config, io: TritonIO, warmup: dict, batched: bool) -> None:
    sample = config.model_warmup.add(name="zeros", batch_size=1)
    for tensor in io.inputs:
        dims = list(warmup.get(tensor.name) or _dims(tensor, batched))
        if any(d < 0 for d in dims):
            raise ConfigError(f"warm-up of input {tensor.name} needs concrete dims, got {dims}")
        entry = sample.inputs[tensor.name]
        entry.data_type = _type(pb, tensor)
        entry.dims.extend(dims)
        entry.zero_data = True
