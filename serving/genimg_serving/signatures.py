"""Signatures as the client sees them, parsed from GetModelMetadata.

TF Serving describes a model by its SignatureDefMap; these small frozen
dataclasses carry what a caller needs (names, dtypes, shapes) so that code
reads tensor names from the server instead of hard-coding them.
"""

from __future__ import annotations

from dataclasses import dataclass

from genimg_serving.errors import FailedPreconditionError

SIGNATURE_DEF = "signature_def"
DEFAULT_SIGNATURE = "serving_default"


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a signature.

    ``dtype`` is numpy's name ("float32", "int32"; "string" for DT_STRING);
    ``shape`` has None for unknown dims and is None for unknown rank.
    """

    alias: str
    dtype: str
    shape: tuple[int | None, ...] | None
    tensor_name: str = ""
    data_type: int = 0

    @property
    def is_image(self) -> bool:
        """NHWC with 1 or 3 channels (what the zoo's images look like)."""
        return self.shape is not None and len(self.shape) == 4 and self.shape[-1] in (1, 3)


@dataclass(frozen=True)
class SignatureInfo:
    name: str
    method_name: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]


@dataclass(frozen=True)
class ModelMetadata:
    """A served model: its name, the version that answered, its signatures."""

    name: str
    version: int | None
    signatures: dict[str, SignatureInfo]

    def signature(self, name: str = DEFAULT_SIGNATURE) -> SignatureInfo:
        try:
            return self.signatures[name]
        except KeyError:
            raise FailedPreconditionError(
                f'Serving signature key "{name}" not found. Model {self.name} has:'
                f" {', '.join(sorted(self.signatures))}"
            ) from None


# TF's DataType names (types.proto) -> (numpy name, enum number), for the REST form, which
# needs no TensorFlow protos (the base install of genimg-serving has none).
_DT = {
    "DT_FLOAT": ("float32", 1), "DT_DOUBLE": ("float64", 2), "DT_INT32": ("int32", 3), "DT_UINT8": ("uint8", 4),
    "DT_INT16": ("int16", 5), "DT_INT8": ("int8", 6), "DT_STRING": ("string", 7), "DT_COMPLEX64": ("complex64", 8),
    "DT_INT64": ("int64", 9), "DT_BOOL": ("bool", 10), "DT_BFLOAT16": ("bfloat16", 14), "DT_UINT16": ("uint16", 17),
    "DT_COMPLEX128": ("complex128", 18), "DT_HALF": ("float16", 19), "DT_UINT32": ("uint32", 22),
    "DT_UINT64": ("uint64", 23), "DT_QINT8": ("qint8", 11), "DT_QUINT8": ("quint8", 12), "DT_QINT32": ("qint32", 13),
    "DT_QINT16": ("qint16", 15), "DT_QUINT16": ("quint16", 16), "DT_RESOURCE": ("resource", 20),
    "DT_VARIANT": ("variant", 21),
}


def tensor_info(alias: str, info) -> TensorInfo:
    """A TensorInfo from a ``tensorflow.TensorInfo`` proto."""
    from genimg_serving.protos import types_pb2

    shape = None
    if not info.tensor_shape.unknown_rank:
        shape = tuple(None if d.size < 0 else d.size for d in info.tensor_shape.dim)
    dtype = "string" if info.dtype == types_pb2.DT_STRING else _numpy_name(info.dtype)
    return TensorInfo(alias, dtype, shape, info.name, info.dtype)


def _numpy_name(dt: int) -> str:
    from genimg_serving.tensors import dtype_name

    name = dtype_name(dt)
    return {"float": "float32", "double": "float64", "half": "float16"}.get(name, name)


def signature_infos(signature_def_map) -> dict[str, SignatureInfo]:
    """Parse a ``SignatureDefMap`` proto."""
    out = {}
    for name, sig in signature_def_map.signature_def.items():
        inputs = {k: tensor_info(k, v) for k, v in sorted(sig.inputs.items())}
        outputs = {k: tensor_info(k, v) for k, v in sorted(sig.outputs.items())}
        out[name] = SignatureInfo(name, sig.method_name, inputs, outputs)
    return out


def from_response(response) -> ModelMetadata:
    """Parse a gRPC GetModelMetadataResponse."""
    from genimg_serving.protos import get_model_metadata_pb2

    sig_map = get_model_metadata_pb2.SignatureDefMap()
    if SIGNATURE_DEF in response.metadata:
        response.metadata[SIGNATURE_DEF].Unpack(sig_map)
    spec = response.model_spec
    version = spec.version.value if spec.HasField("version") else None
    return ModelMetadata(spec.name, version, signature_infos(sig_map))


def from_json(data: dict) -> ModelMetadata:
    """Parse the REST form (``GET /v1/models/<name>/metadata``), JSON only (no TF protos)."""
    sig_map = data.get("metadata", {}).get(SIGNATURE_DEF, {}).get(SIGNATURE_DEF, {})
    signatures = {}
    for name, sig in sig_map.items():
        inputs = {k: _json_tensor(k, v) for k, v in sorted(sig.get("inputs", {}).items())}
        outputs = {k: _json_tensor(k, v) for k, v in sorted(sig.get("outputs", {}).items())}
        signatures[name] = SignatureInfo(name, sig.get("method_name", ""), inputs, outputs)
    spec = data.get("model_spec", {})
    version = int(spec["version"]) if spec.get("version") not in (None, "") else None
    return ModelMetadata(spec.get("name", ""), version, signatures)


def _json_tensor(alias: str, info: dict) -> TensorInfo:
    """A TensorInfo from the JSON of a ``tensorflow.TensorInfo`` (proto3 JSON: int64 as strings)."""
    shape_doc = info.get("tensor_shape", {})
    shape = None
    if not shape_doc.get("unknown_rank", False):
        shape = tuple(None if int(d.get("size", 0)) < 0 else int(d.get("size", 0)) for d in shape_doc.get("dim", []))
    dtype_key = info.get("dtype", "DT_INVALID")
    dtype, number = _DT.get(dtype_key, (dtype_key[3:].lower(), 0))
    return TensorInfo(alias, dtype, shape, info.get("name", ""), number)
