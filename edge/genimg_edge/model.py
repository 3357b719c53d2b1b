"""EdgeModel: run an exported .tflite file with ai-edge-litert and nothing else.

Names, value ranges, scale and fixed sizes come from the ``genimg_export``
metadata the exporter embeds (see ``metadata.py``); a file without it runs
with an explicit value range. LiteRT leaves some work to the caller, done
here: quantized (int8/uint8) inputs and outputs go through each tensor's scale
and zero point, a batch fixed at 1 is run sample by sample, and sizes that a
fixed-size export was not made for are refused (resizing a fixed dim silently
computes garbage). Dynamic H x W is resized by LiteRT's signature runner.

Example:
    >>> m = EdgeModel.load("out/tflite/srgan.int8.tflite", num_threads=2)
    >>> hr = m.upscale(lr_image)            # (H, W, 3) in [-1, 1] -> (4H, 4W, 3)
    >>> digits = EdgeModel.load("out/tflite/cgan.fp32.tflite").generate(seed=1, count=8, label=3)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from genimg_edge.errors import EdgeError
from genimg_edge.images import to_uint8
from genimg_edge.metadata import ModelFileError, parse_metadata, read_model_file
from genimg_edge.tiling import tiled

DEFAULT_SIGNATURE = "serving_default"
Range = tuple[float, float]


@dataclass(frozen=True)
class Port:
    """One input or output of a signature, batch dim included (None = dynamic)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]
    value_range: Range | None
    quantization: tuple[float, int] | None  # (scale, zero_point) of a quantized tensor

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 4

    @property
    def fixed_hw(self) -> tuple[int, int] | None:
        h, w = self.shape[1:3]
        return (h, w) if h is not None and w is not None else None

    def describe(self) -> str:
        dims = "x".join("?" if d is None else str(d) for d in self.shape)
        quant = (
            f" quantized(scale={self.quantization[0]:.3g}, zero={self.quantization[1]})" if self.quantization else ""
        )
        rng = f" range {list(self.value_range)}" if self.value_range else ""
        return f"{self.name}: {np.dtype(self.dtype).name}[{dims}]{rng}{quant}"


class EdgeModel:
    """A loaded .tflite model; use ``EdgeModel.load``."""

    def __init__(self, interpreter, meta: dict[str, Any] | None, path: Path, ranges: tuple[Range | None, Range | None]):
        self._interpreter = interpreter
        self._runners: dict[str, Any] = {}
        self._port_cache: dict[tuple[str, str], list[Port]] = {}
        self.meta = meta
        self.path = path
        self._ranges = ranges

    @classmethod
    def load(
        cls,
        path: str | Path,
        num_threads: int | None = None,
        input_range: Range | None = None,
        output_range: Range | None = None,
    ) -> EdgeModel:
        """Load a .tflite file (checked before LiteRT sees it: a truncated file is an error, not a crash).

        Args:
            num_threads: CPU threads for XNNPACK (it is single-threaded unless set).
            input_range / output_range: the values images take at the model's
                inputs / outputs, for files without genimg_export metadata
                (output defaults to the input range). They override the metadata.
        """
        from ai_edge_litert.interpreter import Interpreter

        path = Path(path)
        data = read_model_file(path)
        meta = parse_metadata(data, str(path))
        if num_threads is not None and num_threads < 1:
            raise EdgeError(f"threads must be at least 1, got {num_threads}")
        try:
            interpreter = Interpreter(model_content=data, num_threads=num_threads)
        except (ValueError, RuntimeError) as e:
            raise ModelFileError(f"LiteRT cannot load {path}: {str(e).strip().splitlines()[0]}") from e
        return cls(interpreter, meta, path, (input_range, output_range or input_range))

    # -- what the model has -------------------------------------------------

    @property
    def signatures(self) -> list[str]:
        return list(self._interpreter.get_signature_list())

    @property
    def name(self) -> str:
        return (self.meta or {}).get("model") or self.path.stem

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        size = (self.meta or {}).get("fixed_size")
        return tuple(size) if size else None

    def inputs(self, signature: str = DEFAULT_SIGNATURE) -> list[Port]:
        return self._ports(signature, "inputs")

    def outputs(self, signature: str = DEFAULT_SIGNATURE) -> list[Port]:
        return self._ports(signature, "outputs")

    def image_input(self, signature: str = DEFAULT_SIGNATURE) -> Port | None:
        """The one image input of an image-to-image signature, else None."""
        ports = self.inputs(signature)
        return ports[0] if len(ports) == 1 and ports[0].is_image else None

    def image_output(self, signature: str = DEFAULT_SIGNATURE) -> Port:
        images = [p for p in self.outputs(signature) if p.is_image]
        if not images:
            names = ", ".join(p.name for p in self.outputs(signature))
            raise EdgeError(f"signature '{signature}' of {self.path.name} outputs no image ({names}); use run()")
        return images[0]

    def _runner(self, signature: str):
        if signature not in self._runners:
            found = self.signatures
            if signature not in found:
                raise EdgeError(f"{self.path.name} has no signature '{signature}'; it has: {', '.join(found)}")
            self._runners[signature] = self._interpreter.get_signature_runner(signature)
        return self._runners[signature]

    def _ports(self, signature: str, kind: str) -> list[Port]:
        if (signature, kind) not in self._port_cache:
            self._port_cache[signature, kind] = self._read_ports(signature, kind)
        return self._port_cache[signature, kind]

    def _read_ports(self, signature: str, kind: str) -> list[Port]:
        runner = self._runner(signature)
        details = runner.get_input_details() if kind == "inputs" else runner.get_output_details()
        declared = _declared_tensors(self.meta, signature, kind)
        explicit = self._ranges[0 if kind == "inputs" else 1]
        ports = []
        for name, d in details.items():
            shape = tuple(None if s == -1 else int(s) for s in d["shape_signature"])
            spec_range = declared.get(name, {}).get("value_range")
            is_image = len(shape) == 4
            value_range = explicit if explicit and is_image else spec_range
            if value_range is None and is_image and self.meta:
                value_range = self.meta.get("value_range")
            scale, zero = d["quantization"]
            quant = (scale, zero) if scale and np.issubdtype(d["dtype"], np.integer) else None
            ports.append(Port(name, np.dtype(d["dtype"]), shape, _as_range(value_range), quant))
        return ports

    # -- running ------------------------------------------------------------

    def run(self, inputs: Mapping[str, Any], signature: str = DEFAULT_SIGNATURE) -> dict[str, np.ndarray]:
        """Run one signature on batched arrays keyed by input name.

        Float values for quantized inputs are quantized with the tensor's scale
        and zero point; quantized outputs come back dequantized to float32.
        """
        ports = {p.name: p for p in self.inputs(signature)}
        _check_names(signature, ports, inputs)
        feeds = {name: _checked(ports[name], np.asarray(value)) for name, value in inputs.items()}
        batch = next(iter(feeds.values())).shape[0]
        if batch != 1 and all(p.shape[0] == 1 for p in ports.values()):
            rows = [self._invoke(signature, {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(batch)]
            return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
        return self._invoke(signature, feeds)

    def _invoke(self, signature: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ins = {p.name: p for p in self.inputs(signature)}
        outs = {p.name: p for p in self.outputs(signature)}
        raw = self._runner(signature)(**{k: quantize(v, ins[k]) for k, v in feeds.items()})
        return {k: dequantize(np.asarray(v), outs[k]) for k, v in raw.items()}

    def transform(
        self,
        image: np.ndarray,
        signature: str = DEFAULT_SIGNATURE,
        tile: int | None = None,
        overlap: int = 24,
        pixels: bool = False,
    ) -> np.ndarray:
        """Image-to-image (srgan, style, pix2pix): one (H, W, C) image in [-1, 1] -> output image in [-1, 1].

        With ``tile``, the image is cut into tile x tile pieces, each run with
        ``overlap`` extra pixels of context on every side that are cropped
        away, so memory stays bounded and seams are (nearly) invisible. A model
        exported at a fixed size is always run in windows of that size.
        ``pixels=True`` returns uint8 (converted tile by tile: less memory).
        """
        port = self.image_input(signature)
        if port is None:
            names = ", ".join(p.describe() for p in self.inputs(signature))
            raise EdgeError(f"signature '{signature}' is not image-to-image (inputs: {names}); use generate() or run()")
        out_port = self.image_output(signature)
        image = _checked_image(port, image)
        meta = self.meta is not None
        x = to_model_range(image, port.value_range, port.name, meta)
        _need_range(out_port.value_range, out_port.name, "--output-range", meta)  # fail before running

        def fn(window: np.ndarray) -> np.ndarray:
            return self.run({port.name: window}, signature)[out_port.name]

        def post(y: np.ndarray) -> np.ndarray:
            y = from_model_range(y, out_port.value_range, out_port.name, "--output-range", meta)
            return to_uint8(y) if pixels else y

        multiple = int((self.meta or {}).get("spatial_multiple") or 1)
        return tiled(fn, x, tile=tile, overlap=overlap, multiple=multiple, window=port.fixed_hw, post=post)

    upscale = transform  # srgan reads better as model.upscale(image)

    def generate(
        self,
        seed: int = 0,
        count: int = 1,
        label: int | None = None,
        signature: str = DEFAULT_SIGNATURE,
    ) -> np.ndarray:
        """Generators (dcgan, vae decode, cgan): ``count`` images (N, H, W, C) in [-1, 1].

        Float inputs (latents) are drawn standard normal from ``seed``; an
        integer input (a class label) is ``label`` for every image, or cycles
        through its value range when ``label`` is None.
        """
        inputs = self.generator_inputs(seed, count, label, signature)
        out_port = self.image_output(signature)
        y = self.run(inputs, signature)[out_port.name]
        return from_model_range(y, out_port.value_range, out_port.name, "--output-range", self.meta is not None)

    def generator_inputs(self, seed: int, count: int, label: int | None, signature: str = DEFAULT_SIGNATURE,
                         only: list[str] | None = None) -> dict:
        """Latents (standard normal from ``seed``) and labels for the inputs (``only`` these names)."""
        if count < 1:
            raise EdgeError(f"count must be at least 1, got {count}")
        rng = np.random.default_rng(seed)
        inputs = {}
        for port in self.inputs(signature):
            if only is not None and port.name not in only:
                continue
            if port.is_image:
                raise EdgeError(f"signature '{signature}' takes an image ('{port.name}'); pass an input image instead")
            if None in port.shape[1:]:
                raise EdgeError(f"input '{port.name}' has a dynamic shape {port.shape}; use run()")
            if np.issubdtype(port.dtype, np.integer) and port.quantization is None:
                inputs[port.name] = _labels(port, count, label)
            else:
                inputs[port.name] = rng.standard_normal((count, *port.shape[1:])).astype(np.float32)
        return inputs


def _declared_tensors(meta: dict | None, signature: str, kind: str) -> dict[str, dict]:
    sig = ((meta or {}).get("signatures") or {}).get(signature) or {}
    return {t["name"]: t for t in sig.get(kind, [])}


def _as_range(value) -> Range | None:
    return (float(value[0]), float(value[1])) if value else None


def _labels(port: Port, count: int, label: int | None) -> np.ndarray:
    if port.value_range is None and label is None:
        raise EdgeError(f"input '{port.name}' is a class label with no range in the metadata; pass a label")
    if label is not None:
        lo, hi = port.value_range or (label, label)
        if not lo <= label <= hi:
            raise EdgeError(f"label {label} is outside the range of '{port.name}': {int(lo)}..{int(hi)}")
        values = np.full(count, label)
    else:
        lo, hi = (int(v) for v in port.value_range)
        values = lo + np.arange(count) % (hi - lo + 1)
    return values.reshape((count, *port.shape[1:])).astype(port.dtype)


def _check_names(signature: str, ports: Mapping[str, Port], inputs: Mapping[str, Any]) -> None:
    if set(inputs) != set(ports):
        raise EdgeError(f"signature '{signature}' takes inputs {sorted(ports)}, got {sorted(inputs)}")


def _checked(port: Port, value: np.ndarray) -> np.ndarray:
    want = "x".join("N" if i == 0 else "?" if d is None else str(d) for i, d in enumerate(port.shape))
    bad_rank = value.ndim != len(port.shape)
    if bad_rank or any(w is not None and w != g for w, g in zip(port.shape[1:], value.shape[1:])):
        raise EdgeError(
            f"input '{port.name}' must have shape {want} (N = batch, ? = any size),"
            f" got {'x'.join(map(str, value.shape))}"
        )
    if value.shape[0] < 1:
        raise EdgeError(f"input '{port.name}' has an empty batch")
    return value


def _checked_image(port: Port, image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, np.float32)
    channels = port.shape[-1]
    if image.ndim != 3 or image.shape[-1] != channels:
        raise EdgeError(
            f"input '{port.name}' takes one (H, W, {channels}) image with {channels} channel(s),"
            f" got an array of shape {image.shape}"
        )
    return image


def to_model_range(image: np.ndarray, value_range: Range | None, name: str, model_has_metadata: bool = False
                   ) -> np.ndarray:
    """[-1, 1] image -> the model's value range (identity for the zoo's [-1, 1])."""
    lo, hi = _need_range(value_range, name, "--input-range", model_has_metadata)
    if (lo, hi) == (-1.0, 1.0):
        return image
    return (lo + (image + 1.0) * ((hi - lo) / 2.0)).astype(np.float32)


def from_model_range(image: np.ndarray, value_range: Range | None, name: str, flag: str = "--output-range",
                     model_has_metadata: bool = False) -> np.ndarray:
    """Model output in its value range -> [-1, 1]."""
    lo, hi = _need_range(value_range, name, flag, model_has_metadata)
    if (lo, hi) == (-1.0, 1.0):
        return image
    return ((image - lo) * (2.0 / (hi - lo)) - 1.0).astype(np.float32)


def _need_range(value_range: Range | None, name: str, flag: str, model_has_metadata: bool = False) -> Range:
    if value_range is None:
        why = ("its entry in the file's genimg_export metadata declares none" if model_has_metadata
               else "the file has no genimg_export metadata")
        raise EdgeError(
            f"tensor '{name}' has no value range to map image pixels with: {why};"
            f" pass {flag} LO,HI (e.g. {flag} 0,1 or {flag}=-1,1), or write .npz for raw values"
        )
    if value_range[1] <= value_range[0]:
        raise EdgeError(f"value range of '{name}' must have LO < HI, got {list(value_range)}")
    return value_range


def quantize(value: np.ndarray, port: Port) -> np.ndarray:
    """Float values -> a quantized tensor's integers: rint(x / scale + zero), clipped.

    Integer arrays (already quantized, or labels) pass through cast to the tensor dtype.
    """
    if port.quantization is None or np.issubdtype(value.dtype, np.integer):
        return value.astype(port.dtype, copy=False)
    scale, zero = port.quantization
    info = np.iinfo(port.dtype)
    return np.clip(np.rint(value.astype(np.float32, copy=False) / scale + zero), info.min, info.max).astype(port.dtype)


def dequantize(value: np.ndarray, port: Port) -> np.ndarray:
    """A quantized output's integers -> float32 (value - zero) * scale."""
    if port.quantization is None or not np.issubdtype(value.dtype, np.integer):
        return value
    scale, zero = port.quantization
    return ((value.astype(np.float32) - zero) * scale).astype(np.float32)
