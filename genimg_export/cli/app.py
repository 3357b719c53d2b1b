"""The Typer app and the ``command`` decorator that maps domain errors to exits.

Command modules import only typer and the standard library at module level;
TensorFlow and the converters are imported inside the commands, so that
``genimg-export --help`` is instant.
"""

from __future__ import annotations

import functools
import sys
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup


def _flags_without_placeholder(params):
    """Typer renders a ``<bool>`` type column for flags, which take no value: blank it."""
    for param in params:
        if getattr(param, "is_bool_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class _Command(TyperCommand):
    def get_params(self, ctx):
        return _flags_without_placeholder(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx):
        return _flags_without_placeholder(super().get_params(ctx))


app = typer.Typer(
    cls=_Group,
    name="genimg-export",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
    help=(
        "Train, export and verify image-generation models.\n\n"
        "Typical use: `genimg-export all --model srgan --out out/` writes a SavedModel"
        " for TF Serving, four TFLite files and two ONNX files;"
        " `genimg-export parity --model srgan --out out/` proves they compute"
        " what the Keras model computes."
    ),
)



def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"genimg-export {version('genimg-export')}")
        raise typer.Exit()


@app.callback()
def _global_options(
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Show everything TensorFlow and onnxruntime log (absl, oneDNN, CUDA lines).")] = False,
    quiet: Annotated[bool, typer.Option(
        "--quiet", "-q",
        help="Only errors and the final result (for scripts): no progress, no per-step lines.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Options before the command: `genimg-export --quiet all --model srgan --out out/`."""
    from genimg_export.cli import noise

    if verbose and quiet:
        raise fail("--verbose and --quiet contradict each other: give one")
    noise.configure(verbose, quiet)


ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Zoo model name (see `genimg-export models`) or a path to your own"
        " .keras file or SavedModel directory.",
    ),
]
WeightsOpt = Annotated[
    str | None,
    typer.Option(help="Load these .keras weights instead of the shipped ones."),
]
UnsafeOpt = Annotated[
    bool,
    typer.Option(
        "--allow-unsafe-deserialization",
        help="Allow .keras files that run arbitrary code when loaded (Lambda layers)."
        " Only for files you trust.",
    ),
]



def _import_custom_objects(values: list[str] | None) -> list[str] | None:
    """Import each --custom-objects file or module as the option is parsed, so that
    every later load finds its layers registered (see zoo.keras_file)."""
    from genimg_export.errors import GenimgError
    from genimg_export.zoo.keras_file import import_custom_objects

    for value in values or []:
        try:
            import_custom_objects(value)
        except GenimgError as e:  # before the command runs: the same one red line as its errors
            raise fail(str(e), e.exit_code) from None
    return values


CustomObjectsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--custom-objects",
        metavar="FILE|MODULE",
        callback=_import_custom_objects,
        help="A Python file (my_layers.py) or importable module that registers your model's custom"
        " layers (@keras.saving.register_keras_serializable); imported before the model loads."
        " Repeatable. Safe mode stays on.",
    ),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def renamed(value, old_value, old: str, new: str):
    """The value of an option given under its new name ``new``, or under ``old``, a hidden
    deprecated alias kept for users' scripts (one warning line on stderr).

    Example: ``out = renamed(out, artifacts, "--artifacts", "--out")``.
    """
    if old_value is None:
        return value
    if value is not None:
        raise fail(f"{old} is the old name of {new}: give {new} only")
    typer.echo(f"warning: {old} is deprecated; use {new}", err=True)
    return old_value


def command(*args, **kwargs):
    """Register a CLI command; GenimgError becomes one red line and its exit code."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*a, **k):
            from genimg_export.errors import GenimgError

            try:
                return fn(*a, **k)
            except GenimgError as e:
                raise fail(str(e), e.exit_code) from None
            except KeyboardInterrupt:
                print("interrupted; nothing partial was kept", file=sys.stderr)
                raise typer.Exit(130) from None

        app.command(*args, **{"cls": _Command, **kwargs})(wrapper)
        return fn

    return decorate


def parse_range(text: str, flag: str = "--input-range") -> tuple[float, float]:
    """``"0,255"`` -> (0.0, 255.0): the LOW,HIGH value of a range option, one clear line otherwise."""
    from genimg_export.errors import InvalidInputError

    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidInputError(f"{flag} must be LOW,HIGH (e.g. -1,1 or 0,255), got '{text}'") from None
    return lo, hi


def parse_output_ranges(items: list[str] | None) -> dict[str, tuple[float, float]]:
    """``--output-range [NAME=]LOW,HIGH`` options -> {name: (low, high)}; "*" (no NAME): every image output.

    >>> parse_output_ranges(["0,255", "mask=0,1"])
    {'*': (0.0, 255.0), 'mask': (0.0, 1.0)}
    """
    from genimg_export.errors import InvalidInputError

    ranges = {}
    for item in items or []:
        name, _, text = item.rpartition("=")
        lo, hi = parse_range(text, "--output-range")
        if not lo < hi:
            raise InvalidInputError(f"--output-range {item}: LO must be below HI (e.g. image=0,255)")
        ranges[name or "*"] = (lo, hi)
    return ranges
