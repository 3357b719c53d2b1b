"""genimg-edge: run an exported .tflite model on a device (ai-edge-litert, numpy, Pillow only).

Examples:
    genimg-edge srgan.int8.tflite --input photo.png --output photo_x4.png --tile 128
    genimg-edge cgan.fp32.tflite --seed 1 --count 16 --label 7 --output sevens.png
    genimg-edge vae.fp32.tflite --count 8 --output digits/        # one PNG each
    genimg-edge vae.fp32.tflite --signature encode --input digit.png --output z.npz
    genimg-edge srgan.fp32.tflite --bench --runs 50 --threads 2 --size 64x64
    genimg-edge other.tflite --input-range 0,1 --input in.png --output out.png
    genimg-edge restorer.tflite --input image=in.png --input class_vector=onehot.npy --output out.png
        # -> out.restored.png, out.mask.png (one per image output), out.outputs.npz (the rest)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from genimg_edge import any_signature, images
from genimg_edge.errors import EdgeError
from genimg_edge.model import DEFAULT_SIGNATURE, EdgeModel

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
DEFAULT_MAX_PIXELS = 512 * 512  # untiled input; srgan's activations at this size already take ~2 GB


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="genimg-edge",
        description="Run a genimg-export .tflite model with ai-edge-litert.",
        epilog=__doc__.split("Examples:")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", type=Path, help="a .tflite file, e.g. out/tflite/srgan.fp32.tflite")
    p.add_argument("--signature", default=DEFAULT_SIGNATURE,
                   help="signature to run (vae: serving_default=decode, encode)")
    p.add_argument("--input", action="append", help="input image of an image-to-image model, or NAME=FILE for"
                   " each input of any model (FILE: an image or a .npy array); repeatable")
    p.add_argument("--output", type=Path, help="output image (.png/.jpg; a grid for generators), a folder, or .npz")
    p.add_argument("--tile", type=int, help="tiled inference with TILE x TILE input tiles (bounded memory)")
    p.add_argument("--overlap", type=int, default=24,
                   help="context pixels around each tile (default 24: srgan tiles are then exact)")
    p.add_argument("--seed", type=int, default=0, help="generators: random seed for the latents")
    p.add_argument("--count", type=int, default=1, help="generators: number of images (also the bench batch)")
    p.add_argument("--label", type=int, help="conditional generators: class label (default: cycle through them)")
    p.add_argument("--threads", type=int, default=2, help="XNNPACK CPU threads (default 2)")
    p.add_argument("--bench", action="store_true", help="time the model instead of writing outputs")
    p.add_argument("--runs", type=int, default=20, help="timed runs for --bench (after 3 warm-up runs)")
    p.add_argument("--size", default=None,
                   help="--bench input size HxW for image models (default: --input, else 64x64)")
    p.add_argument("--input-range", type=_range, help="LO,HI of the model's image values, for files without our"
                   " metadata (write --input-range=-1,1 for a negative LO)")
    p.add_argument("--output-range", type=_range, help="LO,HI of the output images (default: the input range)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help=f"largest untiled input image (default {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--info", action="store_true", help="print signatures, tensors and metadata, then exit")
    return p.parse_args(argv)


def _range(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI such as 0,1 or -1,1; got '{text}'") from None
    if not lo < hi:
        raise argparse.ArgumentTypeError(f"expected LO < HI, got '{text}'")
    return lo, hi


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        model = EdgeModel.load(args.model, args.threads, args.input_range, args.output_range)
        if args.info:
            return info(model)
        if args.bench:
            return bench(model, args)
        return _route(model, args)(model, args)
    except (EdgeError, images.ImageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, permissions, ... while writing
        print(f"error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing partial was kept", file=sys.stderr)
        return 130


def _route(model: EdgeModel, args):
    """transform (one image in, one out: tiling), generate (no image in, one image out),
    else run_any (several inputs or outputs, or inputs given as NAME=FILE)."""
    named = any("=" in str(item) for item in args.input or [])
    one_out = len(model.outputs(args.signature)) == 1
    if named or not one_out:
        return run_any
    if model.image_input(args.signature) is not None:
        return transform
    if any(p.is_image for p in model.inputs(args.signature)):
        return run_any
    return generate


def run_any(model: EdgeModel, args) -> int:
    """Any signature: each input from --input NAME=FILE (latents and labels drawn when not
    given), every output written (see any_signature.write_outputs)."""
    if args.output is None:
        raise EdgeError(f"pass --output OUT.png (one image per image output) or OUT.npz (every output);"
                        f" signature '{args.signature}' of {model.name} outputs"
                        f" {', '.join(p.describe() for p in model.outputs(args.signature))}")
    _check_parent(args.output)
    if args.output.suffix.lower() not in (*IMAGE_SUFFIXES, ".npz"):
        _check_image_suffix(args.output)
    started = time.perf_counter()
    feeds = any_signature.read_inputs(model, args.input, args.signature, args.seed, args.count, args.label,
                                      max(args.max_pixels, images.DEFAULT_MAX_PIXELS))
    written = any_signature.write_outputs(model, args.output, model.run(feeds, args.signature), args.signature)
    print(f"wrote {', '.join(str(p) for p in written)} ({time.perf_counter() - started:.2f} s)")
    return 0


def _image_arg(args) -> Path | None:
    """The one bare --input IMAGE of an image-to-image run (None when not given)."""
    if not args.input:
        return None
    if len(args.input) > 1:
        raise EdgeError(f"this model takes one image; got --input {len(args.input)} times")
    return Path(args.input[0])


def info(model: EdgeModel) -> int:
    print(f"{model.path}  ({model.path.stat().st_size:,} bytes)")
    for sig in model.signatures:
        print(f"signature {sig}:")
        for kind, ports in (("in ", model.inputs(sig)), ("out", model.outputs(sig))):
            for port in ports:
                print(f"  {kind} {port.describe()}")
    if model.meta is None:
        print("no genimg_export metadata: pass --input-range LO,HI to run images through it")
    else:
        shown = {k: v for k, v in model.meta.items() if k != "signatures"}
        print("metadata:", json.dumps(shown, sort_keys=True))
    return 0


def transform(model: EdgeModel, args) -> int:
    port = model.image_input(args.signature)
    source = _image_arg(args)
    if source is None or args.output is None:
        raise EdgeError(f"{model.name} is image-to-image: pass --input IMAGE and --output OUT.png")
    raw = args.output.suffix.lower() == ".npz"
    if not raw:
        _check_image_suffix(args.output)
    _check_parent(args.output)
    image = _load(source, port.shape[-1], args.max_pixels)
    h, w = image.shape[:2]
    if (args.tile is None or raw) and port.fixed_hw is None and h * w > args.max_pixels:
        raise EdgeError(
            f"{source} is {w}x{h} = {h * w:,} pixels, over the untiled cap of {args.max_pixels:,};"
            + (" .npz holds one untiled run: crop the image" if raw else " pass --tile 256 to run it in tiles")
            + " (or raise --max-pixels)"
        )
    started = time.perf_counter()
    if raw:
        any_signature.save_npz(args.output, model.run({port.name: image[None]}, args.signature))
    else:
        images.save_image(args.output, model.transform(image, args.signature, args.tile, args.overlap, pixels=True))
    print(f"wrote {args.output} ({time.perf_counter() - started:.2f} s)")
    return 0


def _load(path: Path, channels: int | None, max_pixels: int) -> np.ndarray:
    if channels not in (1, 3):
        raise EdgeError(
            f"the model takes images with {channels} channels; image files are read as"
            " 1 (grayscale) or 3 (RGB) channels, so this model needs run() with arrays"
        )
    # tiled runs may read images above the untiled cap, up to the decompression-bomb guard
    return images.load_image(path, channels, max(max_pixels, images.DEFAULT_MAX_PIXELS))


def _check_parent(path: Path) -> None:
    if not path.parent.is_dir():
        raise EdgeError(f"cannot write {path}: folder {path.parent} does not exist")


def generate(model: EdgeModel, args) -> int:
    if args.output is None:
        raise EdgeError(f"{model.name} generates images: pass --output grid.png (or a folder, or .npz)")
    if args.input:
        raise EdgeError(f"signature '{args.signature}' of {model.name} takes no image (inputs:"
                        f" {any_signature.describe_inputs(model, args.signature)}); drop --input,"
                        " or give an input's values as --input NAME=FILE.npy")
    _check_parent(args.output)
    if args.output.suffix.lower() == ".npz":
        inputs = model.generator_inputs(args.seed, args.count, args.label, args.signature)
        any_signature.save_npz(args.output, model.run(inputs, args.signature))
    elif args.output.suffix.lower() in IMAGE_SUFFIXES:
        images.save_image(args.output, images.grid(model.generate(args.seed, args.count, args.label, args.signature)))
    else:
        if args.output.exists() and not args.output.is_dir():
            raise EdgeError(f"{args.output} exists and is not a folder; give an image suffix for a grid")
        batch = model.generate(args.seed, args.count, args.label, args.signature)
        args.output.mkdir(parents=True, exist_ok=True)
        for i, img in enumerate(batch):
            images.save_image(args.output / f"{i:04d}.png", img)
    print(f"wrote {args.output}")
    return 0


def _check_image_suffix(path: Path) -> None:
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise EdgeError(f"cannot write {path}: use one of {', '.join(IMAGE_SUFFIXES)} (or .npz for raw outputs)")


def bench(model: EdgeModel, args) -> int:
    """Time ``run`` on one fixed input; print p50/p90 latency and images/s."""
    if args.runs < 1:
        raise EdgeError(f"--runs must be at least 1, got {args.runs}")
    inputs, what = _bench_inputs(model, args)
    for _ in range(3):
        model.run(inputs, args.signature)
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        model.run(inputs, args.signature)
        times.append(time.perf_counter() - started)
    p50, p90 = np.percentile(times, [50, 90])
    batch = next(iter(inputs.values())).shape[0]
    print(
        f"{model.path.name} {what} batch {batch}, threads {args.threads}, {args.runs} runs:"
        f" p50 {p50 * 1e3:.2f} ms  p90 {p90 * 1e3:.2f} ms  {batch / p50:.1f} images/s"
    )
    return 0


def _bench_inputs(model: EdgeModel, args) -> tuple[dict[str, np.ndarray], str]:
    port = model.image_input(args.signature)
    if port is None:
        return model.generator_inputs(args.seed, args.count, args.label, args.signature), "generate"
    source = _image_arg(args)
    if source is not None:
        image = _load(source, port.shape[-1], args.max_pixels)
        h, w = image.shape[:2]
    else:
        h, w = port.fixed_hw or _size(args.size or "64x64")
    if args.count * h * w > args.max_pixels:  # checked before anything is allocated
        raise EdgeError(
            f"--bench batch {args.count} x {h}x{w} = {args.count * h * w:,} pixels is over the cap of"
            f" {args.max_pixels:,}; use a smaller --size or --count (or raise --max-pixels)")
    if source is None:
        image = np.random.default_rng(args.seed).uniform(-1, 1, (h, w, port.shape[-1])).astype(np.float32)
    batch = np.repeat(image[None], args.count, axis=0)
    return {port.name: batch}, f"{image.shape[0]}x{image.shape[1]}"


def _size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise EdgeError(f"--size must be HxW such as 64x64, got '{text}'") from None
    if h < 1 or w < 1:
        raise EdgeError(f"--size must be positive, got '{text}'")
    return h, w


if __name__ == "__main__":
    sys.exit(main())
