"""Signatures as the client sees them, parsed from GetModelMetadata.

TF Serving describes a model by its SignatureDefMap; these small frozen
dataclasses carry what a caller needs (names, dtypes, shapes) so that code
reads tensor names from the server instead of hard-coding them.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import json_format

from genimg_serving.errors import FailedPreconditionError
from genimg_serving.protos import get_model_metadata_pb2, types_pb2
from genimg_serving.tensors import dtype_name

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


def tensor_info(alias: str, info) -> TensorInfo:
    """A TensorInfo from a ``tensorflow.TensorInfo`` proto."""
    shape = None
    if not info.tensor_shape.unknown_rank:
        shape = tuple(None if d.size < 0 else d.size for d in info.tensor_shape.dim)
    dtype = "string" if info.dtype == types_pb2.DT_STRING else _numpy_name(info.dtype)
    return TensorInfo(alias, dtype, shape, info.name, info.dtype)


def _numpy_name(dt: int) -> str:
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
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    if SIGNATURE_DEF in response.metadata:
        response.metadata[SIGNATURE_DEF].Unpack(sig_map)
    spec = response.model_spec
    version = spec.version.value if spec.HasField("version") else None
    return ModelMetadata(spec.name, version, signature_infos(sig_map))


def from_json(data: dict) -> ModelMetadata:
    """Parse the REST form (``GET /v1/models/<name>/metadata``)."""
    sig_map = json_format.ParseDict(
        data.get("metadata", {}).get(SIGNATURE_DEF, {}),
        get_model_metadata_pb2.SignatureDefMap(),
        ignore_unknown_fields=True,
    )
    spec = data.get("model_spec", {})
    version = int(spec["version"]) if spec.get("version") not in (None, "") else None
    return ModelMetadata(spec.get("name", ""), version, signature_infos(sig_map))
