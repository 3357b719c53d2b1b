"""CLI command ``triton``: a Triton model repository over an export's ONNX files.

``out/triton/<name>/config.pbtxt`` + ``out/triton/<name>/<version>/model.onnx``
for each ONNX file of the model's default signature: ``<model>`` (fp32) and
``<model>_<variant>`` (e.g. ``srgan_int8``). It is a serving layout derived
from the ONNX rows of the format table, not a row of its own: it converts
nothing and holds byte-identical copies of files that parity already checks
(the manifest entry of each copy rides in the config as a parameter).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

from genimg_export.cli.app import ModelOpt, app, command  # noqa: F401

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Export folder holding onnx/ (`genimg-export onnx`).")]
VersionOpt = Annotated[int, typer.Option(min=1, help="Triton version directory to write.")]


@command("triton")
def triton_cmd(model: ModelOpt, out: OutOpt, version: VersionOpt = 1) -> None:
    """A Triton model repository (onnxruntime backend) at OUT/triton/ from OUT/onnx/.

    Example: `genimg-export triton --model srgan --out out/` then
    `tritonserver --model-repository out/triton`
    """
    from genimg_export.errors import NotFoundError
    from genimg_export.zoo import loading

    written = write_repository(loading.get_spec(model), out, version)
    if not written:
        raise NotFoundError(f"no ONNX file of {model} in {out}/onnx; run `genimg-export onnx --model {model}"
                            f" --out {out}` first")
    _print(written)


def after_all(spec, out: Path) -> None:
    """``all``'s last step: the Triton repository when ONNX files were written (one line each)."""
    _print(write_repository(spec, out))


def _print(written) -> None:
    for name, path in written:
        typer.echo(f"✓ triton  {name:<16} {path}")


def write_repository(spec, out: Path, version: int = 1) -> list[tuple[str, Path]]:
    """Write one Triton model per ONNX file of ``spec``'s default signature; [(name, folder)].

    Called by ``all`` too; nothing is written when there is no ONNX file.
    """
    from genimg_export.artifacts import layout
    from genimg_export.errors import InvalidInputError
    from genimg_serving.configs import ConfigError

    model, written = spec.name, []
    for place, path in _onnx_files(model, out):
        name = layout.triton_name(model, place.variant)
        try:
            folder = _write_model(Path(out) / layout.TRITON_FOLDER, name, path, version, _settings(out, path),
                                  _warmup(spec, out, path))
        except ConfigError as e:
            raise InvalidInputError(str(e)) from e
        written.append((name, folder))
    return written


def _onnx_files(model: str, out: Path):
    from genimg_export.artifacts import layout

    return [(place, path) for place, path in layout.find(Path(out), model)
            if place.format == "onnx" and place.signature == layout.DEFAULT_SIGNATURE]


def _settings(out: Path, path: Path):
    from genimg_export.artifacts import manifest
    from genimg_serving.triton_config import Settings

    rel = path.relative_to(out).as_posix()
    entry = next((a.to_json() for a in manifest.load(out) if a.path == rel), {})
    return Settings(manifest=entry)


def onnx_io(path: Path):
    """Names, numpy dtypes and shapes (None = dynamic) of an ONNX file's graph inputs/outputs."""
    import onnx

    from genimg_serving.triton_config import Tensor, TritonIO

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}

    def tensor(value):
        kind = value.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(kind.elem_type).name
        dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in kind.shape.dim)
        return Tensor(value.name, "string" if dtype == "object" else dtype, dims)

    return TritonIO([tensor(v) for v in graph.input if v.name not in weights], [tensor(v) for v in graph.output])


def _warmup(spec, out: Path, path: Path) -> dict:
    """Concrete dims of one warm-up request: the spec's own sample inputs, by input name."""
    from genimg_export.artifacts import manifest

    rel = path.relative_to(out).as_posix()
    fixed = next((a.fixed_size for a in manifest.load(out) if a.path == rel), None)
    sample = spec.sample_inputs(1, 0, spec.default_signature.name, *([tuple(fixed)] if fixed else []))
    batched = onnx_io(path).batched
    return {name: tuple(a.shape[1:]) if batched else tuple(a.shape) for name, a in sample.items()}


def _write_model(repo: Path, name: str, onnx_file: Path, version: int, settings, warmup) -> Path:
    """config.pbtxt and <version>/model.onnx, each renamed into place when complete.

    The version's temporary is a hidden folder inside the model folder (Triton ignores
    non-numeric version folders), never beside it, where Triton would see another model.
    """
    from genimg_export import fs
    from genimg_serving.triton_config import CONFIG_FILE, MODEL_FILE, config_text

    text = config_text(name, onnx_io(onnx_file), warmup, settings)  # parsed before anything is written
    folder = repo / name
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / str(version)
    tmp = fs.tmp_sibling(target)
    try:
        tmp.mkdir()
        shutil.copyfile(onnx_file, tmp / MODEL_FILE)
        fs.remove(target)
        tmp.rename(target)
    finally:
        fs.discard(tmp)
    fs.write_text_atomic(folder / CONFIG_FILE, text)
    return folder
